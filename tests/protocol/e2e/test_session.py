"""Sessions: PQXDH setup, repeated initial messages until the first reply, padding,
tampered initial messages, and persistence."""

from __future__ import annotations

import pytest

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage, SessionSetupError
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.messages import HEADER_LEN, PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Consumed, Session
from protocol.wire.errors import DecodeError, ProtocolError
from tests.protocol.support import EPHEMERAL, DetRng, Device, every_bit, flip

ALICE = IdentityKeyPair.generate(DetRng(b"session-alice"))


def start(
    *, opk: bool = True, one_time_kem: bool = True, seed: str = "bob"
) -> tuple[Device, Session]:
    bob = Device.create(seed, one_time_kem=2, one_time=2)
    return bob, Session.initiate(ALICE, bob.bundle(opk=opk, one_time_kem=one_time_kem))


def respond(bob: Device, wire: bytes) -> tuple[Session, bytes]:
    session, plaintext, consumed = Session.respond(bob.identity, wire, bob.lookup)
    bob.consume(consumed)
    return session, plaintext


def prefix_len(wire: bytes) -> int:
    return len(PreKeyMessage.decode(wire).encode_prefix())


@pytest.mark.parametrize("opk", [True, False], ids=["with-opk", "without-opk"])
@pytest.mark.parametrize("one_time_kem", [True, False], ids=["one-time-kem", "last-resort-kem"])
def test_a_session_is_set_up_and_used_both_ways(opk: bool, one_time_kem: bool) -> None:
    bob, alice = start(opk=opk, one_time_kem=one_time_kem)
    kind, wire = alice.encrypt(b"hello bob")
    assert kind is MessageKind.PREKEY
    session, plaintext, consumed = Session.respond(bob.identity, wire, bob.lookup)
    assert plaintext == b"hello bob"
    assert session.peer_identity == ALICE.public
    assert alice.peer_identity == bob.public
    # Only one-time prekeys are to be deleted; the last-resort KEM key stays.
    assert consumed == Consumed(300 if opk else None, 200 if one_time_kem else None)
    kind, reply = session.encrypt(b"hello alice")
    assert kind is MessageKind.RATCHET
    assert alice.decrypt(kind, reply) == b"hello alice"
    for i in range(3):
        kind, wire = alice.encrypt(b"a%d" % i)
        assert kind is MessageKind.RATCHET
        assert session.decrypt(kind, wire) == b"a%d" % i
        assert alice.decrypt(*session.encrypt(b"b%d" % i)) == b"b%d" % i


def test_the_initiator_repeats_the_initial_message_until_the_first_reply() -> None:
    bob, alice = start()
    sent = [alice.encrypt(b"m%d" % i) for i in range(3)]
    assert {kind for kind, _ in sent} == {MessageKind.PREKEY}
    prefixes = {PreKeyMessage.decode(wire).encode_prefix() for _, wire in sent}
    assert len(prefixes) == 1
    prefix = prefixes.pop()
    assert all(wire.startswith(prefix) for _, wire in sent)

    session, first = respond(bob, sent[0][1])
    assert first == b"m0"
    # The responder hands the repeats to the session they set up.
    assert session.decrypt(*sent[2]) == b"m2"
    assert session.decrypt(*sent[1]) == b"m1"

    # A forged reply does not stop the repeating ...
    kind, reply = session.encrypt(b"reply")
    with pytest.raises(DecryptionFailed):
        alice.decrypt(kind, flip(reply, 8 * HEADER_LEN))
    assert alice.encrypt(b"still")[0] is MessageKind.PREKEY
    # ... the genuine reply does.
    assert alice.decrypt(kind, reply) == b"reply"
    assert alice.encrypt(b"now")[0] is MessageKind.RATCHET


def test_any_repeat_can_set_up_the_session_and_the_others_follow() -> None:
    bob, alice = start()
    sent = [alice.encrypt(b"m%d" % i) for i in range(4)]
    session, plaintext = respond(bob, sent[2][1])  # the first two are late
    assert plaintext == b"m2"
    assert [session.decrypt(*sent[i]) for i in (0, 3, 1)] == [b"m0", b"m3", b"m1"]


