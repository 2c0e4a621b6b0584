"""Sealed sender: the envelope body hides who sent it, and its size hides the rest.

A ratchet message alone does not say which session it belongs to, and a PQXDH
initial message names the sender's identity key in the clear. So the client seals
    version u8 (2) || kind u8 || var8(sender username) || var32(message) || zeros
to the recipient's identity key (its X25519 form) with libsodium's sealed box
(crypto_box_seal: an ephemeral X25519 key, XSalsa20-Poly1305). The relay sees
only the recipient and opaque bytes. The sender's claim is checked by the
recipient: the ratchet's MAC covers AD = Encode(IK_A) || Encode(IK_B), so a
message can only decrypt in the session with the real sender.

The zeros make the whole box one of the size classes of `size_classes` (section
10.1), chosen without looking at the sender's name or the message kind, so the
box's length says neither. Decoding is strict: the padding must be zeros and the
box exactly the class the content calls for, so no content has two encodings.
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
from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.usernames import decode_username

SEALED_VERSION = 2

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
    sender: str
    kind: MessageKind
    message: bytes

    def encode(self, limit: int = MAX_ENVELOPE_CLASS) -> bytes:
        """MessageTooLarge if the envelope would be larger than `limit` bytes (the
        relay's `max_envelope`) or than the largest class."""
        body = (codec.u8(SEALED_VERSION) + codec.u8(self.kind)
                + codec.var8(self.sender.encode("ascii")) + codec.var32(self.message))
        size = _envelope_class(self.kind, len(self.message), limit) - SEAL_OVERHEAD
        return body + bytes(size - len(body))

    @classmethod
    def decode(cls, data: bytes) -> SealedContent:
        r = codec.Reader(data)
        r.expect(SEALED_VERSION, "sealed content version")  # version 1 is refused
        kind_value = r.u8()
        try:
            kind = MessageKind(kind_value)
        except ValueError:
            raise DecodeError(f"unknown message kind {kind_value}") from None
        sender = decode_username(r.var8())
        message = r.var32()
        if any(r.rest()):
            raise DecodeError("sealed content padding is not all zeros")
        try:
            expected = _envelope_class(kind, len(message), MAX_ENVELOPE_CLASS) - SEAL_OVERHEAD
        except MessageTooLarge:
            raise DecodeError("sealed content larger than the largest envelope") from None
        if len(data) != expected:
            raise DecodeError(f"sealed content of {len(data)} bytes, expected {expected}")
        return cls(sender, kind, message)


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
