"""RelayConnection, the client's asyncio shell over the conversation core: against our
relay, and against scripted relays that break the conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from client.connection import ConnectionLost, RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.errors import LocalProtocolError, RemoteProtocolError
from protocol.wire.frames import (
    Deliver,
    Error,
    ErrorCode,
    Hello,
    Ok,
    PrekeyCount,
    PrekeyCounts,
    QueueDone,
    encode_frame,
)
from server.config import default_limits
from tests.support import running_relay

Script = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """Starts a WebSocket server that sends HELLO, then runs a script; yields its URL."""
    servers = []

    async def start(script: Script) -> str:
        async def handler(ws: ServerConnection) -> None:
            await ws.send(encode_frame(Hello(bytes(range(32)), default_limits())))
            await script(ws)
            await ws.wait_closed()

        server = await serve(handler, "127.0.0.1", 0, compression=None)
        servers.append(server)
        return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_register_logs_in_and_requests_get_answers(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        conn = await RelayConnection.open(relay.url)
        try:
            assert conn.username is None and conn.limits == default_limits()
            await conn.register("alice", IdentityKeyPair.generate())
            assert conn.username == "alice"
            assert isinstance(await conn.next_push(5), QueueDone)
            assert await conn.prekey_counts() == (0, 0)
            with pytest.raises(RelayError) as refused:
                await conn.fetch_bundle("nobody")
            assert refused.value.code == ErrorCode.UNKNOWN_USER
        finally:
            await conn.close()


async def test_a_request_the_state_does_not_allow_is_never_sent(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        conn = await RelayConnection.open(relay.url)
        try:
            with pytest.raises(LocalProtocolError):
                await conn.prekey_counts()  # before login: a bug on our side
            # a raw request bypasses the rule, and the relay refuses it as documented
            answer = await conn.request_raw(encode_frame(PrekeyCount(), conn.next_id()))
            assert isinstance(answer, Error) and answer.code == ErrorCode.NOT_AUTHENTICATED
        finally:
            await conn.close()


async def test_an_answer_of_the_wrong_type_drops_the_connection(
        scripted: Callable[[Script], Awaitable[str]]) -> None:
    async def script(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, bytes)
            await ws.send(encode_frame(Ok(), int.from_bytes(message[2:6], "big")))

    conn = await RelayConnection.open(await scripted(script))
    await conn.login("alice", IdentityKeyPair.generate())  # OK is LOGIN's answer
    with pytest.raises(ConnectionLost):  # but not PREKEY_COUNT's
        await asyncio.wait_for(conn.prekey_counts(), 5)
    assert isinstance(conn.error, RemoteProtocolError)
    assert "PREKEY_COUNTS" in str(conn.error)
    await conn.close()


async def test_a_push_before_login_drops_the_connection(
        scripted: Callable[[Script], Awaitable[str]]) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(encode_frame(Deliver(bytes(16), 0, b"unasked")))

    conn = await RelayConnection.open(await scripted(script))
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert isinstance(conn.error, RemoteProtocolError)
    assert conn.pushes.empty()
    await conn.close()


async def test_an_error_for_an_unreadable_frame_is_a_push(
        scripted: Callable[[Script], Awaitable[str]]) -> None:
    async def script(ws: ServerConnection) -> None:
        async for _ in ws:
            await ws.send(encode_frame(Error(ErrorCode.MALFORMED_FRAME, "too short")))

    conn = await RelayConnection.open(await scripted(script))
    await conn.send_raw(b"\x01")
    frame = await conn.next_push(5)
    assert isinstance(frame, Error) and frame.code == ErrorCode.MALFORMED_FRAME
    assert not conn.closed.is_set()
    await conn.close()


async def test_counts_answer_is_typed(scripted: Callable[[Script], Awaitable[str]]) -> None:
    async def script(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, bytes)
            rid = int.from_bytes(message[2:6], "big")
            answer = Ok() if message[1] == 0x03 else PrekeyCounts(7, 8)
            await ws.send(encode_frame(answer, rid))

    conn = await RelayConnection.open(await scripted(script))
    await conn.login("alice", IdentityKeyPair.generate())
    assert await conn.prekey_counts() == (7, 8)
    await conn.close()
