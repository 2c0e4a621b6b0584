"""SessionRecord: which of a peer's sessions opens a message, without a relay or a
client (docs/PROTOCOL.md section 13.3). Simultaneous start, a new session replacing
the current one (the previous one still opens late messages), a changed identity key
(a pending session), a replayed first message, failures leaving the record as it
was, serialisation, and a property test of the selection rules."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage, SessionSetupError
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Consumed, Session
from protocol.e2e.session_record import (
    MAX_ACCEPTED,
    Incoming,
    Opened,
    SessionRecord,
    Slot,
)
from protocol.wire import codec
from protocol.wire.errors import DecodeError, ProtocolError
from tests.protocol.support import DetRng, Device, flip

ALICE = IdentityKeyPair.generate(DetRng(b"record-alice"))


def wire(sent: tuple[MessageKind, bytes]) -> Incoming:
    return Incoming.parse(*sent)


class Peer:
    """One side: a device (identity and prekeys) and its record for the other side."""

    def __init__(self, seed: str) -> None:
        self.device = Device.create(seed, one_time_kem=4, one_time=4)
        self.record = SessionRecord()
        self.pinned: bytes | None = None
        self.rng = DetRng(f"{seed}-record".encode())

    @property
    def identity(self) -> IdentityKeyPair:
        return self.device.identity

    def start(self, other: Peer) -> None:
        """Starts a session from the other's bundle (pins its key, like the client)."""
        self.pinned = other.device.public
        self.record.current = Session.initiate(self.identity, other.device.bundle(), self.rng)

    def send(self, text: bytes) -> Incoming:
        assert self.record.current is not None
        return wire(self.record.current.encrypt(text))

    def open(self, incoming: Incoming) -> Opened:
        before = self.record.serialize()
        try:
            opened = self.record.open(incoming, identity=self.identity, pinned=self.pinned,
                                      lookup=self.device.lookup, rng=self.rng)
        except ProtocolError:
            assert self.record.serialize() == before, "a failed open changed the record"
            raise
        if opened.consumed is not None:
            self.device.consume(opened.consumed)
        if opened.slot is Slot.NEW and self.pinned is None:
            self.pinned = opened.identity
        # the record survives a save and a load at every step
        self.record = SessionRecord.deserialize(self.record.serialize(), self.rng)
        return opened


def test_first_contact_sets_up_the_current_session_and_repeats_open_in_it() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    first, second = alice.send(b"one"), alice.send(b"two")
    opened = bob.open(first)
    assert opened == Opened(b"one", Slot.NEW, consumed=Consumed(300, 200),
                            identity=alice.device.public, stored_as=Slot.CURRENT)
    assert bob.open(second) == Opened(b"two", Slot.CURRENT)
    assert second.initial is not None
    assert bob.record.accepted == [second.initial.ephemeral]
    # the reply ends the initial messages: Alice's next one is a ratchet message
    assert alice.open(bob.send(b"hi")) == Opened(b"hi", Slot.CURRENT)
    assert alice.send(b"three").kind is MessageKind.RATCHET


def test_a_repeated_initial_message_reports_the_gap_before_it() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    sent = [alice.send(b"m%d" % i) for i in range(4)]
    assert bob.open(sent[0]).slot is Slot.NEW
    assert bob.open(sent[3]) == Opened(b"m3", Slot.CURRENT, gap=2)
    assert bob.open(sent[1]) == Opened(b"m1", Slot.CURRENT)


def test_simultaneous_start_converges_on_one_session() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    bob.start(alice)
    to_bob, to_alice = alice.send(b"from alice"), bob.send(b"from bob")
    # each side replaces its own session with the one the other set up...
    assert bob.open(to_bob).stored_as is Slot.CURRENT
    assert alice.open(to_alice).stored_as is Slot.CURRENT
    assert alice.record.previous is not None and bob.record.previous is not None
    # ...and a reply in it reaches the initiator's previous session, which becomes current
    assert alice.open(bob.send(b"reply in alice's session")) == \
        Opened(b"reply in alice's session", Slot.PREVIOUS)
    # from here both talk in the session Alice set up
    assert bob.open(alice.send(b"again")) == Opened(b"again", Slot.CURRENT)
    assert alice.open(bob.send(b"and again")) == Opened(b"and again", Slot.CURRENT)
    assert bob.record.current is not None and alice.record.current is not None
    assert to_bob.initial is not None
    assert bob.record.current.base_key == to_bob.initial.ephemeral


