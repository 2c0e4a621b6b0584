"""Where a client profile lives: --home, else $BLINDRELAY_HOME, else the user's data
directory."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

HOME_ENV = "BLINDRELAY_HOME"
PASSPHRASE_ENV = "BLINDRELAY_PASSPHRASE"


def user_data_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_home() -> Path:
    return user_data_dir() / "blindrelay" / "client"


def resolve_home(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else default_home()


def evidence_path(home: Path, kind: str, when: float) -> Path:
    """Where a key-directory evidence file goes: the profile's directory, named
    kt-evidence-<UTC time>-<kind>.json (a counter is added if the name is taken)."""
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = home / f"kt-evidence-{stamp}-{kind}.json"
    n = 1
    while path.exists():
        n += 1
        path = home / f"kt-evidence-{stamp}-{kind}-{n}.json"
    return path
