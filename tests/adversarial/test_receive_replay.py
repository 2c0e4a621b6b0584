"""Issue 9 item 8: a replayed first message must stay refused however many newer first
messages arrive. Before, the replay memory kept the newest 2000 base keys, so a hostile
relay (withholding one-time prekeys, so that every first message uses only the signed
and last-resort prekeys, whose private keys live for weeks) plus one colluding sender
pushed a first message's EK_A out and replayed it: the victim set up the dead session
again. Now each entry lives as long as the prekeys it used (PROTOCOL.md 13.3)."""

from __future__ import annotations

import pytest

from protocol.e2e.errors import DuplicateMessage, SessionSetupError
from protocol.e2e.keys import make_signed_prekey
from protocol.e2e.session import Session
from protocol.e2e.session_record import MAX_ACCEPTED, Incoming, SessionRecord, Slot
from protocol.wire.prekeys import KemKind
from tests.protocol.support import DetRng, Device

NEWER = 2001


def _first_message(alice: Device, bob: Device, rng: DetRng) -> Incoming:
    session = Session.initiate(alice.identity, bob.bundle(opk=False, one_time_kem=False), rng)
    return Incoming.parse(*session.encrypt(b"hello"))


def _open(record: SessionRecord, bob: Device, incoming: Incoming, pinned: bytes,
          rng: DetRng) -> Slot:
    return record.open(incoming, identity=bob.identity, pinned=pinned, lookup=bob.lookup,
                       rng=rng).slot


def test_a_replay_is_refused_after_more_than_2000_newer_first_messages() -> None:
    alice, bob = Device.create("alice", one_time_kem=0, one_time=0), Device.create("bob")
    rng = DetRng(b"replay-after-flood")
    record = SessionRecord()
    first = _first_message(alice, bob, rng)
    assert _open(record, bob, first, alice.public, rng) is Slot.NEW
    for _ in range(NEWER):
        assert _open(record, bob, _first_message(alice, bob, rng), alice.public,
                     rng) is Slot.NEW
    record = SessionRecord.deserialize(record.serialize(), rng)  # as the client stores it
    with pytest.raises(DuplicateMessage):
        _open(record, bob, first, alice.public, rng)


def test_the_memory_forgets_an_entry_only_once_its_prekeys_are_gone() -> None:
    alice, bob = Device.create("alice"), Device.create("bob")
    rng = DetRng(b"replay-prune")
    record = SessionRecord()
    first = _first_message(alice, bob, rng)
    _open(record, bob, first, alice.public, rng)
    assert first.initial is not None and first.initial.kem_kind is KemKind.LAST_RESORT
    record.forget_replays({1}, {100})  # both prekeys live: kept
    assert record.accepted == [first.initial.ephemeral]
    record.forget_replays({1}, {101})  # the last-resort KEM prekey was deleted
    assert record.accepted == []
    # and with the signed prekey gone, the replay cannot set a session up anyway
    del bob.signed[1]
    bob.signed[2] = make_signed_prekey(bob.identity, 2, rng)
    record.current = record.previous = None
    with pytest.raises(SessionSetupError):
        _open(record, bob, first, alice.public, rng)


def test_a_full_memory_refuses_new_sessions_rather_than_forgetting() -> None:
    alice, bob = Device.create("alice"), Device.create("bob")
    rng = DetRng(b"replay-full")
    record = SessionRecord(accepted=[i.to_bytes(32, "big") for i in range(MAX_ACCEPTED)])
    with pytest.raises(SessionSetupError):
        _open(record, bob, _first_message(alice, bob, rng), alice.public, rng)
    assert len(record.accepted) == MAX_ACCEPTED
