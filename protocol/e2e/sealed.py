"""Sealed sender: the envelope body hides who sent it, and its size hides the rest.

A ratchet message alone does not say which session it belongs to, and a PQXDH
initial message names the sender's identity key in the clear. So the client seals
    version u8 (3) || kind u8 || var16(sender certificate) || var32(message) || zeros
to the recipient's identity key (its X25519 form) with libsodium's sealed box
(crypto_box_seal: an ephemeral X25519 key, XSalsa20-Poly1305). The relay sees
only the recipient and opaque bytes. The sender is the certificate's username
(section 20): the relay vouches, under its pinned certificate key, that the name
has that identity key, and the ratchet's MAC covers AD = Encode(IK_A) ||
Encode(IK_B), so a message only decrypts in a session with the holder of that key.
Decoding checks that the certificate *parses*; its signature and expiry are the
caller's to check (they need the pinned key and a time: `verify_sender`).

The zeros make the whole box one of the size classes of `size_classes` (section
10.1), chosen without looking at the certificate or the message kind, so the box's
length says neither. Decoding is strict: the padding must be zeros and the box
exactly the class the content calls for, so no content has two encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import nacl.bindings as sodium
import nacl.exceptions

from protocol.e2e.errors import DecryptionFailed, MessageTooLarge
from protocol.e2e.keys import IdentityKeyPair, identity_dh_public
from protocol.e2e.size_classes import (
    MAX_ENVELOPE_CLASS,
    PREKEY_PREFIX_MAX,
    SEAL_OVERHEAD,
    envelope_class,
)
from protocol.wire import certificates, codec
from protocol.wire.certificates import MAX_CERTIFICATE_LEN, SenderCertificate
from protocol.wire.errors import DecodeError

SEALED_VERSION = 3

__all__ = ["SEALED_VERSION", "SEAL_OVERHEAD", "MessageKind", "SealedContent", "seal", "unseal"]


class MessageKind(IntEnum):
    RATCHET = 1
    PREKEY = 2


def _envelope_class(kind: MessageKind, message_len: int, limit: int) -> int:
    """A PreKey message is sized by the ratchet message it carries, so that it lands
    where the same ratchet message without the PQXDH prefix would (section 10.1)."""
    ratchet_len = message_len - PREKEY_PREFIX_MAX if kind is MessageKind.PREKEY else message_len
    return envelope_class(ratchet_len, limit)


@dataclass(frozen=True, slots=True)
class SealedContent:
    certificate: bytes
    """The sender's certificate (PROTOCOL.md 20.1), as the relay issued it."""
    kind: MessageKind
    message: bytes

    @property
    def sender_certificate(self) -> SenderCertificate:
        """What the certificate claims (parsed, NOT verified: `verify_sender`)."""
        return certificates.decode(self.certificate)[0]

    @property
    def sender(self) -> str:
        """The certificate's username: a claim until `verify_sender` accepted it."""
        return self.sender_certificate.username

    def verify_sender(self, cert_public_key: bytes, now: float) -> SenderCertificate:
        """The certificate, if its signature verifies under the relay's pinned
        certificate key and it had not expired at `now` (PROTOCOL.md 20.4). Raises
        DecodeError, BadSignature or CertificateExpired. The caller must still check
        that the certificate's identity is the one the message was made with."""
        return certificates.verify_certificate(self.certificate, cert_public_key, now)

    def encode(self, limit: int = MAX_ENVELOPE_CLASS) -> bytes:
        """MessageTooLarge if the envelope would be larger than `limit` bytes (the
        relay's `max_envelope`) or than the largest class; ValueError for a
        certificate longer than any a relay issues (the size classes assume at most
        MAX_CERTIFICATE_LEN bytes)."""
        if len(self.certificate) > MAX_CERTIFICATE_LEN:
            raise ValueError(f"a sender certificate is at most {MAX_CERTIFICATE_LEN} bytes")
        body = (codec.u8(SEALED_VERSION) + codec.u8(self.kind)
                + codec.var16(self.certificate) + codec.var32(self.message))
        size = _envelope_class(self.kind, len(self.message), limit) - SEAL_OVERHEAD
        return body + bytes(size - len(body))

    @classmethod
    def decode(cls, data: bytes) -> SealedContent:
        r = codec.Reader(data)
        r.expect(SEALED_VERSION, "sealed content version")  # versions 1 and 2 are refused
        kind_value = r.u8()
        try:
            kind = MessageKind(kind_value)
        except ValueError:
            raise DecodeError(f"unknown message kind {kind_value}") from None
        certificate = r.var16()
        certificates.decode(certificate)  # strict layout; InvalidUsername for the name
        message = r.var32()
        if any(r.rest()):
            raise DecodeError("sealed content padding is not all zeros")
        try:
            expected = _envelope_class(kind, len(message), MAX_ENVELOPE_CLASS) - SEAL_OVERHEAD
        except MessageTooLarge:
            raise DecodeError("sealed content larger than the largest envelope") from None
        if len(data) != expected:
            raise DecodeError(f"sealed content of {len(data)} bytes, expected {expected}")
        return cls(certificate, kind, message)


def seal(recipient_identity: bytes, content: SealedContent,
         limit: int = MAX_ENVELOPE_CLASS) -> bytes:
    """The envelope body: always exactly one of the size classes, at most `limit`
    bytes (MessageTooLarge otherwise, before anything is sealed)."""
    return bytes(sodium.crypto_box_seal(content.encode(limit),
                                        identity_dh_public(recipient_identity)))


def unseal(identity: IdentityKeyPair, data: bytes) -> SealedContent:
    """Raises DecryptionFailed if the box does not open, DecodeError if its content is
    malformed."""
    try:
        opened = sodium.crypto_box_seal_open(data, identity.dh_public(), identity.dh_private())
    except (nacl.exceptions.CryptoError, nacl.exceptions.TypeError, ValueError) as exc:
        raise DecryptionFailed("sealed envelope does not open") from exc
    return SealedContent.decode(bytes(opened))
