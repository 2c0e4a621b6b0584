"""`recv` on a large queue (issue 9, item 6b): it drains a queue of any size (its
timeout resets on progress, and a long drain reports progress on stderr), and it never
prints a message twice, even when cut short."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from client.commands import EXIT_OK, EXIT_UNREACHABLE
from tests.adversarial.test_cli_delivery import free_port
from tests.blindrelay.test_cli import blindrelay, blindrelay_env
from tests.client.helpers import make_client, online, shut
from tests.support import ROOT, relay_process

BIG_QUEUES = ("--pair-budget", "off", "--pair-bytes-budget", "off", "--send-budget", "off",
              "--send-bytes-budget", "off", "--queue-share", "1", "--max-queue", "10000")
"""One sender queues thousands of messages to one recipient here, past the relay's
default per-pair and per-sender budgets and queue length (docs/PROTOCOL.md 16.7), which
is not what these tests are about."""


QUEUE_OVER_2_S = 8000
"""A queue that takes recv more than 2 s (pages of messages commit together: a few
thousand a second on the project's machine, printing included)."""


def queue_for_bob(tmp: Path, url: str, count: int) -> list[str]:
    """Registers bob (CLI) and has alice (library) queue `count` messages for him;
    returns their texts in order."""
    made = blindrelay("init", "bob", "--server", url, "--home", str(tmp / "bob"))
    assert made.returncode == EXIT_OK, made.stderr
    texts = [f"message {i:05d}" for i in range(count)]

    async def alice() -> None:
        client = await make_client(tmp, "alice", url)
        await client.send_text("bob", texts[0])  # sets the session up
        await client.disconnect()
        for text in texts[1:]:  # queued offline, sent in multi-envelope SENDs below
            await client.send_text("bob", text)
        await online(client)
        assert not client.outbox.repo.items()
        await shut(client)

    asyncio.run(alice())
    return texts


def _rest(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What the process writes after the lines already read from its stdout, and its
    stderr, once it exits: read through the same buffered stdout (communicate() reads
    the pipe itself, and would miss lines the iteration above read ahead, as it does
    when recv prints a page of messages at once)."""
    assert proc.stdout is not None and proc.stderr is not None
    rest = proc.stdout.read()
    errors = proc.stderr.read()
    proc.wait(60)
    return rest, errors


def printed(stdout: str) -> list[str]:
    return [m["text"] for m in map(json.loads, stdout.splitlines()) if m["kind"] == "in"]


def test_a_queue_that_takes_longer_than_the_timeout_still_drains(tmp_path: Path) -> None:
    """Scaled down: the old fixed 30 s wait for a queue becomes a 1 s timeout that
    resets on progress, and a queue that takes at least twice that (a progress line
    at 2 s shows it did) drains in full."""
    with relay_process(tmp_path / "relay", *BIG_QUEUES) as relay:
        texts = queue_for_bob(tmp_path, relay.url, QUEUE_OVER_2_S)
        got = blindrelay("recv", "--json", "--stall-timeout", "1", "--home",
                         str(tmp_path / "bob"), timeout=120)
        assert got.returncode == EXIT_OK, got.stderr
        assert printed(got.stdout) == texts
        assert "envelopes received so far (2 s)" in got.stderr, got.stderr
        # and alice's capability (9.1)
        assert f"{QUEUE_OVER_2_S + 1} envelopes received in" in got.stderr
        again = blindrelay("recv", "--json", "--home", str(tmp_path / "bob"))
        assert again.returncode == EXIT_OK and printed(again.stdout) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_recv_cut_short_and_the_next_print_each_message_once(tmp_path: Path,
                                                               sig: int) -> None:
    with relay_process(tmp_path / "relay", *BIG_QUEUES) as relay:
        texts = queue_for_bob(tmp_path, relay.url, 2000)  # not all printed at once
        proc = subprocess.Popen(
            [sys.executable, "-m", "blindrelay", "recv", "--json", "--home",
             str(tmp_path / "bob")], cwd=ROOT, env=blindrelay_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        first: list[str] = []
        for line in proc.stdout:
            first.append(line)
            if len(first) == 60:
                proc.send_signal(sig)
                break
        rest, errors = _rest(proc)
        assert proc.returncode == 128 + sig, errors
        assert "Traceback" not in errors
        cut = printed("".join(first) + rest)
        assert 0 < len(cut) < len(texts)  # it stopped early (Ctrl+C stops at once)
        second = blindrelay("recv", "--json", "--home", str(tmp_path / "bob"))
        assert second.returncode == EXIT_OK, second.stderr
        assert cut + printed(second.stdout) == texts


def test_a_closed_pipe_is_a_quiet_exit_and_loses_nothing(tmp_path: Path) -> None:
    """`blindrelay recv | head -1` once head has gone: no traceback, the exit status
    of a program killed by SIGPIPE, and what could not be printed stays unread."""
    with relay_process(tmp_path / "relay", *BIG_QUEUES) as relay:
        texts = queue_for_bob(tmp_path, relay.url, 20)
        proc = subprocess.Popen(
            [sys.executable, "-m", "blindrelay", "recv", "--home", str(tmp_path / "bob")],
            cwd=ROOT, env=blindrelay_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line
        errors = proc.stderr.read()
        assert proc.wait(60) == 128 + signal.SIGPIPE, errors
        assert errors == ""
        after = blindrelay("recv", "--json", "--home", str(tmp_path / "bob"))
        assert after.returncode == EXIT_OK, after.stderr
        assert printed(after.stdout) == texts


class FreezableProxy:
    """A TCP proxy in front of the relay that can stop passing the relay's bytes on
    (a relay that stalls mid-queue, with the connection still open)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.frozen = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                relay = socket.create_connection(self.target)
                self.sockets += [client, relay]
                threading.Thread(target=self._pipe, args=(client, relay, False),
                                 daemon=True).start()
                threading.Thread(target=self._pipe, args=(relay, client, True),
                                 daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_relay: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(4096):
                while from_relay and self.frozen.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in [self.server, *self.sockets]:
            s.close()


def test_a_relay_that_stalls_mid_queue_and_the_next_recv(tmp_path: Path) -> None:
    """The issue's run: the first recv gives up (exit 5) with part of the queue
    printed, and the second prints the rest, not everything again."""
    port = free_port()
    proxy = FreezableProxy(port)
    url = f"ws://127.0.0.1:{proxy.port}"
    try:
        with relay_process(tmp_path / "relay", "--port", str(port), "--public-url", url):
            texts = queue_for_bob(tmp_path, url, 300)
            proc = subprocess.Popen(
                [sys.executable, "-m", "blindrelay", "recv", "--json", "--stall-timeout", "1",
                 "--home", str(tmp_path / "bob")], cwd=ROOT, env=blindrelay_env(),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            first: list[str] = []
            for line in proc.stdout:
                first.append(line)
                if len(first) == 30:
                    proxy.frozen.set()
                    break
            rest, errors = _rest(proc)
            assert proc.returncode == EXIT_UNREACHABLE, errors
            assert "the relay stopped delivering the queue: nothing for 1 s" in errors
            cut = printed("".join(first) + rest)
            assert 0 < len(cut) < len(texts)

            proxy.frozen.clear()
            second = blindrelay("recv", "--json", "--home", str(tmp_path / "bob"))
            assert second.returncode == EXIT_OK, second.stderr
            assert cut + printed(second.stdout) == texts
    finally:
        proxy.close()
