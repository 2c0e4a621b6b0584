"""Issue 9 item 16: a hostile relay cannot make the client hold unbounded memory.

Frames are bounded by the relay's announced limits plus headroom (before HELLO by a
small fixed bound), and pushes the client has not taken yet are bounded too."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from client.connection import (
    HELLO_MAX_SIZE,
    PUSH_BYTES,
    PUSH_FRAMES,
    ConnectionLost,
    RelayConnection,
    frame_bound,
)
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.connection import request_id_of
from protocol.wire.frames import Deliver, Hello, Ok, QueueDone, encode_frame
from server.config import default_limits

LIMITS = default_limits()
Script = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def hostile_relay(script: Script) -> AsyncIterator[str]:
    """A relay that follows `script` (its first frames are up to the script)."""
    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await script(ws)
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def _hello() -> bytes:
    return encode_frame(Hello(os.urandom(32), LIMITS))


async def _login(ws: ServerConnection) -> None:
    await ws.send(_hello())
    request = await ws.recv()
    assert isinstance(request, bytes)
    await ws.send(encode_frame(Ok(), request_id_of(request)))
    await ws.send(encode_frame(QueueDone(0)))


def _deliver(i: int, size: int) -> bytes:
    return encode_frame(Deliver(i.to_bytes(16, "big"), 1_780_000_000, b"\x00" * size))


async def test_a_huge_first_frame_is_refused(tmp_path: object) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(b"\x01\x80" + bytes(4) + bytes(8 * 1024 * 1024))

    async with hostile_relay(script) as url:
        with pytest.raises((ConnectionLost, Exception)) as failed:
            await RelayConnection.open(url)
    assert "1009" in str(failed.value) or "too big" in str(failed.value).lower()


async def test_a_frame_beyond_the_announced_limits_closes_the_connection() -> None:
    assert HELLO_MAX_SIZE < frame_bound(LIMITS) < 2 * LIMITS.max_frame
    sent = asyncio.Event()

    async def script(ws: ServerConnection) -> None:
        await _login(ws)
        await ws.send(_deliver(1, LIMITS.max_envelope))  # the largest honest DELIVER
        await ws.send(_deliver(2, 64 * 1024 * 1024))  # 64 MiB
        sent.set()

    async with hostile_relay(script) as url:
        conn = await RelayConnection.open(url)
        await conn.register("alice", IdentityKeyPair.generate())
        await asyncio.wait_for(conn.closed.wait(), 10)
        close_sent = conn.ws.protocol.close_sent
        assert close_sent is not None and close_sent.code == 1009  # message too big
        frames = []
        while not conn.pushes.empty():
            frames.append(conn.pushes.get_nowait())
        assert [type(f) for f in frames] == [QueueDone, Deliver]  # the honest one arrived
        await conn.close()


async def test_pushes_not_taken_are_bounded() -> None:
    flood = PUSH_FRAMES * 3

    async def script(ws: ServerConnection) -> None:
        await _login(ws)
        for i in range(flood):
            await ws.send(_deliver(i, 100))

    async with hostile_relay(script) as url:
        conn = await RelayConnection.open(url)
        await conn.register("alice", IdentityKeyPair.generate())
        await asyncio.sleep(1.5)  # the relay pushes as fast as it can; nobody takes them
        held = conn.pushes.qsize()
        assert held <= PUSH_FRAMES + 64 and conn.pushes.bytes < PUSH_BYTES
        assert not conn.closed.is_set()
        taken = 0
        while taken < flood + 1:  # QUEUE_DONE, then every DELIVER: nothing was lost
            await conn.next_push(5)
            taken += 1
        await conn.close()
