"""Secrets around the process (issue 9, item 12) and the passphrase prompt (item 17):
a passphrase file others can read is refused like ssh refuses such a private key,
$BLINDRELAY_PASSPHRASE leaves the environment once read, and end of input at the
prompt is one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blindrelay.cli import build_parser
from client.client import Client
from client.commands import EXIT_OK, EXIT_USAGE, run_client_command
from client.paths import PASSPHRASE_ENV
from tests.adversarial.terminal import blindrelay_argv, run_in_pty
from tests.blindrelay.test_cli import blindrelay
from tests.client.helpers import FAST_KDF, PASSPHRASE

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def offline_profile(home: Path) -> None:
    """A profile (never registered: none of these commands needs the relay)."""
    Client.create(home, "alice", "ws://127.0.0.1:9", PASSPHRASE, FAST_KDF).close()


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_a_passphrase_file_others_can_use_is_refused(tmp_path: Path, mode: int) -> None:
    home = tmp_path / "alice"
    offline_profile(home)
    secret = tmp_path / "pass"
    secret.write_text("pw\n")
    secret.chmod(mode)
    refused = blindrelay("contacts", "--home", str(home), "--passphrase-file", str(secret),
                         passphrase=None)
    assert refused.returncode == EXIT_USAGE
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "accessible by others" in lines[0]
    assert f"{mode:04o}" in lines[0] and "chmod 600" in lines[0]
    assert "Traceback" not in refused.stderr

    secret.chmod(0o600)
    ok = blindrelay("contacts", "--home", str(home), "--passphrase-file", str(secret),
                    passphrase=None)
    assert ok.returncode == EXIT_OK, ok.stderr


def test_the_passphrase_leaves_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "alice"
    offline_profile(home)
    monkeypatch.setenv(PASSPHRASE_ENV, "pw")
    args = build_parser().parse_args(["contacts", "--home", str(home)])
    assert run_client_command(args) == EXIT_OK  # it was read: the profile opened
    assert PASSPHRASE_ENV not in os.environ
    child = subprocess.run([sys.executable, "-c", f"import os; print(os.environ.get("
                            f"{PASSPHRASE_ENV!r}))"], capture_output=True, text=True,
                           check=True)
    assert child.stdout.strip() == "None"


def test_end_of_input_at_the_prompt_is_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    offline_profile(home)
    code, out = run_in_pty(blindrelay_argv("contacts", "--home", home), {},
                           steps=[(lambda seen: b"Passphrase:" in seen, b"\x04")], timeout=30)
    text = out.decode("utf-8", "replace")
    assert code == EXIT_USAGE, text
    assert "Traceback" not in text and "EOFError" not in text
    assert "blindrelay contacts: no passphrase given" in text
