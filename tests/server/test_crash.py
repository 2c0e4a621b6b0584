"""Crash safety: SIGKILL the relay while clients send, restart it on the same data
directory, and every envelope whose SEND was acknowledged is delivered, once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from pathlib import Path

from client.connection import ConnectionLost, RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from server.sqlite_store import DB_FILENAME
from tests.support import drain_queue, relay_process

SENDERS = 4


async def _sender(url: str, name: str, acked: dict[bytes, bytes],
                  ready: asyncio.Event) -> None:
    conn = await RelayConnection.open(url)
    await conn.register(name, IdentityKeyPair.generate())
    ready.set()
    counter = 0
    with contextlib.suppress(ConnectionLost, RelayError, OSError):
        while True:
            body = f"{name}:{counter}:".encode() + os.urandom(64)
            (envelope_id,) = await conn.send([("bob", body)])
            acked[envelope_id] = body
            counter += 1


async def test_sigkill_mid_traffic_loses_no_acknowledged_envelope(
        tmp_path: Path, backend: str, serve_args: tuple[str, ...]) -> None:
    """On SQLite and on PostgreSQL (serve_args: the --storage option)."""
    bob_id = IdentityKeyPair.generate()
    acked: dict[bytes, bytes] = {}
    with relay_process(tmp_path, "--rate", "10000", "--burst", "10000", *serve_args) as rp:
        bob = await RelayConnection.open(rp.url)
        await bob.register("bob", bob_id)
        await bob.close()
        events = [asyncio.Event() for _ in range(SENDERS)]
        tasks = [asyncio.create_task(_sender(rp.url, f"sender{i}", acked, events[i]))
                 for i in range(SENDERS)]
        for event in events:
            await asyncio.wait_for(event.wait(), 10)
        while len(acked) < 300:
            await asyncio.sleep(0.02)
        rp.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(rp.proc.wait, 10)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        rp.proc.communicate()

    if backend == "sqlite":
        check = sqlite3.connect(tmp_path / DB_FILENAME)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()

    with relay_process(tmp_path, *serve_args) as rp:
        bob = await RelayConnection.open(rp.url)
        await bob.login("bob", bob_id)
        delivered = await drain_queue(bob)
        await bob.close()
        rp.stop()

    missing = [eid for eid in acked if eid not in delivered]
    assert not missing, f"{len(missing)} acknowledged envelopes lost of {len(acked)}"
    for eid, body in acked.items():
        assert delivered[eid] == body
    # in-order per sender: counters strictly increase in delivery order
    last: dict[bytes, int] = {}
    for body in delivered.values():
        name, counter, _ = body.split(b":", 2)
        assert int(counter) > last.get(name, -1)
        last[name] = int(counter)
