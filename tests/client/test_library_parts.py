"""What the client's parts promise on top of the end-to-end behaviour: queued
envelopes leave in as few SENDs as the relay's limits allow (and a refused one is
still told apart), a received message is unsealed and its session record loaded and
saved once, profiles made before session records keep their sessions, and the
relay's errors reach views as ClientErrors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client.client import MAX_TEXT, Client
from client.errors import ClientError, NotConnected, Refused, RelayRefused, UnknownContact
from client.records import Direction, Message, OutboxItem, State
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import SealedContent
from protocol.e2e.sealed import unseal as real_unseal
from protocol.wire.frames import ErrorCode
from server import serve
from server.budgets import Budgets, Rate
from server.config import ServerConfig
from server.events import FrameIn, RelayEvent
from tests.client.helpers import (
    make_client,
    online,
    received,
    shut,
    wait_for,
    wait_last,
    wait_state,
)
from tests.support import RunningRelay, running_relay


def sends_by(events: list[RelayEvent], user: str) -> int:
    return sum(1 for e in events
               if isinstance(e, FrameIn) and e.frame_type == "Send" and e.user == user)


def frames_of_alice(events: list[RelayEvent], sealed: bool) -> int:
    """Alice's SENDs, or with sealed sending the SEALED_SENDs (on connections that
    never logged in: bob's receipts are held back, so they are all alice's)."""
    if not sealed:
        return sends_by(events, "alice")
    assert sends_by(events, "alice") == 0  # nothing on her logged-in connection
    return sum(1 for e in events
               if isinstance(e, FrameIn) and e.frame_type == "SealedSend" and e.user is None)


async def _talking(tmp_path: Path, url: str, sealed: bool = True, hold_receipts: bool = False
                   ) -> tuple[Client, Client]:
    """Alice and Bob with a session, their capabilities exchanged, and no receipt still
    on its way; with `hold_receipts`, bob's automatic receipts wait an hour from here."""
    alice = await make_client(tmp_path, "alice", url)
    bob = await make_client(tmp_path, "bob", url)
    alice.sealed_sending = bob.sealed_sending = sealed
    hello = await alice.send_text("bob", "hello")
    await wait_state(alice, "bob", hello, State.DELIVERED)
    hi = await bob.send_text("alice", "hi")
    await wait_state(bob, "alice", hi, State.DELIVERED)
    if hold_receipts:
        bob.receipt_delay = 3600
    return alice, bob


SEALED = pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "send"])


@SEALED
async def test_queued_messages_leave_in_one_send(tmp_path: Path, relay: RunningRelay,
                                                 sealed: bool) -> None:
    alice, bob = await _talking(tmp_path, relay.url, sealed, hold_receipts=True)
    await alice.disconnect()
    queued = [await alice.send_text("bob", f"offline {i}") for i in range(6)]
    assert all(m.state is State.SENDING for m in queued)
    frames: list[RelayEvent] = []
    relay.relay.observers.append(frames.append)
    await online(alice)
    await wait_last(bob, "alice", "offline 5")
    assert received(bob, "alice")[-6:] == [f"offline {i}" for i in range(6)]
    assert frames_of_alice(frames, sealed) == 1
    assert alice.store.outbox() == []
    await shut(alice, bob)


@SEALED
async def test_batches_respect_max_recipients(tmp_path: Path, sealed: bool) -> None:
    async with running_relay(tmp_path / "relay", max_recipients=2) as relay:
        alice, bob = await _talking(tmp_path, relay.url, sealed, hold_receipts=True)
        await alice.disconnect()
        for i in range(5):
            await alice.send_text("bob", f"offline {i}")
        frames: list[RelayEvent] = []
        relay.relay.observers.append(frames.append)
        await online(alice)
        await wait_last(bob, "alice", "offline 4")
        assert frames_of_alice(frames, sealed) == 3  # 2 + 2 + 1
        await shut(alice, bob)


@SEALED
async def test_batches_respect_max_frame(tmp_path: Path, relay: RunningRelay,
                                         sealed: bool) -> None:
    """Six messages of the largest size: four fit one 256 KiB frame, then two."""
    alice, bob = await _talking(tmp_path, relay.url, sealed, hold_receipts=True)
    await alice.disconnect()
    big = [f"{i}" + "x" * (MAX_TEXT - 1) for i in range(6)]
    for text in big:
        await alice.send_text("bob", text)
    frames: list[RelayEvent] = []
    relay.relay.observers.append(frames.append)
    await online(alice)
    await wait_last(bob, "alice", big[-1])
    assert received(bob, "alice")[-6:] == big
    assert frames_of_alice(frames, sealed) == 2
    assert all(e.size <= relay.config.limits.max_frame
               for e in frames if isinstance(e, FrameIn))
    await shut(alice, bob)


