"""Sealed sender: only the recipient can open an envelope body, only the opened content
names the sender (by its certificate), and the padding inside is checked strictly
(PROTOCOL.md section 10)."""

from __future__ import annotations

import nacl.bindings as sodium
import pytest

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import SEAL_OVERHEAD, MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.e2e.size_classes import ENVELOPE_CLASSES
from protocol.wire import certificates
from protocol.wire.errors import BadSignature, CertificateExpired, DecodeError, InvalidUsername
from tests.protocol.support import (
    CERT_EXPIRES,
    CERT_NOW,
    CERT_PUBLIC,
    DetRng,
    Device,
    certificate,
    every_bit,
    flip,
)

ALICE = IdentityKeyPair.generate(DetRng(b"sealed-alice"))
BOB = IdentityKeyPair.generate(DetRng(b"sealed-bob"))
EVE = IdentityKeyPair.generate(DetRng(b"sealed-eve"))
SMALLEST = ENVELOPE_CLASSES[0] - SEAL_OVERHEAD  # the content of a 2048-byte envelope
CERT = certificate("alice", ALICE.public)


def padded(head: bytes, total: int = SMALLEST) -> bytes:
    return head + bytes(total - len(head))


@pytest.mark.parametrize("kind", list(MessageKind))
def test_sealed_content_round_trips_to_the_recipient(kind: MessageKind) -> None:
    content = SealedContent(CERT, kind, b"opaque message bytes")
    sealed = seal(BOB.public, content)
    assert unseal(BOB, sealed) == content
    assert len(sealed) == len(content.encode()) + SEAL_OVERHEAD == ENVELOPE_CLASSES[0]


def test_the_layout_is_version_kind_certificate_message_then_zeros() -> None:
    cert = certificate("bob")
    encoded = SealedContent(cert, MessageKind.PREKEY, b"xyz").encode()
    assert encoded == padded(b"\x03\x02" + len(cert).to_bytes(2, "big") + cert
                             + b"\x00\x00\x00\x03xyz")


def test_the_sender_is_the_certificates_username_and_verifies_under_the_relay_key() -> None:
    content = SealedContent.decode(SealedContent(CERT, MessageKind.RATCHET, b"m").encode())
    assert content.sender == "alice"
    assert content.sender_certificate.identity == ALICE.public
    assert content.verify_sender(CERT_PUBLIC, CERT_NOW).username == "alice"
    with pytest.raises(BadSignature):  # another relay's key
        content.verify_sender(certificates.signer_from_seed(bytes(32))[1], CERT_NOW)
    with pytest.raises(CertificateExpired):
        content.verify_sender(CERT_PUBLIC, CERT_EXPIRES)


def test_a_certificate_longer_than_any_a_relay_issues_is_not_sealed() -> None:
    with pytest.raises(ValueError, match="139"):
        SealedContent(certificate("a" * 32) + b"\x00", MessageKind.RATCHET, b"m").encode()


def test_the_envelope_body_does_not_reveal_the_sender() -> None:
    content = SealedContent(CERT, MessageKind.PREKEY, b"\x01" + ALICE.public + b"msg")
    sealed = seal(BOB.public, content)
    assert b"alice" not in sealed
    assert CERT not in sealed
    assert ALICE.public not in sealed
    assert b"msg" not in sealed
    assert seal(BOB.public, content) != sealed  # a fresh ephemeral key every time


def test_only_the_recipient_can_open_it() -> None:
    sealed = seal(BOB.public, SealedContent(CERT, MessageKind.RATCHET, b"m"))
    for other in (ALICE, EVE):
        with pytest.raises(DecryptionFailed):
            unseal(other, sealed)


def test_a_flipped_bit_anywhere_is_rejected() -> None:
    sealed = seal(BOB.public, SealedContent(CERT, MessageKind.RATCHET, b"m" * 40))
    for bit in every_bit(sealed):
        with pytest.raises(DecryptionFailed):
            unseal(BOB, flip(sealed, bit))


def test_truncated_or_extended_envelopes_are_rejected() -> None:
    sealed = seal(BOB.public, SealedContent(CERT, MessageKind.RATCHET, b"m" * 40))
    for cut in range(len(sealed)):
        with pytest.raises(DecryptionFailed):
            unseal(BOB, sealed[:cut])
    with pytest.raises(DecryptionFailed):
        unseal(BOB, sealed + b"\x00")


def head(version: int = 3, kind: int = 1, cert: bytes = CERT, length: int = 1,
         message: bytes = b"m") -> bytes:
    return (bytes([version, kind]) + len(cert).to_bytes(2, "big") + cert
            + length.to_bytes(4, "big") + message)


VALID_HEAD = head()
NAME_AT = 4 + 2  # the username inside the certificate: after its version and length


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", DecodeError),
        (b"\x01\x01\x05alicem", DecodeError),  # version 1, the unpadded layout: refused
        (padded(b"\x01" + VALID_HEAD[1:]), DecodeError),  # version 1, padded
        (padded(b"\x02\x01\x05alice\x00\x00\x00\x01m"), DecodeError),  # version 2 (var8 name)
        (padded(head(version=2)), DecodeError),
        (padded(head(version=4)), DecodeError),  # unknown version
        (padded(head(kind=0)), DecodeError),  # unknown kind
        (padded(head(kind=3)), DecodeError),
        (padded(head(cert=CERT[:NAME_AT] + b"A" + CERT[NAME_AT + 1:])), InvalidUsername),
        (padded(head(cert=CERT[:-1])), DecodeError),  # the certificate cut short
        (padded(head(cert=CERT + b"\x00")), DecodeError),  # a byte after the signature
        (padded(head(cert=b"\x02" + CERT[1:])), DecodeError),  # certificate version 2
        (padded(head(cert=b"")), DecodeError),  # no certificate
        (padded(head(length=2000)), DecodeError),  # message length past the end
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
    good = SealedContent(CERT, MessageKind.RATCHET, b"m").encode()
    start = len(VALID_HEAD)
    for index in range(start, len(good), 97):
        with pytest.raises(DecodeError, match="padding"):
            SealedContent.decode(good[:index] + b"\x01" + good[index + 1:])


def test_a_sealed_initial_message_sets_up_a_session() -> None:
    bob = Device.create("sealed-device")
    alice_session = Session.initiate(ALICE, bob.bundle())
    kind, message = alice_session.encrypt(b"hello")
    envelope = seal(bob.public, SealedContent(CERT, kind, message))
    opened = unseal(bob.identity, envelope)
    assert (opened.sender, opened.kind) == ("alice", MessageKind.PREKEY)
    assert opened.sender_certificate.identity == ALICE.public
    session, plaintext, _ = Session.respond(bob.identity, opened.message, bob.lookup)
    assert plaintext == b"hello"
    assert session.peer_identity == ALICE.public
