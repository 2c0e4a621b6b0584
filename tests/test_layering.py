"""Import hygiene, checked in fresh interpreters so nothing else has loaded modules.

- protocol/ is sans-I/O: importing all of it pulls in no asyncio, websockets,
  textual, sqlite3 or socket.
- server/ never loads the ratchet, the session code, PQXDH, sealing, the AEAD, the
  KDFs or any private-key operation (protocol.e2e.keys): the relay has no code path that
  could decrypt. It may load only the public encodings, frames and signature checks.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


HOSTILE = "server.hostile"
"""The attacker simulation for the teaching demo: it does cryptography on purpose, and
is checked separately to be unreachable from `blindrelay serve`."""


def _modules_after_import(packages: list[str], skip: tuple[str, ...] = ()) -> set[str]:
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"for pkg in {packages!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        f"        if not info.name.startswith({skip!r}):\n"
        "            importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout))


def test_protocol_imports_no_io() -> None:
    loaded = _modules_after_import(["protocol"])
    for banned in ("asyncio", "websockets", "textual", "sqlite3", "socket"):
        assert banned not in loaded, f"protocol/ pulls in {banned}"


SERVER_MAY_NOT_LOAD = [
    "protocol.e2e.keys",
    "protocol.e2e.ratchet",
    "protocol.e2e.session",
    "protocol.e2e.pqxdh",
    "protocol.e2e.sealed",
    "protocol.e2e.aead",
    "protocol.e2e.kdf",
]


@pytest.mark.skipif(
    not any(pkgutil.iter_modules([str(ROOT / "server")])),
    reason="server/ has no modules yet",
)
def test_server_cannot_decrypt() -> None:
    loaded = _modules_after_import(["server"], skip=(HOSTILE,))
    leaked = [name for name in SERVER_MAY_NOT_LOAD if name in loaded]
    assert not leaked, f"server/ loads {leaked}"
    assert HOSTILE not in loaded, "an honest server module imports the hostile relay"


def test_blindrelay_serve_never_loads_the_hostile_relay() -> None:
    """What `blindrelay serve` imports: the CLI module and the server it starts."""
    code = (
        "import json, sys\n"
        "import client.cli, server.app, server.audit\n"
        "client.cli.build_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert HOSTILE not in loaded
    assert "protocol.e2e.ratchet" not in loaded and "protocol.e2e.session" not in loaded


def test_the_hostile_relay_is_what_the_check_would_catch() -> None:
    loaded = _modules_after_import(["server"])
    assert HOSTILE in loaded and "protocol.e2e.session" in loaded


def test_the_import_walker_sees_what_it_checks() -> None:
    """Guards the checks above against passing vacuously."""
    loaded = _modules_after_import(["protocol"])
    assert {"protocol.e2e.ratchet", "protocol.e2e.keys", "protocol.e2e.session"} <= loaded
