"""The Double Ratchet (Signal's specification, sections 3 and 5.2): conversations,
headers, replays, tampering, skip limits, eviction, and persistence."""

from __future__ import annotations

import hmac as std_hmac
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage, TooManySkipped
from protocol.e2e.kdf import MESSAGE_KEYS_INFO, ROOT_INFO
from protocol.e2e.keys import X25519KeyPair
from protocol.e2e.messages import HEADER_LEN, Header
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIP, MAX_SKIPPED_KEYS, Ratchet
from protocol.wire.errors import DecodeError, ProtocolError
from tests.protocol.support import (
    LOW_ORDER_X25519,
    DetRng,
    every_bit,
    flip,
    ratchet_pair,
    talking_pair,
)


def assert_rejected_unchanged(
    receiver: Ratchet, wire: bytes, error: type[ProtocolError] = ProtocolError
) -> None:
    """`receiver.decrypt(wire)` raises `error` and leaves the state exactly as it was."""
    before = receiver.serialize()
    with pytest.raises(error):
        receiver.decrypt(wire)
    assert receiver.serialize() == before


def header_of(wire: bytes) -> Header:
    return Header.decode(wire[:HEADER_LEN])


# -- conversations


def test_a_long_alternating_conversation_decrypts() -> None:
    alice, bob = ratchet_pair()
    for i in range(20):
        assert bob.decrypt(alice.encrypt(b"a%d" % i)) == b"a%d" % i
        assert alice.decrypt(bob.encrypt(b"b%d" % i)) == b"b%d" % i


def test_runs_of_messages_in_one_direction_decrypt() -> None:
    alice, bob = talking_pair()
    for run in (1, 5, 17):
        wires = [alice.encrypt(bytes([i]) * i) for i in range(run)]
        assert [bob.decrypt(w) for w in wires] == [bytes([i]) * i for i in range(run)]
        wires = [bob.encrypt(b"x" * i) for i in range(run)]
        assert [alice.decrypt(w) for w in wires] == [b"x" * i for i in range(run)]


def test_the_responder_cannot_send_before_the_first_message_arrives() -> None:
    _, bob = ratchet_pair()
    before = bob.serialize()
    with pytest.raises(ProtocolError):
        bob.encrypt(b"too early")
    assert bob.serialize() == before


def test_headers_carry_the_ratchet_key_and_the_counters() -> None:
    alice, bob = ratchet_pair()
    signed_prekey = bob.dhs.public
    first = [alice.encrypt(b"%d" % i) for i in range(3)]
    headers = [header_of(w) for w in first]
    assert [(h.pn, h.n) for h in headers] == [(0, 0), (0, 1), (0, 2)]
    assert len({h.dh for h in headers}) == 1
    for w in first:
        bob.decrypt(w)
    replies = [bob.encrypt(b"r%d" % i) for i in range(2)]
    reply_headers = [header_of(w) for w in replies]
    assert [(h.pn, h.n) for h in reply_headers] == [(0, 0), (0, 1)]
    # Bob's first reply already comes from a fresh ratchet key, not his signed prekey.
    assert reply_headers[0].dh not in (headers[0].dh, signed_prekey)
    assert reply_headers[1].dh == reply_headers[0].dh
    for w in replies:
        alice.decrypt(w)
    # Alice's next chain has a fresh ratchet key, and PN counts her previous chain.
    after = header_of(alice.encrypt(b"next"))
    assert (after.pn, after.n) == (3, 0)
    assert after.dh not in (headers[0].dh, reply_headers[0].dh)
    # Every wire message is header (42 bytes) || AES-CBC blocks || 32-byte MAC.
    assert all((len(w) - HEADER_LEN - 32) % 16 == 0 for w in first + replies)


def test_the_first_message_is_the_section_5_2_construction() -> None:
    """Recompute Alice's first message from SK, her ratchet key and Bob's prekey with
    the raw primitives: KDF_RK, KDF_CK and ENCRYPT as section 5.2 recommends."""
    rng = DetRng(b"construction")
    sk, ad, spk = rng(32), b"AD" * 33, X25519KeyPair.generate(rng)
    alice = Ratchet.initiator(sk, ad, spk.public, rng)
    wire = alice.encrypt(b"hello")

    def hkdf(salt: bytes, ikm: bytes, info: bytes, n: int) -> bytes:
        return HKDF(hashes.SHA256(), n, salt, info).derive(ikm)

    cks = hkdf(sk, alice.dhs.dh(spk.public), ROOT_INFO, 64)[32:]
    mk = std_hmac.new(cks, b"\x01", sha256).digest()
    keys = hkdf(bytes(32), mk, MESSAGE_KEYS_INFO, 80)
    enc, auth, iv = keys[:32], keys[32:64], keys[64:]
    header = b"\x01\x05" + alice.dhs.public + bytes(8)
    encryptor = Cipher(algorithms.AES(enc), modes.CBC(iv)).encryptor()
    body = encryptor.update(b"hello" + b"\x0b" * 11) + encryptor.finalize()
    tag = std_hmac.new(auth, ad + header + body, sha256).digest()
    assert wire == header + body + tag
    assert alice.cks == std_hmac.new(cks, b"\x02", sha256).digest()


