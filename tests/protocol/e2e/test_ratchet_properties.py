"""Property tests: two parties talking over a network that reorders, loses and
duplicates messages, with forgeries and restarts from saved state thrown in.

Whatever the interleaving, every message that arrives decrypts to exactly what was
sent, exactly once; a replay is rejected as a DuplicateMessage and changes nothing;
a tampered message is rejected and changes nothing; and afterwards both sides keep
talking, and messages still in flight arrive intact.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.ratchet import MAX_RETIRED, Ratchet
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Session
from protocol.wire.errors import DecodeError, ProtocolError
from tests.protocol.support import EPHEMERAL, DetRng, Device, flip, ratchet_pair

PARTIES = ("alice", "bob")
OTHER = {"alice": "bob", "bob": "alice"}

# A replayed message is recognised as a duplicate as long as its chain is among the
# receiver's last MAX_RETIRED + 1 peer ratchet keys. Each new chain takes at least four
# steps (send, deliver, reply, deliver), so these runs stay well inside that window;
# test_ratchet checks what happens beyond it.
STEPS = 50
assert STEPS // 4 < MAX_RETIRED

STATEFUL = settings(
    max_examples=250,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Sent:
    sender: str
    wire: bytes
    plaintext: bytes
    kind: MessageKind = MessageKind.RATCHET

    @property
    def receiver(self) -> str:
        return OTHER[self.sender]


class Network(RuleBasedStateMachine):
    """Bookkeeping shared by both machines: messages in flight, delivered and lost."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list[Sent] = []
        self.delivered: list[Sent] = []
        self.lost: list[Sent] = []
        self.received: dict[str, list[bytes]] = {p: [] for p in PARTIES}
        self.counter = 0
        self.ready = False

    def plaintext(self, sender: str, size: int) -> bytes:
        self.counter += 1
        return f"{sender}#{self.counter}|".encode() + bytes(range(size))

    def pick(self, data: st.DataObject, messages: list[Sent]) -> int:
        return data.draw(st.integers(0, len(messages) - 1), label="message")

    def record(self, msg: Sent, plaintext: bytes) -> None:
        assert plaintext == msg.plaintext
        self.delivered.append(msg)
        self.received[msg.receiver].append(plaintext)

    @invariant()
    def each_message_arrived_at_most_once(self) -> None:
        for party in PARTIES:
            assert len(set(self.received[party])) == len(self.received[party])
        lost = {m.plaintext for m in self.lost}
        assert lost.isdisjoint(self.received["alice"] + self.received["bob"])


# -- the Double Ratchet alone


class RatchetConversation(Network):
    @initialize(seed=st.binary(min_size=1, max_size=8))
    def start(self, seed: bytes) -> None:
        self.rngs = {p: DetRng(seed + p.encode()) for p in PARTIES}
        alice, bob = ratchet_pair(DetRng(seed))
        alice.rng, bob.rng = self.rngs["alice"], self.rngs["bob"]
        self.parties = {"alice": alice, "bob": bob}
        self.ready = True

    @rule(sender=st.sampled_from(PARTIES), size=st.integers(0, 48))
    def send(self, sender: str, size: int) -> None:
        party = self.parties[sender]
        plaintext = self.plaintext(sender, size)
        if party.cks is None:  # Bob before Alice's first message arrived
            before = party.serialize()
            with pytest.raises(ProtocolError):
                party.encrypt(plaintext)
            assert party.serialize() == before
            return
        self.in_flight.append(Sent(sender, party.encrypt(plaintext), plaintext))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        msg = self.in_flight.pop(self.pick(data, self.in_flight))
        self.record(msg, self.parties[msg.receiver].decrypt(msg.wire))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        self.lost.append(self.in_flight.pop(self.pick(data, self.in_flight)))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        msg = self.delivered[self.pick(data, self.delivered)]
        receiver = self.parties[msg.receiver]
        before = receiver.serialize()
        with pytest.raises(DuplicateMessage):
            receiver.decrypt(msg.wire)
        assert receiver.serialize() == before

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def tamper(self, data: st.DataObject) -> None:
        msg = self.in_flight[self.pick(data, self.in_flight)]
        bit = data.draw(st.integers(0, len(msg.wire) * 8 - 1), label="bit")
        receiver = self.parties[msg.receiver]
        before = receiver.serialize()
        with pytest.raises((DecodeError, DecryptionFailed)):
            receiver.decrypt(flip(msg.wire, bit))
        assert receiver.serialize() == before

    @precondition(lambda self: self.ready)
    @rule(who=st.sampled_from(PARTIES))
    def restore(self, who: str) -> None:
        saved = self.parties[who].serialize()
        self.parties[who] = Ratchet.deserialize(saved, self.rngs[who])
        assert self.parties[who].serialize() == saved

    def exchange(self, sender: str) -> None:
        plaintext = self.plaintext(sender, 5)
        wire = self.parties[sender].encrypt(plaintext)
        self.record(Sent(sender, wire, plaintext), self.parties[OTHER[sender]].decrypt(wire))

    def teardown(self) -> None:
        if not self.ready:
            return
        for sender in ("alice", "bob", "alice", "bob"):  # both sides keep talking
            self.exchange(sender)
        for msg in self.in_flight:  # and what was still on its way arrives late
            self.record(msg, self.parties[msg.receiver].decrypt(msg.wire))
        self.in_flight.clear()
        self.each_message_arrived_at_most_once()
        self.exchange("bob")
        self.exchange("alice")


