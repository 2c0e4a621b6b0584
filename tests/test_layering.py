"""The import contracts of docs/ARCHITECTURE.md, checked two ways.

1. In fresh interpreters: import every module of a package and look at `sys.modules`,
   so a lazy or indirect import is caught as surely as a direct one.
2. With import-linter (the contracts in pyproject.toml, where a reader finds them in
   one place), which also catches imports inside functions that no test runs.

The rule that states the project's claim is one folder rule with no exceptions: the
relay (`server`) never loads anything under `protocol.e2e`, so it has no code path that
could decrypt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IO = ("asyncio", "socket", "sqlite3", "websockets", "textual")
"""What the sans-I/O protocol layers may never load."""


def _modules_after_import(packages: list[str], skip: tuple[str, ...] = (),
                          then: str = "") -> set[str]:
    """Every module loaded after importing each module of `packages` (but those whose
    name starts with one of `skip`) in a fresh interpreter, then running `then`."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"for pkg in {packages!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(getattr(mod, '__path__', []), pkg + '.'):\n"
        f"        if not info.name.startswith({skip!r}):\n"
        "            importlib.import_module(info.name)\n"
        f"{then}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout))


def _under(loaded: set[str], *packages: str) -> list[str]:
    return sorted(m for m in loaded
                  if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.mark.parametrize("layer", ["protocol.wire", "protocol.e2e"])
def test_protocol_layers_are_sans_io(layer: str) -> None:
    loaded = _modules_after_import([layer])
    assert not _under(loaded, *IO), f"{layer} pulls in I/O"
    assert not _under(loaded, "client", "server", "conformance", "teaching", "blindrelay")


def test_the_wire_layer_never_reaches_end_to_end_code() -> None:
    assert not _under(_modules_after_import(["protocol.wire"]), "protocol.e2e")


def test_the_relay_cannot_decrypt() -> None:
    """server/ may load protocol.wire and nothing under protocol.e2e: no private key,
    no KDF, no cipher, no session. No exceptions."""
    loaded = _modules_after_import(["server"])
    assert not _under(loaded, "protocol.e2e"), "server/ loads end-to-end code"
    assert not _under(loaded, "client", "teaching", "conformance", "blindrelay")


def test_blindrelay_serve_loads_no_end_to_end_code() -> None:
    """What `blindrelay serve` and `blindrelay audit` load: the command line (parser
    built) and the relay they start."""
    loaded = _modules_after_import(
        ["blindrelay.cli", "server"],
        then="import blindrelay.cli; blindrelay.cli.build_parser()")
    assert not _under(loaded, "protocol.e2e", "client", "conformance")
    # the scenario names (a leaf module, for `demo --help`) and nothing else of teaching
    assert _under(loaded, "teaching") == ["teaching", "teaching.names"]


def test_the_client_core_has_no_ui_and_no_relay() -> None:
    loaded = _modules_after_import(["client"], skip=("client.tui",))
    assert not _under(loaded, "server", "teaching", "conformance", "textual")


def test_conformance_is_a_black_box() -> None:
    assert not _under(_modules_after_import(["conformance"]), "client", "server", "teaching")


def test_the_relay_suite_uses_the_wire_and_key_pairs_only() -> None:
    """The relay checks sign what a client signs (so they need key pairs) and nothing
    more of the end-to-end layer."""
    loaded = _modules_after_import(["conformance.relay"])
    assert _under(loaded, "protocol.e2e") == ["protocol.e2e", "protocol.e2e.errors",
                                              "protocol.e2e.keys"]


def test_the_import_walker_sees_what_it_checks() -> None:
    """Guards the checks above against passing vacuously: the walker does load the
    modules the rules forbid when something imports them (the teaching demo's
    hostile relay decrypts on purpose)."""
    loaded = _modules_after_import(["teaching"])
    assert {"protocol.e2e.ratchet", "protocol.e2e.session", "server.relay",
            "teaching.hostile"} <= loaded


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a test dependency (pip install -e '.[test]')"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
