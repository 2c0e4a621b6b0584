"""Relay.handle with a transport whose peer stops reading: the handler must end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from protocol.wire.frames import PrekeyCount, encode_frame
from server.config import default_limits
from server.relay import OUTBOX_SIZE, Relay
from server.sqlite_store import SqliteStorage


class StalledPeer:
    """A WebSocket whose peer sends many frames and never reads: every send blocks,
    until the keepalive gives up and sends start failing."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.dead = asyncio.Event()
        self.closed = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes]:
        for frame in self.frames:
            yield frame
        await self.closed.wait()

    async def send(self, message: bytes) -> None:
        await self.dead.wait()
        raise ConnectionResetError("peer gone")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.set()


async def test_a_stalled_peer_cannot_hang_its_handler(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    limits = default_limits()
    relay = Relay(store, limits, frozenset())
    # unauthenticated requests: each gets an ERROR answer, more than the outbox holds
    frames = [encode_frame(PrekeyCount(), i + 1) for i in range(OUTBOX_SIZE + 50)]
    peer = StalledPeer(frames)
    handler = asyncio.create_task(relay.handle(peer))
    await asyncio.sleep(0.2)
    assert not handler.done()  # blocked on the full outbox, as it should be
    peer.dead.set()  # the keepalive gives up: sends fail from now on
    await asyncio.wait_for(handler, 5)
    assert relay.connections == 0
    await store.close()
