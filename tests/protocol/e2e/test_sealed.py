"""Sealed sender: only the recipient can open an envelope body, and only the opened
content names the sender."""

from __future__ import annotations

import nacl.bindings as sodium
import pytest

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import SEAL_OVERHEAD, MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.wire.errors import DecodeError
from tests.protocol.support import DetRng, Device, every_bit, flip

ALICE = IdentityKeyPair.generate(DetRng(b"sealed-alice"))
BOB = IdentityKeyPair.generate(DetRng(b"sealed-bob"))
EVE = IdentityKeyPair.generate(DetRng(b"sealed-eve"))


@pytest.mark.parametrize("kind", list(MessageKind))
def test_sealed_content_round_trips_to_the_recipient(kind: MessageKind) -> None:
    content = SealedContent("alice", kind, b"opaque message bytes")
    sealed = seal(BOB.public, content)
    assert unseal(BOB, sealed) == content
    assert len(sealed) == len(content.encode()) + SEAL_OVERHEAD


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


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x02\x01\x05alice",  # unknown version
        b"\x01\x00\x05alice",  # unknown kind
        b"\x01\x03\x05alice",
        b"\x01\x01\x05Alice",  # not a valid username
        b"\x01\x01\x02al",
        b"\x01\x01\x06alice",  # length runs past the end
        b"\x01\x01\x05al\xffce",
    ],
)
def test_malformed_content_in_a_valid_box_is_a_decode_error(content: bytes) -> None:
    sealed = bytes(sodium.crypto_box_seal(content, BOB.dh_public()))
    with pytest.raises(DecodeError):
        unseal(BOB, sealed)


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
