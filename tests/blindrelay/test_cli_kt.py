"""`blindrelay kt ...` (issue 10 item 7), run as real processes against a real relay
process: lookups, owner monitoring, a third-party audit, and evidence checking."""

from __future__ import annotations

from pathlib import Path

from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process


def test_kt_lookup_monitor_and_audit_of_an_honest_relay(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        assert blindrelay("init", "alice", "--server", relay.url, "--home", a).returncode == 0
        assert blindrelay("init", "bob", "--server", relay.url, "--home", b).returncode == 0

        found = blindrelay("kt", "lookup", "bob", "--home", a)
        assert found.returncode == 0, found.stderr
        assert "bob: REGISTER, version 0" in found.stdout
        assert "key: " in found.stdout and "checkpoint: size 2, root " in found.stdout

        absent = blindrelay("kt", "lookup", "nobody", "--home", a)
        assert absent.returncode == 6 and "nobody: not in the directory" in absent.stdout

        watched = blindrelay("kt", "monitor", "--home", a)
        assert watched.returncode == 0, watched.stderr
        assert "OK: every binding of your name" in watched.stdout

        audited = blindrelay("kt", "audit", relay.url, passphrase=None)
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert "entries checked: 2" in audited.stdout and "OK" in audited.stdout
        assert "KEY DIRECTORY ALERT" not in found.stderr + watched.stderr
        assert not list(tmp_path.rglob("kt-evidence-*"))


def test_kt_verify_evidence_refuses_what_does_not_hold_up(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "blindrelay-kt-evidence-v1", "kind": "fork"}')
    got = blindrelay("kt", "verify-evidence", str(junk), passphrase=None)
    assert got.returncode == 1 and "does NOT verify" in got.stdout
    missing = blindrelay("kt", "verify-evidence", str(tmp_path / "none.json"), passphrase=None)
    assert missing.returncode == 2
