"""The client conformance kit (conformance/client) against real processes: the
reference client (`blindrelay`) passes every check; each deliberately broken copy of
it (tests/conformance/flawed/client.py) is caught by the check for its flaw; and a
run leaves nothing behind (its temporary profiles and relay are gone)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.client import CHECKS
from tests.support import ROOT

KIT = [sys.executable, "-m", "blindrelay", "conformance-client"]
REFERENCE = [sys.executable, "-m", "blindrelay"]
FLAWED = [sys.executable, "-m", "tests.conformance.flawed.client"]

FLAWS = {
    "raw-escapes": "client.escapes",
    "ignores-key-change": "client.key-swap",
    "shows-replays": "client.replay",
    "no-bundle-signatures": "client.bundle-signature",
    "skips-directory": "client.key-directory",
    "accepts-forged-senders": "client.forged-sender",
    "skips-certificate-check": "client.certificate",
    "no-skip-limit": "client.skipped-limit",
    "no-frame-limit": "client.oversized-frame",
    "sends-unsealed": "client.sealed",
}
"""Each flaw of the broken client, and the check that must catch it."""


def run_kit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the kit with its temporary files in a directory of the test's own, and
    checks that the directory is empty afterwards: the run left nothing behind."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch), "HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*KIT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert list(scratch.iterdir()) == [], "the run left files behind"
    return done


def test_reference_client_passes_every_check(tmp_path: Path) -> None:
    junit = tmp_path / "client.xml"
    done = run_kit(tmp_path, "--json", "--junit", str(junit), "--", *REFERENCE)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [r["name"] for r in report["checks"]] == [c.name for c in CHECKS]
    assert all(r["status"] == "PASS" for r in report["checks"]), report
    assert report["passed"] is True
    assert report["summary"] == {"PASS": len(CHECKS), "FAIL": 0, "SKIP": 0}
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == (str(len(CHECKS)), "0")


@pytest.mark.parametrize(("flaw", "check"), sorted(FLAWS.items()))
def test_each_flawed_client_is_caught(tmp_path: Path, flaw: str, check: str) -> None:
    done = run_kit(tmp_path, "-k", check, "--", *FLAWED, flaw)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"FAIL {check}: "), done.stdout
    assert lines[-1] == "0 passed, 1 failed"


def test_every_check_catches_a_flaw() -> None:
    """The matrix covers every check but the baseline exchange."""
    assert set(FLAWS.values()) == {c.name for c in CHECKS} - {"client.exchange"}


def test_list_names_every_check_on_one_line(tmp_path: Path) -> None:
    done = run_kit(tmp_path, "--list")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [c.name for c in CHECKS]
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)


def test_a_client_that_cannot_run_fails_every_check_with_a_reason(tmp_path: Path) -> None:
    done = run_kit(tmp_path, "-k", "exchange", "--", str(tmp_path / "no-such-client"))
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL client.exchange: cannot run ")


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    done = run_kit(tmp_path)
    assert done.returncode == 2
    assert "after '--'" in done.stderr