def test_messages_from_another_session_do_not_decrypt() -> None:
    alice, _ = ratchet_pair(DetRng(b"one"))
    _, other_bob = ratchet_pair(DetRng(b"two"))
    assert_rejected_unchanged(other_bob, alice.encrypt(b"hi"), DecryptionFailed)


def test_the_associated_data_binds_the_session() -> None:
    rng = DetRng(b"ad")
    sk, spk = rng(32), X25519KeyPair.generate(rng)
    alice = Ratchet.initiator(sk, b"alice|bob", spk.public, rng)
    wrong_bob = Ratchet.responder(sk, b"alice|eve", spk, rng)
    right_bob = Ratchet.responder(sk, b"alice|bob", spk, rng)
    wire = alice.encrypt(b"hi")
    assert_rejected_unchanged(wrong_bob, wire, DecryptionFailed)
    assert right_bob.decrypt(wire) == b"hi"


# -- out of order


def test_out_of_order_messages_within_a_chain_decrypt() -> None:
    alice, bob = talking_pair()
    wires = [alice.encrypt(b"m%d" % i) for i in range(6)]
    for i in (5, 0, 3, 1, 4, 2):
        assert bob.decrypt(wires[i]) == b"m%d" % i


def test_late_messages_from_earlier_chains_decrypt_after_dh_steps() -> None:
    alice, bob = talking_pair()
    late = [alice.encrypt(b"late%d" % i) for i in range(3)]
    assert bob.decrypt(alice.encrypt(b"on time")) == b"on time"
    for step in range(3):  # several DH ratchet steps in between
        assert alice.decrypt(bob.encrypt(b"b%d" % step)) == b"b%d" % step
        assert bob.decrypt(alice.encrypt(b"a%d" % step)) == b"a%d" % step
    for i in (2, 0, 1):
        assert bob.decrypt(late[i]) == b"late%d" % i


def test_a_new_chain_arriving_before_the_end_of_the_old_one() -> None:
    alice, bob = talking_pair()
    old = [alice.encrypt(b"old%d" % i) for i in range(3)]
    bob.decrypt(old[0])
    alice.decrypt(bob.encrypt(b"reply"))
    new = alice.encrypt(b"new")
    assert header_of(new).pn == 3
    assert bob.decrypt(new) == b"new"
    assert bob.decrypt(old[2]) == b"old2"
    assert bob.decrypt(old[1]) == b"old1"


# -- replays


def _replay_scenarios() -> dict[str, tuple[Ratchet, bytes]]:
    out: dict[str, tuple[Ratchet, bytes]] = {}

    alice, bob = talking_pair(DetRng(b"r1"))
    wire = alice.encrypt(b"x")
    bob.decrypt(wire)
    out["last-in-order"] = (bob, wire)

    alice, bob = talking_pair(DetRng(b"r2"))
    wires = [alice.encrypt(b"%d" % i) for i in range(3)]
    bob.decrypt(wires[2])
    bob.decrypt(wires[0])
    out["skipped-then-received"] = (bob, wires[0])

    alice, bob = talking_pair(DetRng(b"r3"))
    old = alice.encrypt(b"old")
    bob.decrypt(old)
    alice.decrypt(bob.encrypt(b"r"))
    bob.decrypt(alice.encrypt(b"new chain"))
    out["earlier-chain"] = (bob, old)

    alice, bob = ratchet_pair(DetRng(b"r4"))
    first = alice.encrypt(b"first")
    bob.decrypt(first)
    bob.encrypt(b"reply")
    out["first-message"] = (bob, first)

    alice, bob = talking_pair(DetRng(b"r5"))
    wire = bob.encrypt(b"to alice")
    alice.decrypt(wire)
    out["to-the-initiator"] = (alice, wire)
    return out


@pytest.mark.parametrize("case", sorted(_replay_scenarios()))
def test_a_replay_is_rejected_and_changes_nothing(case: str) -> None:
    receiver, wire = _replay_scenarios()[case]
    for _ in range(2):
        assert_rejected_unchanged(receiver, wire, DuplicateMessage)


