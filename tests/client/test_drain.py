"""Logging in to a long queue (issue 14): the relay pushes the whole queue after LOGIN
before it reads the client's next request, so the login's own requests are answered
only behind it. The client takes the queue from LOGIN on, its reader waiting for that
instead of reading ahead, and so logs in whatever the queue's length; the queue
arrives whole, once, and nothing stays on the relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import client.connection
from client.records import State
from tests.client.helpers import make_client, online, received, shut, wait_for, wait_state
from tests.support import BURSTS, running_relay

QUEUED = 300
BOUND = 16
"""The bound on pushes not yet taken, scaled down (from 2,048) so that a queue of
QUEUED is far beyond it (closing at 4 x BOUND) without the test queueing thousands."""


async def test_login_to_a_queue_far_beyond_the_push_bound(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    async with running_relay(tmp_path / "relay", rate_burst=10_000,
                             budgets=BURSTS) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_for(lambda: received(bob, "alice") == ["hello"])
        reply = await bob.send_text("alice", "hi")
        await wait_state(bob, "alice", reply, State.DELIVERED)

        await bob.disconnect()
        await alice.disconnect()  # queued offline, sent at the next connection
        texts = [f"queued {i}" for i in range(QUEUED)]
        for text in texts:
            await alice.send_text("bob", text)
        await online(alice)
        await wait_for(lambda: alice.store.outbox() == [], 60)

        monkeypatch.setattr(client.connection, "PUSH_FRAMES", BOUND)
        await online(bob)  # before: the connection closed (1008) during the login
        await wait_for(lambda: received(bob, "alice") == ["hello", *texts], 60)
        assert bob.conn is not None and bob.conn.error is None
        for _ in range(100):
            if not await relay.relay.storage.queued("bob", 0, 10):
                break
            await asyncio.sleep(0.02)  # a quiet ACK gets no answer
        assert await relay.relay.storage.queued("bob", 0, 10) == []
        await shut(alice, bob)
