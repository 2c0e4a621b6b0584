"""Cold start: what the scriptable commands import (issue 14 item 5).

Each command is run in a fresh interpreter, for real (a relay process, real profiles),
and the interpreter reports the modules it ended with. The terminal UI (Textual), the
relay and the teaching code are for other commands: `--help`, `send` and `recv` must
not pay for them at every start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.blindrelay.test_cli import blindrelay, blindrelay_env
from tests.support import ROOT, relay_process

# runs the command line in-process, then prints the names of every module loaded
PROBE = """
import contextlib, json, sys
from blindrelay.cli import main
with contextlib.redirect_stdout(sys.stderr):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
# a module registered to load on first use (client/lazy.py) and never used is not loaded
loaded = [n for n, m in sys.modules.items() if type(m).__name__ != "_LazyModule"]
print(json.dumps({"code": code, "modules": sorted(loaded)}))
"""

NOT_AT_START = ("textual", "rich", "server", "teaching.demo", "teaching.hostile",
                "client.tui", "conformance", "segno", "protocol.e2e.groups")
MLS = "protocol.e2e.mls."  # the engine's modules (its package's __init__ is a docstring)


def loaded_by(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT,
                          env=blindrelay_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report["code"], report["modules"]


def under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_help_loads_neither_the_ui_nor_the_relay() -> None:
    code, modules = loaded_by("--help")
    assert code == 0
    assert under(modules, *NOT_AT_START) == []
    assert under(modules, "client", "protocol") == []  # --help loads no command's code


def test_send_and_recv_load_neither_the_ui_nor_the_relay(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        for name, home in (("alice", a), ("bob", b)):
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == 0, made.stderr

        code, modules = loaded_by("send", "bob", "hello", "--home", a)
        assert code == 0
        assert under(modules, *NOT_AT_START) == []
        assert [m for m in modules if m.startswith(MLS)] == []

        code, modules = loaded_by("recv", "--home", b)
        assert code == 0
        assert under(modules, *NOT_AT_START) == []
        assert [m for m in modules if m.startswith(MLS)] == []
        # the message did go through: this is the path a user takes
        again = blindrelay("history", "alice", "--json", "--home", b)
        assert [json.loads(line)["text"] for line in again.stdout.splitlines()][-1:] == \
            ["hello"]


def test_the_probe_sees_what_it_checks() -> None:
    """Guards the checks above against passing vacuously: `serve --help` does load the
    relay, through the same probe."""
    code, modules = loaded_by("serve", "--help")
    assert code == 0
    assert "server.config" in modules


def test_a_group_command_does_load_the_mls_engine(tmp_path: Path) -> None:
    """The other side of the lazy MLS import: a group command gets the real engine, and
    the group it makes works."""
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        for name, home in (("alice", a), ("bob", b)):
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == 0, made.stderr
        code, modules = loaded_by("group", "create", "club", "bob", "--home", a)
        assert code == 0
        assert {"protocol.e2e.mls.group", "protocol.e2e.mls.ratchet_tree"} <= set(modules)
        listed = blindrelay("group", "list", "--home", a)
        assert listed.returncode == 0 and "club" in listed.stdout, listed.stderr
