"""`blindrelay sealed ...` (docs/CLIENT.md "Sealed sending"): the settings are kept in
the profile, a rotation cuts a contact off, and no command prints a capability."""

from __future__ import annotations

import subprocess
from pathlib import Path

from client.client import Client
from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process


def test_sealed_commands(tmp_path: Path) -> None:
    printed: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = blindrelay(*args)
        printed.append(done.stdout + done.stderr)
        return done

    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        for name, home in (("alice", a), ("bob", b)):
            made = run("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == 0, made.stderr
        status = run("sealed", "status", "--home", a)
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[:3] == ["sealed sending: on",
                                                  "sealed from anyone: off",
                                                  "receipt delay: none"]
        assert "generation 1, the relay holds it" in status.stdout  # set at init's login

        assert run("send", "bob", "hello bob", "--home", a).returncode == 0
        assert "hello bob" in run("recv", "--home", b).stdout
        assert run("send", "alice", "hi", "--home", b).returncode == 0
        assert "bob: hi" in run("recv", "--home", a).stdout
        shown = run("sealed", "status", "--home", a).stdout
        assert "contacts given it: 1 of 1" in shown
        assert "contacts whose capability you hold (sealed to them): 1" in shown

        set_delay = run("sealed", "receipt-delay", "2.5", "--home", a)
        assert set_delay.returncode == 0 and "0 to 2.5 s" in set_delay.stdout
        assert run("sealed", "receipt-delay", "-1", "--home", a).returncode == 2
        assert run("sealed", "anyone", "on", "--home", a).returncode == 0
        assert run("sealed", "off", "--home", a).returncode == 0
        shown = run("sealed", "status", "--home", a).stdout
        assert shown.splitlines()[:3] == ["sealed sending: off", "sealed from anyone: on",
                                          "receipt delay: random 0 to 2.5 s"]

        rotated = run("sealed", "rotate", "--cut", "bob", "--home", a)
        assert rotated.returncode == 0, rotated.stderr
        assert "generation 2" in rotated.stdout and "cut off: bob" in rotated.stdout
        shown = run("sealed", "status", "--home", a).stdout
        assert "generation 2, the relay holds it" in shown and "cut off: bob" in shown
        assert run("sealed", "rotate", "--cut", "nobody", "--home", a).returncode == 6
        assert run("sealed", "restore", "bob", "--home", a).returncode == 0
        last = run("sealed", "status", "--home", a)
        assert "cut off" not in last.stdout

    client = Client.open(Path(a), b"pw")
    try:  # neither ours nor bob's capability was ever printed
        secrets = [client.capabilities.state().capability,
                   client.contact("bob").capability]  # type: ignore[union-attr]
    finally:
        client.close()
    for secret in secrets:
        assert secret is not None
        assert not [out for out in printed if secret.hex() in out]
