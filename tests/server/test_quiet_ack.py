"""The quiet ACK (PROTOCOL.md 16.5): an ACK with request id 0 deletes its envelopes and
gets no answer; a numbered ACK still gets OK; a quiet ACK the relay cannot carry out
is refused with ERROR and request id 0. Against a real relay on loopback, spoken frame
by frame over the client's sans-I/O core so that every frame the relay sends is seen."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.connection import ClientConnection as ClientCore
from protocol.wire.events import Answered, Refused, ServerEvent
from protocol.wire.frames import (
    Ack,
    Deliver,
    ErrorCode,
    Ok,
    PrekeyCount,
    PrekeyCounts,
    PrekeysLow,
    QueueDone,
)
from tests.support import running_relay


async def _open(url: str) -> tuple[ClientConnection, ClientCore]:
    ws = await connect(url, compression=None, max_size=None, ping_interval=None)
    core = ClientCore(url)
    core.receive_data(await ws.recv())  # type: ignore[arg-type]
    return ws, core


async def _next(ws: ClientConnection, core: ClientCore) -> ServerEvent:
    data = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(data, bytes)
    (event,) = core.receive_data(data)
    return event


async def _login(url: str, name: str, identity: IdentityKeyPair
                 ) -> tuple[ClientConnection, ClientCore, list[Deliver]]:
    """LOGIN, then the queue up to QUEUE_DONE."""
    ws, core = await _open(url)
    await ws.send(core.send(core.login_frame(name, identity.sign)))
    assert isinstance(await _next(ws, core), Answered)
    delivered: list[Deliver] = []
    while not isinstance(frame := (await _next(ws, core)).frame, QueueDone):
        assert isinstance(frame, Deliver)
        delivered.append(frame)
    return ws, core, delivered


async def _until_answer(ws: ClientConnection, core: ClientCore) -> tuple[ServerEvent,
                                                                         list[ServerEvent]]:
    """Sends PREKEY_COUNT; returns its answer and every other frame that came first
    (the relay handles a connection's frames in order, so any answer to an earlier
    frame arrives before it)."""
    await ws.send(core.send(PrekeyCount()))
    before: list[ServerEvent] = []
    while not isinstance((event := await _next(ws, core)).frame, PrekeyCounts):
        before.append(event)
    return event, before


async def test_a_quiet_ack_deletes_and_gets_no_answer(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice = await RelayConnection.open(relay.url)
        await alice.register("alice", IdentityKeyPair.generate())
        bob_id = IdentityKeyPair.generate()
        bob = await RelayConnection.open(relay.url)
        await bob.register("bob", bob_id)
        await bob.close()
        bodies = [os.urandom(100) for _ in range(3)]
        ids = [(await alice.send([("bob", b)]))[0] for b in bodies]
        ws, core, delivered = await _login(relay.url, "bob", bob_id)
        assert [d.body for d in delivered] == bodies
        await ws.send(core.send_quiet(Ack((ids[0], ids[1]))))
        answer, before = await _until_answer(ws, core)
        assert isinstance(answer, Answered)
        # nothing answered the quiet ACK: at most the PREKEYS_LOW push came in between
        assert [type(e.frame) for e in before if not isinstance(e.frame, PrekeysLow)] == []
        # a numbered ACK is still answered with OK
        await ws.send(core.send(Ack((os.urandom(16),))))
        assert isinstance((await _next(ws, core)).frame, Ok)
        await ws.close()
        ws, core, delivered = await _login(relay.url, "bob", bob_id)
        assert [(d.envelope_id, d.body) for d in delivered] == [(ids[2], bodies[2])]
        await ws.close()
        await alice.close()


async def test_a_quiet_ack_before_login_is_refused_with_request_id_0(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        ws, core = await _open(relay.url)
        await ws.send(bytes((1, Ack.TYPE, 0, 0, 0, 0)) + b"\x00\x01" + bytes(16))
        event = await _next(ws, core)
        assert isinstance(event, Refused) and event.request_id == 0
        assert event.frame.code == ErrorCode.NOT_AUTHENTICATED
        await ws.close()
