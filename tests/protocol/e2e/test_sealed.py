"""Sealed sender: only the recipient can open an envelope body, only the opened content
names the sender, and the padding inside is checked strictly (PROTOCOL.md section 10)."""

from __future__ import annotations

import nacl.bindings as sodium
import pytest

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import SEAL_OVERHEAD, MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.e2e.size_classes import ENVELOPE_CLASSES
from protocol.wire.errors import DecodeError, InvalidUsername
from tests.protocol.support import DetRng, Device, every_bit, flip

ALICE = IdentityKeyPair.generate(DetRng(b"sealed-alice"))
BOB = IdentityKeyPair.generate(DetRng(b"sealed-bob"))
EVE = IdentityKeyPair.generate(DetRng(b"sealed-eve"))
SMALLEST = ENVELOPE_CLASSES[0] - SEAL_OVERHEAD  # the content of a 2048-byte envelope


def padded(head: bytes, total: int = SMALLEST) -> bytes:
    return head + bytes(total - len(head))


@pytest.mark.parametrize("kind", list(MessageKind))
def test_sealed_content_round_trips_to_the_recipient(kind: MessageKind) -> None:
    content = SealedContent("alice", kind, b"opaque message bytes")
    sealed = seal(BOB.public, content)
    assert unseal(BOB, sealed) == content
    assert len(sealed) == len(content.encode()) + SEAL_OVERHEAD == ENVELOPE_CLASSES[0]


def test_the_layout_is_version_kind_sender_message_then_zeros() -> None:
    encoded = SealedContent("bob", MessageKind.PREKEY, b"xyz").encode()
    assert encoded == padded(b"\x02\x02\x03bob\x00\x00\x00\x03xyz")


def test_the_envelope_body_does_not_reveal_the_sender() -> None:
    content = SealedContent("alice", MessageKind.PREKEY, b"\x01" + ALICE.public + b"msg")
    sealed = seal(BOB.public, content)
    assert b"alice" not in sealed
    assert ALICE.public not in sealed
    assert b"msg" not in sealed
    assert seal(BOB.public, content) != sealed  # a fresh ephemeral key every time


def test_only_the_recipient_can_open_it() -> None:
    sealed = seal(BOB.public, SealedContent("alice", MessageKind.RATCHET, b"m"))
    for other in (ALICE, EVE):
        with pytest.raises(DecryptionFailed):
            unseal(other, sealed)


def test_a_flipped_bit_anywhere_is_rejected() -> None:
    sealed = seal(BOB.public, SealedContent("alice", MessageKind.RATCHET, b"m" * 40))
    for bit in every_bit(sealed):
        with pytest.raises(DecryptionFailed):
            unseal(BOB, flip(sealed, bit))


def test_truncated_or_extended_envelopes_are_rejected() -> None:
    sealed = seal(BOB.public, SealedContent("alice", MessageKind.RATCHET, b"m" * 40))
    for cut in range(len(sealed)):
        with pytest.raises(DecryptionFailed):
            unseal(BOB, sealed[:cut])
    with pytest.raises(DecryptionFailed):
        unseal(BOB, sealed + b"\x00")


VALID_HEAD = b"\x02\x01\x05alice\x00\x00\x00\x01m"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", DecodeError),
        (b"\x01\x01\x05alicem", DecodeError),  # version 1, the unpadded layout: refused
        (padded(b"\x01" + VALID_HEAD[1:]), DecodeError),  # version 1, padded
        (padded(b"\x03" + VALID_HEAD[1:]), DecodeError),  # unknown version
        (padded(b"\x02\x00\x05alice\x00\x00\x00\x01m"), DecodeError),  # unknown kind
        (padded(b"\x02\x03\x05alice\x00\x00\x00\x01m"), DecodeError),
        (padded(b"\x02\x01\x05Alice\x00\x00\x00\x01m"), InvalidUsername),
        (padded(b"\x02\x01\x02al\x00\x00\x00\x01m"), InvalidUsername),
        (padded(b"\x02\x01\x05al\xffce\x00\x00\x00\x01m"), InvalidUsername),
        (padded(b"\x02\x01\x05alice\x00\x00\x07\xd0m"), DecodeError),  # length past the end
        (VALID_HEAD, DecodeError),  # no padding
        (padded(VALID_HEAD, SMALLEST - 1), DecodeError),  # one byte short of the class
        (padded(VALID_HEAD, SMALLEST + 1), DecodeError),  # one byte over
        (padded(VALID_HEAD, ENVELOPE_CLASSES[1] - SEAL_OVERHEAD), DecodeError),  # over-padded
        (padded(VALID_HEAD)[:-1] + b"\x01", DecodeError),  # a non-zero padding byte, last
        (VALID_HEAD + b"\x80" + padded(VALID_HEAD)[len(VALID_HEAD) + 1:], DecodeError),  # first
    ],
)
def test_malformed_content_in_a_valid_box_is_a_decode_error(
        content: bytes, error: type[DecodeError]) -> None:
    assert SealedContent.decode(padded(VALID_HEAD)).message == b"m"  # the unaltered one opens
    sealed = bytes(sodium.crypto_box_seal(content, BOB.dh_public()))
    with pytest.raises(error):
        unseal(BOB, sealed)


def test_every_non_zero_padding_byte_is_refused() -> None:
    good = SealedContent("alice", MessageKind.RATCHET, b"m").encode()
    start = len(VALID_HEAD)
    for index in range(start, len(good), 97):
        with pytest.raises(DecodeError, match="padding"):
            SealedContent.decode(good[:index] + b"\x01" + good[index + 1:])


def test_a_sealed_initial_message_sets_up_a_session() -> None:
    bob = Device.create("sealed-device")
    alice_session = Session.initiate(ALICE, bob.bundle())
    kind, message = alice_session.encrypt(b"hello")
    envelope = seal(bob.public, SealedContent("alice", kind, message))
    opened = unseal(bob.identity, envelope)
    assert (opened.sender, opened.kind) == ("alice", MessageKind.PREKEY)
    session, plaintext, _ = Session.respond(bob.identity, opened.message, bob.lookup)
    assert plaintext == b"hello"
    assert session.peer_identity == ALICE.public
