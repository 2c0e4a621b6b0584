"""Messages are never lost without notice (issue 9, item 6): `send` with the relay
down queues the message in the outbox, says so and exits 5; the next command that
connects sends it, and the recipient gets it exactly once."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from client.commands import EXIT_OK, EXIT_UNREACHABLE
from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def texts_in(recv_stdout: str) -> list[str]:
    return [m["text"] for m in map(json.loads, recv_stdout.splitlines()) if m["kind"] == "in"]


def test_send_while_the_relay_is_down_queues_and_delivers_once(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "relay"
    a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
    with relay_process(data, "--port", str(port)) as relay:
        for name, home in (("alice", a), ("bob", b)):
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == EXIT_OK, made.stderr
        assert blindrelay("send", "bob", "first", "--home", a).returncode == EXIT_OK
        assert texts_in(blindrelay("recv", "--json", "--home", b).stdout) == ["first"]

    down = blindrelay("send", "bob", "while you were out", "--home", a)
    assert down.returncode == EXIT_UNREACHABLE, down.stderr
    assert "queued for bob" in down.stderr and "next connection" in down.stderr
    assert down.stdout == ""
    # a first message needs the recipient's keys: it is refused, not queued
    new = blindrelay("send", "carol", "hello", "--home", a)
    assert new.returncode == EXIT_UNREACHABLE and "nothing was queued" in new.stderr

    with relay_process(data, "--port", str(port)):
        assert texts_in(blindrelay("recv", "--json", "--home", b).stdout) == []
        flushed = blindrelay("recv", "--home", a)  # any command that connects sends it
        assert flushed.returncode == EXIT_OK, flushed.stderr
        got = blindrelay("recv", "--json", "--home", b)
        assert got.returncode == EXIT_OK, got.stderr
        assert texts_in(got.stdout) == ["while you were out"]
        # once: neither a second connection of alice nor of bob brings it again
        assert blindrelay("recv", "--home", a).returncode == EXIT_OK
        assert texts_in(blindrelay("recv", "--json", "--home", b).stdout) == []
        contacts = json.loads(blindrelay("contacts", "--json", "--home", b).stdout)
        assert contacts["unread"] == 0