def test_a_repeated_initial_message_is_rejected_as_a_duplicate() -> None:
    bob, alice = start()
    kind, wire = alice.encrypt(b"once")
    session, _ = respond(bob, wire)
    before = session.serialize()
    with pytest.raises(DuplicateMessage):
        session.decrypt(kind, wire)
    assert session.serialize() == before


def test_one_time_prekeys_cannot_set_up_a_second_session_once_deleted() -> None:
    bob, alice = start(opk=True, one_time_kem=True)
    wire = alice.encrypt(b"once")[1]
    respond(bob, wire)
    assert 300 not in bob.one_time and 200 not in bob.kem_one_time
    with pytest.raises(SessionSetupError):
        Session.respond(bob.identity, wire, bob.lookup)


def test_an_initial_message_of_another_session_is_not_accepted_by_this_one() -> None:
    bob, alice = start()
    session, _ = respond(bob, alice.encrypt(b"first")[1])
    restarted = Session.initiate(ALICE, bob.bundle(opk=False, one_time_kem=False))
    kind, wire = restarted.encrypt(b"new session")
    before = session.serialize()
    with pytest.raises(SessionSetupError):
        session.decrypt(kind, wire)
    assert session.serialize() == before
    _, plaintext = respond(bob, wire)  # the caller sets up a new one instead
    assert plaintext == b"new session"


def test_the_initiator_refuses_initial_messages() -> None:
    bob, alice = start()
    respond(bob, alice.encrypt(b"x")[1])
    _, mallory = start(seed="other")
    before = alice.serialize()
    with pytest.raises(SessionSetupError):
        alice.decrypt(*mallory.encrypt(b"hi"))
    assert alice.serialize() == before


def test_an_unknown_prekey_id_stops_setup() -> None:
    bob, alice = start()
    wire = alice.encrypt(b"x")[1]
    stranger = Device.create("stranger")
    stranger.signed.clear()
    with pytest.raises(SessionSetupError):
        Session.respond(bob.identity, wire, stranger.lookup)


def test_a_message_to_someone_else_does_not_set_up_a_session() -> None:
    _, alice = start()
    wire = alice.encrypt(b"x")[1]
    eve = Device.create("bob")  # same prekey ids and keys, but eve's own identity
    eve.identity = IdentityKeyPair.generate(DetRng(b"eve"))
    with pytest.raises(DecryptionFailed):
        Session.respond(eve.identity, wire, eve.lookup)


# -- a flipped bit anywhere in an initial message sets up nothing


def _check_rejected(bob: Device, wire: bytes) -> None:
    store = bob.snapshot()
    with pytest.raises(ProtocolError):
        Session.respond(bob.identity, wire, bob.lookup)
    assert bob.snapshot() == store


@pytest.mark.parametrize("opk", [True, False], ids=["with-opk", "without-opk"])
def test_a_flipped_bit_in_the_initial_message_is_rejected_and_consumes_nothing(
    opk: bool,
) -> None:
    bob, alice = start(opk=opk)
    wire = alice.encrypt(b"the first message")[1]
    n = prefix_len(wire)
    ct_start, body_start = n - 1088, n + HEADER_LEN
    # Every bit of the fields and of the ratchet header; one bit in each byte of the KEM
    # ciphertext (any change gives an unrelated secret: FIPS 203 implicit rejection) and
    # of the ratchet body (test_ratchet flips every bit of ratchet messages).
    bits = [8 * i + j for i in (*range(ct_start), *range(n, body_start)) for j in range(8)]
    bits += [8 * i + i % 8 for i in (*range(ct_start, n), *range(body_start, len(wire)))]
    for bit in bits:
        _check_rejected(bob, flip(wire, bit))
    _, plaintext = respond(bob, wire)  # nothing was used up by the forgeries
    assert plaintext == b"the first message"