def test_a_replay_from_beyond_the_remembered_chains_is_still_rejected() -> None:
    alice, bob = talking_pair()
    old = alice.encrypt(b"old")
    bob.decrypt(old)
    for i in range(MAX_RETIRED + 2):
        alice.decrypt(bob.encrypt(b"b%d" % i))
        bob.decrypt(alice.encrypt(b"a%d" % i))
    assert_rejected_unchanged(bob, old, DecryptionFailed)
    assert alice.decrypt(bob.encrypt(b"still talking")) == b"still talking"


def test_the_conversation_continues_after_rejected_replays() -> None:
    alice, bob = talking_pair()
    wire = alice.encrypt(b"once")
    assert bob.decrypt(wire) == b"once"
    assert_rejected_unchanged(bob, wire, DuplicateMessage)
    assert alice.decrypt(bob.encrypt(b"reply")) == b"reply"
    assert bob.decrypt(alice.encrypt(b"more")) == b"more"


# -- tampering: a flipped bit anywhere is rejected and changes nothing


def _tamper_scenarios() -> dict[str, tuple[Ratchet, bytes, bytes]]:
    """(receiver, genuine wire message, its plaintext) for each decryption path."""
    out: dict[str, tuple[Ratchet, bytes, bytes]] = {}
    alice, bob = talking_pair(DetRng(b"t1"))
    out["next-in-chain"] = (bob, alice.encrypt(b"next"), b"next")

    alice, bob = talking_pair(DetRng(b"t2"))
    alice.encrypt(b"lost")
    out["skipping-ahead"] = (bob, alice.encrypt(b"ahead" * 20), b"ahead" * 20)

    alice, bob = talking_pair(DetRng(b"t3"))
    alice.decrypt(bob.encrypt(b"turn"))
    out["new-dh-chain"] = (bob, alice.encrypt(b"new chain"), b"new chain")

    alice, bob = talking_pair(DetRng(b"t4"))
    late = alice.encrypt(b"late")
    bob.decrypt(alice.encrypt(b"overtakes"))
    out["stored-skipped-key"] = (bob, late, b"late")

    alice, bob = ratchet_pair(DetRng(b"t5"))
    out["very-first-message"] = (bob, alice.encrypt(b"first"), b"first")
    return out


@pytest.mark.parametrize("case", sorted(_tamper_scenarios()))
def test_a_flipped_bit_anywhere_is_rejected_and_changes_nothing(case: str) -> None:
    receiver, wire, plaintext = _tamper_scenarios()[case]
    before = receiver.serialize()
    for bit in every_bit(wire):
        with pytest.raises((DecodeError, DecryptionFailed)):
            receiver.decrypt(flip(wire, bit))
    assert receiver.serialize() == before
    assert receiver.decrypt(wire) == plaintext


@pytest.mark.parametrize("case", sorted(_tamper_scenarios()))
def test_truncated_or_extended_messages_are_rejected_and_change_nothing(case: str) -> None:
    receiver, wire, plaintext = _tamper_scenarios()[case]
    before = receiver.serialize()
    candidates = [wire[:cut] for cut in range(len(wire))]
    candidates += [wire + bytes(n) for n in (1, 15, 16, 32)]
    candidates += [wire[:-48] + wire[-32:], wire[:HEADER_LEN] + wire[HEADER_LEN + 16:]]
    for candidate in candidates:
        with pytest.raises((DecodeError, DecryptionFailed)):
            receiver.decrypt(candidate)
    assert receiver.serialize() == before
    assert receiver.decrypt(wire) == plaintext


@pytest.mark.parametrize("point", LOW_ORDER_X25519[:5], ids=lambda p: p.hex()[:8])
def test_a_low_order_ratchet_key_is_rejected_and_changes_nothing(point: bytes) -> None:
    alice, bob = talking_pair()
    genuine = alice.encrypt(b"x")
    forged = Header(point, 0, 0).encode() + genuine[HEADER_LEN:]
    assert_rejected_unchanged(bob, forged, DecryptionFailed)
    assert bob.decrypt(genuine) == b"x"


# -- skip limits