async def test_a_refused_envelope_in_a_batch_fails_alone(tmp_path: Path,
                                                         relay: RunningRelay) -> None:
    """SEND is all or none: when the relay refuses a batch, each envelope is sent
    alone, so only the one the relay refuses fails and the others arrive in order."""
    alice, bob = await _talking(tmp_path, relay.url)
    await alice.disconnect()
    await alice.send_text("bob", "before")
    with alice.store.transaction():
        doomed = alice.messages.add(Message("nobody", Direction.OUT, "lost",
                                            State.SENDING))
        # a row as older versions wrote it (sealed at queue time): sent as it is
        alice.outbox.queue(OutboxItem("nobody", b"\x01" * 64, doomed.row_id))
    await alice.send_text("bob", "after")
    await online(alice)
    await wait_last(bob, "alice", "after")
    assert received(bob, "alice")[-2:] == ["before", "after"]
    failed = alice.message(doomed.row_id)
    assert failed is not None and failed.state is State.FAILED
    assert failed.error  # the reason the relay gave
    assert alice.store.outbox() == []
    await shut(alice, bob)


async def test_a_message_is_unsealed_once_and_its_record_loaded_and_saved_once(
        tmp_path: Path, relay: RunningRelay, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = await _talking(tmp_path, relay.url)
    calls = {"unseal": 0, "load": 0, "save": 0}
    real_load, real_save = bob.sessions.load, bob.sessions.save

    def unseal(identity: IdentityKeyPair, data: bytes) -> SealedContent:
        calls["unseal"] += identity is bob.identity  # alice's client shares the module
        return real_unseal(identity, data)

    def load(name: str) -> object:
        calls["load"] += 1
        return real_load(name)

    def save(name: str, record: object) -> None:
        calls["save"] += 1
        real_save(name, record)  # type: ignore[arg-type]

    monkeypatch.setattr("client.inbox.unseal", unseal)
    monkeypatch.setattr(bob.sessions, "load", load)
    monkeypatch.setattr(bob.sessions, "save", save)
    counted = await alice.send_text("bob", "counted")
    await wait_state(alice, "bob", counted, State.DELIVERED)
    # the delivery receipt bob sends is encrypted with the same record
    assert calls == {"unseal": 1, "load": 1, "save": 1}
    await shut(alice, bob)


async def test_relay_refusals_and_dropped_connections_are_client_errors(
        tmp_path: Path, relay: RunningRelay) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    with pytest.raises(UnknownContact):
        await alice.send_text("nobody", "hello?")
    with pytest.raises(Refused):
        await alice.send_text("alice", "me")
    with pytest.raises(Refused):
        await alice.send_text("Not A Name", "x")
    await alice.disconnect()
    with pytest.raises(NotConnected):
        await alice.send_text("carol", "offline, no session")
    impostor = Client.create(tmp_path / "impostor", "alice", relay.url, None)
    with pytest.raises(RelayRefused) as refused:
        await impostor.connect()
    assert refused.value.code == ErrorCode.USERNAME_TAKEN and refused.value.fatal
    assert isinstance(refused.value, ClientError)
    impostor.close()
    alice.close()


async def test_a_profile_from_before_session_records_keeps_its_sessions(
        tmp_path: Path, relay: RunningRelay) -> None:
    """Earlier profiles stored up to three session rows per peer and one list of
    accepted initial messages; the first message after the update opens in them and
    the peer's sessions move into one record."""
    alice, bob = await _talking(tmp_path, relay.url)
    record = bob.sessions.load("alice")
    assert record.current is not None and record.accepted
    bob.sessions.forget("alice")
    with bob.store.transaction():  # as an earlier version stored them
        bob.store.put("sessions", b"session", b"alice", record.current.serialize())
        bob.store.put("settings", b"setting", b"base_keys",
                      f'["{record.accepted[0].hex()}"]'.encode())
    migrated = bob.sessions.load("alice")
    assert migrated.current is not None
    assert migrated.current.serialize() == record.current.serialize()
    assert migrated.accepted == record.accepted  # its prekeys unknown: kept for good
    await alice.send_text("bob", "after the update")
    await wait_last(bob, "alice", "after the update")
    assert bob.store.get("sessions", b"session", b"alice") is None
    await wait_for(lambda: bob.sessions.load("alice").current is not None)
    await shut(alice, bob)


async def test_a_budget_refusal_keeps_the_message_queued(tmp_path: Path) -> None:
    """SENDER_BUDGET (and STORAGE_FULL) say 'later', not 'never': the message stays in
    the outbox as sending and goes out once the budget has refilled (the client tries
    again by itself too)."""
    config = ServerConfig(port=0, data_dir=tmp_path / "relay",  # alice's capability, m0, m1
                          budgets=Budgets(pair_envelopes=Rate(1.0, 3)))
    async with serve.running_relay(config) as running:
        alice = await make_client(tmp_path, "alice", running.url)
        bob = await make_client(tmp_path, "bob", running.url)
        alice.sealed_sending = False  # SEND's budgets (sealed ones: test_sealed_sending.py)
        sent = [await alice.send_text("bob", f"m{i}") for i in range(4)]
        await wait_last(bob, "alice", "m1")
        m3 = next(m for m in alice.history("bob") if m.row_id == sent[3].row_id)
        assert m3.state is State.SENDING, m3.error  # not FAILED
        await asyncio.sleep(2.5)  # the pair's budget refills one envelope a second
        await alice.flush_outbox()
        await wait_last(bob, "alice", "m3")
        assert received(bob, "alice") == ["m0", "m1", "m2", "m3"]
        await shut(alice, bob)