def test_the_top_bit_of_the_ephemeral_key_cannot_be_flipped_unnoticed() -> None:
    """X25519 ignores the top bit of a public key, so a flipped top bit of EK_A gives
    the same SK; the strict decoding must reject it, or a repeat of the genuine initial
    message would no longer match the session the forgery set up."""
    bob, alice = start()
    wire = alice.encrypt(b"first")[1]
    top_bit = (EPHEMERAL.stop - 1) * 8 + 7
    with pytest.raises(DecodeError):
        Session.respond(bob.identity, flip(wire, top_bit), bob.lookup)
    session, _ = respond(bob, wire)
    assert session.decrypt(*alice.encrypt(b"repeat")) == b"repeat"


def test_truncated_or_extended_initial_messages_are_rejected() -> None:
    bob, alice = start()
    wire = alice.encrypt(b"x" * 200)[1]
    for cut in range(len(wire)):
        _check_rejected(bob, wire[:cut])
    for extra in (b"\x00", bytes(16), bytes(160)):
        _check_rejected(bob, wire + extra)
    assert respond(bob, wire)[1] == b"x" * 200


def test_a_tampered_repeat_is_rejected_by_the_existing_session() -> None:
    bob, alice = start()
    session, _ = respond(bob, alice.encrypt(b"first")[1])
    kind, repeat = alice.encrypt(b"repeat")
    n = prefix_len(repeat)
    before = session.serialize()
    bits = [*range(EPHEMERAL.start * 8, EPHEMERAL.stop * 8), *range(n * 8, len(repeat) * 8)]
    for bit in bits:
        with pytest.raises(ProtocolError):
            session.decrypt(kind, flip(repeat, bit))
    assert session.serialize() == before
    assert session.decrypt(kind, repeat) == b"repeat"


def test_a_tampered_ratchet_message_is_rejected_by_the_session() -> None:
    bob, alice = start()
    session, _ = respond(bob, alice.encrypt(b"first")[1])
    kind, reply = session.encrypt(b"reply")
    before = alice.serialize()
    for bit in every_bit(reply):
        with pytest.raises(ProtocolError):
            alice.decrypt(kind, flip(reply, bit))
    assert alice.serialize() == before
    assert alice.decrypt(kind, reply) == b"reply"


# -- padding as it shows on the wire


@pytest.mark.parametrize(
    ("size", "buckets"), [(0, 1), (1, 1), (158, 1), (159, 2), (318, 2), (319, 3), (4000, 26)]
)
def test_ciphertext_lengths_reveal_only_the_160_byte_bucket(size: int, buckets: int) -> None:
    bob, alice = start()
    session, _ = respond(bob, alice.encrypt(b"hi")[1])
    kind, wire = session.encrypt(b"\x80" * size)
    assert kind is MessageKind.RATCHET
    assert len(wire) == HEADER_LEN + 160 * buckets + 32
    assert alice.decrypt(kind, wire) == b"\x80" * size


def test_an_authentic_message_with_bad_padding_is_rejected() -> None:
    bob, alice = start()
    session, _ = respond(bob, alice.encrypt(b"hi")[1])
    unpadded = session.ratchet.encrypt(b"no padding here")  # bypasses Session's padding
    with pytest.raises(DecryptionFailed):
        alice.decrypt(MessageKind.RATCHET, unpadded)


# -- persistence


def test_sessions_serialize_and_resume_on_both_sides() -> None:
    bob, alice = start()
    first = alice.encrypt(b"first")
    late = alice.encrypt(b"late repeat")
    session, _ = respond(bob, first[1])
    for original in (alice, session):
        data = original.serialize()
        assert Session.deserialize(data).serialize() == data
    alice = Session.deserialize(alice.serialize())
    session = Session.deserialize(session.serialize())
    # The restored initiator still repeats the same initial data ...
    kind, wire = alice.encrypt(b"after restore")
    assert kind is MessageKind.PREKEY
    assert wire.startswith(PreKeyMessage.decode(first[1]).encode_prefix())
    # ... and the restored responder still recognises it, and still rejects replays.
    assert session.decrypt(kind, wire) == b"after restore"
    assert session.decrypt(*late) == b"late repeat"
    with pytest.raises(DuplicateMessage):
        session.decrypt(*first)
    alice.decrypt(*session.encrypt(b"reply"))
    alice = Session.deserialize(alice.serialize())
    assert alice.encrypt(b"now")[0] is MessageKind.RATCHET