def test_exactly_max_skip_skipped_messages_are_fine_and_all_arrive_late() -> None:
    alice, bob = talking_pair()
    wires = [alice.encrypt(b"%d" % i) for i in range(MAX_SKIP + 1)]
    assert bob.decrypt(wires[-1]) == b"%d" % MAX_SKIP
    for i in (0, 1, MAX_SKIP // 2, MAX_SKIP - 1):
        assert bob.decrypt(wires[i]) == b"%d" % i


def test_more_than_max_skip_in_the_current_chain_is_rejected() -> None:
    alice, bob = talking_pair()
    wires = [alice.encrypt(b"%d" % i) for i in range(MAX_SKIP + 2)]
    assert_rejected_unchanged(bob, wires[-1], TooManySkipped)
    # Nothing was stored: the conversation goes on from where it was.
    assert bob.decrypt(wires[0]) == b"0"
    assert bob.decrypt(wires[-1]) == b"%d" % (MAX_SKIP + 1)  # now exactly MAX_SKIP ahead


def test_more_than_max_skip_at_the_start_of_a_new_chain_is_rejected() -> None:
    alice, bob = talking_pair()
    alice.decrypt(bob.encrypt(b"turn"))
    wires = [alice.encrypt(b"%d" % i) for i in range(MAX_SKIP + 2)]
    assert_rejected_unchanged(bob, wires[MAX_SKIP + 1], TooManySkipped)
    assert bob.decrypt(wires[MAX_SKIP]) == b"%d" % MAX_SKIP


@pytest.mark.parametrize("unread", [MAX_SKIP, MAX_SKIP + 1])
def test_the_limit_applies_to_the_rest_of_the_previous_chain(unread: int) -> None:
    """A header's PN makes the receiver store the rest of its current chain."""
    alice, bob = talking_pair()
    old = [alice.encrypt(b"old%d" % i) for i in range(unread + 1)]
    assert bob.decrypt(old[0]) == b"old0"  # bob: unread messages left in this chain
    alice.decrypt(bob.encrypt(b"turn"))
    new = alice.encrypt(b"new")
    if unread > MAX_SKIP:
        assert_rejected_unchanged(bob, new, TooManySkipped)
    else:
        assert bob.decrypt(new) == b"new"
        assert bob.decrypt(old[unread]) == b"old%d" % unread


def test_stored_skipped_keys_are_bounded_and_the_oldest_are_evicted_first() -> None:
    alice, bob = talking_pair()
    chains: list[list[bytes]] = []
    for count in (MAX_SKIP + 1, MAX_SKIP + 1):
        chain = [alice.encrypt(b"c%d-%d" % (len(chains), i)) for i in range(count)]
        bob.decrypt(chain[-1])  # skips count - 1 messages
        alice.decrypt(bob.encrypt(b"turn"))
        chains.append(chain)
    assert 2 * MAX_SKIP == MAX_SKIPPED_KEYS  # the store is now exactly full
    restored = Ratchet.deserialize(bob.serialize())  # eviction order survives persistence
    third = [alice.encrypt(b"c2-%d" % i) for i in range(11)]
    for receiver in (bob, restored):
        assert receiver.decrypt(third[-1]) == b"c2-10"  # 10 more: the 10 oldest go
        for i in range(10):
            assert_rejected_unchanged(receiver, chains[0][i], DuplicateMessage)
        assert receiver.decrypt(chains[0][10]) == b"c0-10"
        assert receiver.decrypt(chains[0][MAX_SKIP - 1]) == b"c0-%d" % (MAX_SKIP - 1)
        assert receiver.decrypt(chains[1][0]) == b"c1-0"
        assert receiver.decrypt(third[0]) == b"c2-0"


# -- persistence


def test_serialize_round_trips_exactly() -> None:
    alice, bob = talking_pair()
    late = alice.encrypt(b"late")
    bob.decrypt(alice.encrypt(b"skips one"))
    for ratchet in (alice, bob, *ratchet_pair()):
        data = ratchet.serialize()
        assert Ratchet.deserialize(data).serialize() == data
    restored = Ratchet.deserialize(bob.serialize())
    assert restored.decrypt(late) == b"late"  # skipped keys survive


def test_restored_states_continue_the_conversation_from_every_point() -> None:
    alice, bob = ratchet_pair()
    script = ["a", "a", "b", "a", "b", "b", "a"]
    for i, who in enumerate(script):
        alice = Ratchet.deserialize(alice.serialize())
        bob = Ratchet.deserialize(bob.serialize())
        sender, receiver = (alice, bob) if who == "a" else (bob, alice)
        assert receiver.decrypt(sender.encrypt(b"%d" % i)) == b"%d" % i


def test_a_restored_state_rejects_what_the_original_had_received() -> None:
    alice, bob = talking_pair()
    wire = alice.encrypt(b"once")
    bob.decrypt(wire)
    assert_rejected_unchanged(Ratchet.deserialize(bob.serialize()), wire, DuplicateMessage)
