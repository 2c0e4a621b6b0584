"""Sealed sending on a real relay (docs/PROTOCOL.md 16.10): delivery capabilities,
SEALED_SEND on a connection that never logs in, all or none, rotation, allow-anyone,
the per-capability budget, and no sender anywhere."""

from __future__ import annotations

import hashlib
import inspect
import os
import sqlite3
from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import (
    Deliver,
    Error,
    ErrorCode,
    Ok,
    QueueDone,
    SealedOutgoing,
    SealedSend,
    Sent,
    SetCapability,
    encode_frame,
)
from server.budgets import Rate
from server.events import FrameIn, RelayEvent
from server.relay import Relay
from server.sqlite_store import DB_FILENAME
from tests.support import running_relay

CAP = b"c" * 32
OTHER = b"o" * 32


async def _user(url: str, name: str, cap: bytes | None = CAP,
                anyone: bool = False) -> tuple[RelayConnection, IdentityKeyPair]:
    identity = IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    if cap is not None:
        await conn.request(SetCapability(anyone, hashlib.sha256(cap).digest()), Ok)
    return conn, identity


async def _sealed(url: str, *envelopes: tuple[str, bytes, bytes]) -> tuple[bytes, ...]:
    """One SEALED_SEND on a fresh connection that never logs in."""
    conn = await RelayConnection.open(url)
    try:
        sent = await conn.request(SealedSend(tuple(SealedOutgoing(r, c, b)
                                                   for r, c, b in envelopes)), Sent)
        return sent.envelope_ids
    finally:
        await conn.close()


async def _refused(url: str, code: ErrorCode, *envelopes: tuple[str, bytes, bytes]) -> None:
    with pytest.raises(RelayError) as refused:
        await _sealed(url, *envelopes)
    assert refused.value.code == code


async def _next_delivery(conn: RelayConnection) -> Deliver:
    while True:
        frame = await conn.next_push(5)
        if isinstance(frame, Deliver):
            return frame


def _rows(data_dir: Path, table: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return list(db.execute(f"SELECT * FROM {table}"))
    finally:
        db.close()


def test_the_sealed_path_takes_no_sender() -> None:
    """The function that stores a sealed send has no parameter a sender could come
    through: not the connection, not a user name."""
    assert list(inspect.signature(Relay._sealed_send).parameters) == ["self", "frame"]


async def test_sealed_send_reaches_online_and_offline_recipients(tmp_path: Path) -> None:
    events: list[RelayEvent] = []
    async with running_relay(tmp_path) as relay:
        relay.relay.observers.append(events.append)
        alice, _ = await _user(relay.url, "alice")  # the sender, logged in elsewhere
        bob, _ = await _user(relay.url, "bob")
        carol, carol_id = await _user(relay.url, "carol")
        await carol.close()
        body = os.urandom(300)
        bob_id, carol_env = await _sealed(relay.url, ("bob", CAP, body), ("carol", CAP, b"q"))
        pushed = await _next_delivery(bob)
        assert (pushed.envelope_id, pushed.body) == (bob_id, body)
        carol = await RelayConnection.open(relay.url)
        await carol.login("carol", carol_id)
        assert (await _next_delivery(carol)).envelope_id == carol_env
        # the stored rows have no sender; no event of the sealed send names one
        sealed_events = [e for e in events if "Sealed" in repr(e)
                         or getattr(e, "recipient", None) in ("bob", "carol")]
        assert sealed_events and all("alice" not in repr(e) for e in sealed_events)
        frames_in = [e for e in events if isinstance(e, FrameIn) and e.frame_type == "SealedSend"]
        assert frames_in and all(e.user is None for e in frames_in)
        for conn in (alice, bob, carol):
            await conn.close()
    rows = _rows(tmp_path, "envelopes")
    assert len(rows) == 2 and not any("alice" in repr(r) for r in rows)


async def test_wrong_capability_stores_nothing(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        bob, _ = await _user(relay.url, "bob")
        nocap, _ = await _user(relay.url, "nocap", cap=None)
        await _refused(relay.url, ErrorCode.BAD_CAPABILITY, ("bob", CAP, b"ok"),
                       ("bob", OTHER, b"wrong"))
        await _refused(relay.url, ErrorCode.BAD_CAPABILITY, ("nocap", CAP, b"x"))
        await _refused(relay.url, ErrorCode.BAD_CAPABILITY, ("nobody", CAP, b"x"))
        await bob.close()
        await nocap.close()
    assert _rows(tmp_path, "envelopes") == []


async def test_rotation_cuts_off_the_old_capability(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        bob, _ = await _user(relay.url, "bob")
        await _sealed(relay.url, ("bob", CAP, b"before"))
        await bob.request(SetCapability(False, hashlib.sha256(OTHER).digest()), Ok)
        await _refused(relay.url, ErrorCode.BAD_CAPABILITY, ("bob", CAP, b"old"))
        await _sealed(relay.url, ("bob", OTHER, b"after"))
        await bob.close()
    (row,) = _rows(tmp_path, "delivery_capabilities")
    assert row[:3] == ("bob", hashlib.sha256(OTHER).digest(), 0)
    assert isinstance(row[3], int) and row[3] % 86400 == 0  # the day only


async def test_allow_anyone_takes_any_capability(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        bob, _ = await _user(relay.url, "bob", anyone=True)
        await _sealed(relay.url, ("bob", OTHER, b"stranger"), ("bob", CAP, b"friend"))
        await bob.close()
    assert len(_rows(tmp_path, "envelopes")) == 2


async def test_a_flood_on_one_capability_is_rate_limited(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        relay.relay.budgets.sealed.rate = Rate(0.01, 3)
        bob, _ = await _user(relay.url, "bob", anyone=True)
        await _sealed(relay.url, *[("bob", CAP, b"%d" % i) for i in range(3)])
        await _refused(relay.url, ErrorCode.RATE_LIMITED, ("bob", CAP, b"flood"))
        # allow-anyone senders share one bucket, whatever capability they make up
        await _sealed(relay.url, *[("bob", os.urandom(32), b"a") for _ in range(3)])
        await _refused(relay.url, ErrorCode.RATE_LIMITED, ("bob", os.urandom(32), b"b"))
        await bob.close()
    assert len(_rows(tmp_path, "envelopes")) == 6


async def test_sealed_send_after_login_and_login_after_sealed_send(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        bob, bob_id = await _user(relay.url, "bob")
        data = SealedSend((SealedOutgoing("bob", CAP, b"x"),))
        answer = await bob.request_raw(encode_frame(data, bob.next_id()))
        assert isinstance(answer, Error) and answer.code == ErrorCode.ALREADY_AUTHENTICATED
        sender = await RelayConnection.open(relay.url)
        await sender.request(data, Sent)
        login = sender.core.login_frame("bob", bob_id.sign)
        refused = await sender.request_raw(encode_frame(login, sender.next_id()))
        assert isinstance(refused, Error) and refused.code == ErrorCode.ALREADY_AUTHENTICATED
        await sender.close()
        await bob.close()
    assert len(_rows(tmp_path, "envelopes")) == 1



async def test_the_capability_goes_with_the_account(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        bob, bob_id = await _user(relay.url, "bob")
        await bob.delete_account(bob_id)
        await bob.close()
        await _refused(relay.url, ErrorCode.BAD_CAPABILITY, ("bob", CAP, b"gone"))
    assert _rows(tmp_path, "delivery_capabilities") == []