def test_a_new_session_from_the_same_identity_keeps_the_old_one_for_late_messages() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    assert bob.open(alice.send(b"old 1")).slot is Slot.NEW
    alice.open(bob.send(b"reply"))
    late = alice.send(b"old 2, delivered late")
    assert late.kind is MessageKind.RATCHET
    old_alice = alice.record.current
    alice.start(bob)  # say Alice lost her session and started again
    opened = bob.open(alice.send(b"new 1"))
    assert (opened.slot, opened.stored_as) == (Slot.NEW, Slot.CURRENT)
    # the late message opens in the previous session, which becomes current again
    assert bob.open(late) == Opened(b"old 2, delivered late", Slot.PREVIOUS)
    assert bob.record.current is not None and old_alice is not None
    assert old_alice.decrypt(*bob.record.current.encrypt(b"to the old")) == b"to the old"


def test_a_changed_identity_key_gets_a_pending_session_until_accepted() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    bob.open(alice.send(b"hello"))
    alice.open(bob.send(b"hi"))
    late = alice.send(b"from the old key")
    impostor = Peer("alice-reinstalled")
    impostor.start(bob)
    opened = bob.open(impostor.send(b"new key"))
    assert (opened.slot, opened.stored_as, opened.identity) == \
        (Slot.NEW, Slot.PENDING, impostor.device.public)
    # the new key's ratchet messages open in the pending session...
    assert bob.record.pending is not None
    impostor.open(wire(bob.record.pending.encrypt(b"r")))
    assert bob.open(impostor.send(b"more")) == Opened(b"more", Slot.PENDING)
    # ...the old key's in the current one, which stays where replies go
    assert bob.open(late) == Opened(b"from the old key", Slot.CURRENT)
    # accepting the key: the pending session becomes current, the old ones go
    bob.record.accept_new_identity()
    bob.pinned = impostor.device.public
    assert bob.record.pending is None and bob.record.previous is None
    assert impostor.open(bob.send(b"welcome")).plaintext == b"welcome"
    with pytest.raises(DecryptionFailed):
        bob.open(alice.send(b"old key after acceptance"))


def test_accepting_a_key_without_a_pending_session_drops_the_current_one() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    bob.open(alice.send(b"hello"))
    bob.record.accept_new_identity()
    assert bob.record.current is None


def test_a_replayed_first_message_is_refused_once_its_session_is_gone() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    first = alice.send(b"first")
    bob.open(first)
    for text in (b"second session", b"third session"):
        alice.start(bob)
        bob.open(alice.send(text))
    # the first session is neither current nor previous any more; the prekeys it used
    # are gone, but a relay that withheld them would make this lookup succeed: only the
    # replay memory refuses it
    bob.device = Device.create("bob", one_time_kem=4, one_time=4)
    with pytest.raises(DuplicateMessage):
        bob.open(first)
    assert first.initial is not None and first.initial.ephemeral in bob.record.accepted


def test_a_replayed_first_message_to_a_held_session_is_a_duplicate() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    first = alice.send(b"first")
    bob.open(first)
    with pytest.raises(DuplicateMessage):
        bob.open(first)


def test_ratchet_messages_need_a_pinned_peer_and_a_session() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    bob.open(alice.send(b"hello"))
    alice.open(bob.send(b"hi"))
    message = alice.send(b"ratchet")
    stranger = Peer("bob")
    with pytest.raises(SessionSetupError):
        stranger.open(message)


def test_a_tampered_message_changes_nothing() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    first = alice.send(b"hello")
    tampered = Incoming.parse(first.kind, flip(first.message, len(first.message) * 8 - 1))
    with pytest.raises(DecryptionFailed):
        bob.open(tampered)
    assert bob.record.accepted == [] and bob.record.current is None
    assert bob.open(first).slot is Slot.NEW


def test_a_malformed_initial_message_does_not_parse() -> None:
    with pytest.raises(DecodeError):
        Incoming.parse(MessageKind.PREKEY, b"\x01" + bytes(40))


# -- serialisation


def test_an_empty_record_is_its_version_three_absent_sessions_and_no_base_keys() -> None:
    assert SessionRecord().serialize() == bytes.fromhex("02000000" "0000")


def test_a_version_1_record_keeps_its_base_keys_for_good() -> None:
    record = SessionRecord.deserialize(bytes.fromhex("01000000") + codec.u16(1) + bytes(32))
    assert record.accepted == [bytes(32)]
    record.forget_replays(set(), set())  # prekeys unknown: never forgotten
    assert record.accepted == [bytes(32)]
    data = record.serialize()
    assert data[:1] == b"\x02" and SessionRecord.deserialize(data).serialize() == data


