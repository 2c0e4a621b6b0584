"""Sealed sender: the envelope body hides who sent it.

A ratchet message alone does not say which session it belongs to, and a PQXDH
initial message names the sender's identity key in the clear. So the client seals
    version u8 (1) || kind u8 || var8(sender username) || message
to the recipient's identity key (its X25519 form) with libsodium's sealed box
(crypto_box_seal: an ephemeral X25519 key, XSalsa20-Poly1305). The relay sees
only the recipient and opaque bytes. The sender's claim is checked by the
recipient: the ratchet's MAC covers AD = Encode(IK_A) || Encode(IK_B), so a
message can only decrypt in the session with the real sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import nacl.bindings as sodium
import nacl.exceptions

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.keys import IdentityKeyPair, identity_dh_public
from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.usernames import decode_username

SEALED_VERSION = 1
SEAL_OVERHEAD = 48  # ephemeral public key 32 + Poly1305 tag 16


class MessageKind(IntEnum):
    RATCHET = 1
    PREKEY = 2


@dataclass(frozen=True, slots=True)
class SealedContent:
    sender: str
    kind: MessageKind
    message: bytes

    def encode(self) -> bytes:
        return (codec.u8(SEALED_VERSION) + codec.u8(self.kind)
                + codec.var8(self.sender.encode("ascii")) + self.message)

    @classmethod
    def decode(cls, data: bytes) -> SealedContent:
        r = codec.Reader(data)
        r.expect(SEALED_VERSION, "sealed content version")
        kind_value = r.u8()
        try:
            kind = MessageKind(kind_value)
        except ValueError:
            raise DecodeError(f"unknown message kind {kind_value}") from None
        sender = decode_username(r.var8())
        return cls(sender, kind, r.rest())


def seal(recipient_identity: bytes, content: SealedContent) -> bytes:
    return bytes(sodium.crypto_box_seal(content.encode(), identity_dh_public(recipient_identity)))


def unseal(identity: IdentityKeyPair, data: bytes) -> SealedContent:
    """Raises DecryptionFailed if the box does not open, DecodeError if its content is
    malformed."""
    try:
        opened = sodium.crypto_box_seal_open(data, identity.dh_public(), identity.dh_private())
    except (nacl.exceptions.CryptoError, nacl.exceptions.TypeError, ValueError) as exc:
        raise DecryptionFailed("sealed envelope does not open") from exc
    return SealedContent.decode(bytes(opened))