def test_ratchet_conversations_over_a_bad_network() -> None:
    run_state_machine_as_test(RatchetConversation, settings=STATEFUL)


# -- whole sessions: PQXDH, repeated initial messages, padding, persistence

ALICE = IdentityKeyPair.generate(DetRng(b"properties-alice"))


class SessionConversation(Network):
    @initialize(opk=st.booleans(), one_time_kem=st.booleans(), seed=st.binary(max_size=8))
    def start(self, opk: bool, one_time_kem: bool, seed: bytes) -> None:
        self.rngs = {p: DetRng(seed + p.encode()) for p in PARTIES}
        self.device = Device.create("properties-bob")
        bundle = self.device.bundle(opk=opk, one_time_kem=one_time_kem)
        alice = Session.initiate(ALICE, bundle, self.rngs["alice"])
        self.sessions: dict[str, Session | None] = {"alice": alice, "bob": None}
        self.alice_heard_from_bob = False
        self.prefix: bytes | None = None
        self.ready = True

    def session(self, who: str) -> Session:
        session = self.sessions[who]
        assert session is not None
        return session

    @rule(sender=st.sampled_from(PARTIES), size=st.integers(0, 200))
    def send(self, sender: str, size: int) -> None:
        session = self.sessions[sender]
        if session is None:  # Bob has no session until an initial message arrives
            return
        plaintext = self.plaintext(sender, size)
        kind, wire = session.encrypt(plaintext)
        if sender == "bob" or self.alice_heard_from_bob:
            assert kind is MessageKind.RATCHET
        else:  # Alice repeats the same PQXDH data until Bob's first reply arrives
            assert kind is MessageKind.PREKEY
            prefix = PreKeyMessage.decode(wire).encode_prefix()
            assert self.prefix in (None, prefix)
            self.prefix = prefix
        self.in_flight.append(Sent(sender, wire, plaintext, kind))

    def receive(self, msg: Sent) -> bytes:
        if msg.receiver == "bob" and self.sessions["bob"] is None:
            assert msg.kind is MessageKind.PREKEY
            session, plaintext, consumed = Session.respond(
                self.device.identity, msg.wire, self.device.lookup, self.rngs["bob"])
            self.device.consume(consumed)
            self.sessions["bob"] = session
            return plaintext
        plaintext = self.session(msg.receiver).decrypt(msg.kind, msg.wire)
        if msg.receiver == "alice":
            self.alice_heard_from_bob = True
        return plaintext

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        msg = self.in_flight.pop(self.pick(data, self.in_flight))
        self.record(msg, self.receive(msg))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        self.lost.append(self.in_flight.pop(self.pick(data, self.in_flight)))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        msg = self.delivered[self.pick(data, self.delivered)]
        receiver = self.session(msg.receiver)
        before = receiver.serialize()
        with pytest.raises(DuplicateMessage):
            receiver.decrypt(msg.kind, msg.wire)
        assert receiver.serialize() == before

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def tamper(self, data: st.DataObject) -> None:
        msg = self.in_flight[self.pick(data, self.in_flight)]
        receiver = self.sessions[msg.receiver]
        if receiver is not None and msg.kind is MessageKind.PREKEY:
            # An existing session matches a repeat by its ephemeral key (as libsignal
            # does) and then authenticates the ratchet message inside.
            start = len(PreKeyMessage.decode(msg.wire).encode_prefix())
            bit = data.draw(st.one_of(st.integers(EPHEMERAL.start * 8, EPHEMERAL.stop * 8 - 1),
                                      st.integers(start * 8, len(msg.wire) * 8 - 1)), label="bit")
        else:
            bit = data.draw(st.integers(0, len(msg.wire) * 8 - 1), label="bit")
        forged = flip(msg.wire, bit)
        if receiver is None:
            store = self.device.snapshot()
            with pytest.raises(ProtocolError):
                Session.respond(self.device.identity, forged, self.device.lookup)
            assert self.device.snapshot() == store
            return
        before = receiver.serialize()
        with pytest.raises(ProtocolError):
            receiver.decrypt(msg.kind, forged)
        assert receiver.serialize() == before

    @precondition(lambda self: self.ready)
    @rule(who=st.sampled_from(PARTIES))
    def restore(self, who: str) -> None:
        session = self.sessions[who]
        if session is None:
            return
        saved = session.serialize()
        self.sessions[who] = Session.deserialize(saved, self.rngs[who])
        assert self.session(who).serialize() == saved

    def exchange(self, sender: str) -> None:
        plaintext = self.plaintext(sender, 20)
        kind, wire = self.session(sender).encrypt(plaintext)
        msg = Sent(sender, wire, plaintext, kind)
        self.record(msg, self.receive(msg))

    def teardown(self) -> None:
        if not self.ready:
            return
        for sender in ("alice", "bob", "alice", "bob"):
            self.exchange(sender)
        assert self.session("alice").encrypt(b"x")[0] is MessageKind.RATCHET
        for msg in self.in_flight:
            self.record(msg, self.receive(msg))
        self.in_flight.clear()
        self.each_message_arrived_at_most_once()
        self.exchange("bob")
        self.exchange("alice")


def test_session_conversations_over_a_bad_network() -> None:
    run_state_machine_as_test(
        SessionConversation,
        settings=settings(STATEFUL, max_examples=100, stateful_step_count=40),
    )
