"""Shared helpers: a real relay on a loopback port, in-process or as a process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from client.connection import RelayConnection
from protocol.wire.frames import Deliver, QueueDone
from server import serve
from server.budgets import Budgets, Rate
from server.config import ServerConfig, default_limits
from server.connections import ConnectionLimits
from server.relay import Relay

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningRelay:
    url: str
    port: int
    relay: Relay
    config: ServerConfig


@contextlib.asynccontextmanager
async def running_relay(data_dir: Path, **limits: Any) -> AsyncIterator[RunningRelay]:
    """Our relay in this event loop on a free loopback port (`storage=URL`: its
    tables in that PostgreSQL database instead of SQLite in data_dir)."""
    expiry = limits.pop("expiry_interval", 60.0)
    storage = limits.pop("storage", "")
    connections = limits.pop("connections", None) or ConnectionLimits()
    budgets = limits.pop("budgets", None) or Budgets()
    config = ServerConfig(port=0, data_dir=data_dir, limits=replace(default_limits(), **limits),
                          expiry_interval=expiry, connections=connections, budgets=budgets,
                          storage=storage)
    async with serve.running_relay(config) as running:
        yield RunningRelay(running.url, running.port, running.relay, config)


BURSTS = Budgets(sealed_per_capability=Rate(10_000.0, 10_000))
"""For tests that send bursts of hundreds to one contact: sealed envelopes under one
capability are otherwise budgeted at 60, then 2 a second (PROTOCOL.md 16.10), and
the rest would wait for the budget to refill."""


LISTENING = re.compile(r"listening on (wss?://\S+)")


@dataclass
class RelayProcess:
    proc: subprocess.Popen[str]
    url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_relay_process(data_dir: Path, *args: str) -> RelayProcess:
    """`blindrelay serve` as a real process on a free port; returns once it listens."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "blindrelay", "serve", "--port", "0", "--data", str(data_dir),
         *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = LISTENING.search(line)
        if match:
            return RelayProcess(proc, match.group(1))
    proc.wait(5)
    raise RuntimeError(f"relay did not start: {proc.stderr.read() if proc.stderr else ''}")


@contextlib.contextmanager
def relay_process(data_dir: Path, *args: str) -> Iterator[RelayProcess]:
    rp = start_relay_process(data_dir, *args)
    try:
        yield rp
    finally:
        if rp.proc.poll() is None:
            rp.proc.kill()
            rp.proc.wait(5)


async def drain_queue(conn: RelayConnection, timeout: float = 10.0) -> dict[bytes, bytes]:
    """Envelope id -> body of every DELIVER up to QUEUE_DONE after a login, failing the
    test if one envelope comes twice (the crash tests: nothing lost, nothing doubled)."""
    delivered: dict[bytes, bytes] = {}
    while not isinstance(frame := await conn.next_push(timeout), QueueDone):
        assert isinstance(frame, Deliver)
        assert frame.envelope_id not in delivered, "an envelope was delivered twice"
        delivered[frame.envelope_id] = frame.body
    return delivered