def test_a_record_round_trips() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    alice.start(bob)
    bob.open(alice.send(b"hello"))
    data = bob.record.serialize()
    assert SessionRecord.deserialize(data).serialize() == data
    assert data[-48:-46] == codec.u16(1)


@pytest.mark.parametrize("data, why", [
    (bytes.fromhex("03000000" "0000"), "version"),
    (bytes.fromhex("02000000" "0000" "00"), "trailing byte"),
    (bytes.fromhex("02020000" "0000"), "flag"),
    (bytes.fromhex("01000000") + codec.u16(2001) + bytes(32) * 2001, "too many base keys"),
    (bytes.fromhex("02000000") + codec.u16(MAX_ACCEPTED + 1)
     + bytes(46) * (MAX_ACCEPTED + 1), "too many entries"),
    (bytes.fromhex("01000000") + codec.u16(2) + bytes(64), "repeated base key"),
    (bytes.fromhex("01000000") + codec.u16(1) + bytes(31), "short base key"),
    (bytes.fromhex("02000000") + codec.u16(1) + bytes(45), "short entry"),
    (bytes.fromhex("02000000") + codec.u16(1) + bytes(32) + bytes.fromhex("00000001" "03"
     "00000000" "00" "00000000"), "unknown KEM kind"),
    (bytes.fromhex("02000000") + codec.u16(1) + bytes(32) + bytes.fromhex("00000001" "00"
     "00000000" "00" "00000000"), "migrated entry naming a prekey"),
    (bytes.fromhex("02000000") + codec.u16(1) + bytes(32) + bytes.fromhex("00000001" "02"
     "00000064" "00" "00000005"), "one-time id without its flag"),
])
def test_bad_records_do_not_decode(data: bytes, why: str) -> None:
    with pytest.raises(DecodeError):
        SessionRecord.deserialize(data)


# -- the selection rules as a state machine


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["start", "send", "send", "deliver", "deliver", "deliver",
                               "reply"]), st.integers(0, 63)),
    min_size=8, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS)
def test_selection_rules_open_each_message_once_and_follow_the_peer(
        actions: list[tuple[str, int]]) -> None:
    """Alice keeps starting sessions with Bob (same identity, last-resort prekeys, so a
    replayed initial message would still find its keys), sends in any of them, and the
    relay delivers her messages in any order, any number of times. Then:
    - a message opens at most once, and a failed open changes nothing (Peer.open);
    - a first delivery opens exactly when its session is still held by Bob (current
      or previous) or it is an initial message whose base key Bob never accepted;
    - after an open, Bob's replies go to the session the message came from."""
    bob = Device.create("bob", one_time_kem=0, one_time=0)
    record = SessionRecord()
    rng = DetRng(repr(actions).encode()[:64])
    sessions: list[tuple[bytes, Session]] = []  # (base key EK_A, Alice's session)
    sent: list[tuple[bytes, Incoming]] = []
    opened: set[int] = set()

    def held() -> set[bytes | None]:
        return {s.base_key for s in (record.current, record.previous) if s is not None}

    for action, index in actions:
        if action == "start" or not sessions:
            alice = Session.initiate(ALICE, bob.bundle(opk=False, one_time_kem=False), rng)
            assert alice.pending_prefix is not None
            sessions.append((alice.pending_prefix[35:67], alice))
        elif action == "send":
            base, session = sessions[-1 - index % len(sessions)]
            sent.append((base, wire(session.encrypt(b"%d" % len(sent)))))
        elif action == "reply" and record.current is not None:
            reply = record.current.encrypt(b"reply")
            for _, session in sessions:
                try:
                    session.decrypt(*reply)
                    break
                except ProtocolError:
                    continue
        elif action == "deliver" and sent:
            number = len(sent) - 1 - index % len(sent)
            base, incoming = sent[number]
            before = record.serialize()
            expect = number not in opened and (
                base in held() or (incoming.initial is not None
                                   and base not in record.accepted))
            try:
                result = record.open(incoming, identity=bob.identity,
                                     pinned=None if not record.accepted else ALICE.public,
                                     lookup=bob.lookup, rng=rng)
            except ProtocolError:
                assert not expect
                assert record.serialize() == before
                continue
            assert expect, "opened a message twice or in a session Bob no longer holds"
            assert result.plaintext == b"%d" % number
            assert record.current is not None and record.current.base_key == base
            opened.add(number)
            record = SessionRecord.deserialize(record.serialize(), rng)
