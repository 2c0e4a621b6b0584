"""Prekey records and the bundle a server hands out (PQXDH section 3.2).

Each signature is Sig(IK, Encode(PK)): over the exact encoded key and nothing
else, as the specification defines it. Ids are chosen by the owner. Only public
records live here (the relay imports this module); `protocol.e2e.keys` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.publickeys import (
    ENCODED_ED25519_LEN,
    ENCODED_MLKEM768_LEN,
    ENCODED_X25519_LEN,
    SIGNATURE_LEN,
    TYPE_ED25519,
    TYPE_MLKEM768,
    TYPE_X25519,
    decode_key,
    encode_key,
    verify_signature,
)

BUNDLE_VERSION = 1
MAX_PREKEY_ID = 0xFFFFFFFF


class KemKind(IntEnum):
    """Whether the KEM prekey in a bundle or initial message is one-time or last-resort."""

    ONE_TIME = 1
    LAST_RESORT = 2


@dataclass(frozen=True, slots=True)
class SignedPreKey:
    """SPK_B: id u32 || Encode(X25519 key) || Sig(IK_B, Encode(key)); 101 bytes."""

    key_id: int
    public: bytes
    signature: bytes

    SIZE = 4 + ENCODED_X25519_LEN + SIGNATURE_LEN

    def encode(self) -> bytes:
        return codec.u32(self.key_id) + encode_key(TYPE_X25519, self.public) + self.signature

    @classmethod
    def read(cls, r: codec.Reader) -> SignedPreKey:
        key_id = r.u32()
        public = decode_key(TYPE_X25519, r.take(ENCODED_X25519_LEN))
        return cls(key_id, public, r.take(SIGNATURE_LEN))

    @classmethod
    def decode(cls, data: bytes) -> SignedPreKey:
        r = codec.Reader(data)
        out = cls.read(r)
        r.finish()
        return out

    def verify(self, identity_public: bytes) -> None:
        verify_signature(identity_public, self.signature, encode_key(TYPE_X25519, self.public))


@dataclass(frozen=True, slots=True)
class KemPreKey:
    """PQSPK_B or PQOPK_B: id u32 || Encode(ML-KEM-768 key) || Sig(IK_B, Encode(key));
    1253 bytes."""

    key_id: int
    public: bytes
    signature: bytes

    SIZE = 4 + ENCODED_MLKEM768_LEN + SIGNATURE_LEN

    def encode(self) -> bytes:
        return codec.u32(self.key_id) + encode_key(TYPE_MLKEM768, self.public) + self.signature

    @classmethod
    def read(cls, r: codec.Reader) -> KemPreKey:
        key_id = r.u32()
        public = decode_key(TYPE_MLKEM768, r.take(ENCODED_MLKEM768_LEN))
        return cls(key_id, public, r.take(SIGNATURE_LEN))

    @classmethod
    def decode(cls, data: bytes) -> KemPreKey:
        r = codec.Reader(data)
        out = cls.read(r)
        r.finish()
        return out

    def verify(self, identity_public: bytes) -> None:
        verify_signature(identity_public, self.signature, encode_key(TYPE_MLKEM768, self.public))


@dataclass(frozen=True, slots=True)
class OneTimePreKey:
    """OPK_B: id u32 || Encode(X25519 key); 37 bytes. Unsigned, as in the specification."""

    key_id: int
    public: bytes

    SIZE = 4 + ENCODED_X25519_LEN

    def encode(self) -> bytes:
        return codec.u32(self.key_id) + encode_key(TYPE_X25519, self.public)

    @classmethod
    def read(cls, r: codec.Reader) -> OneTimePreKey:
        key_id = r.u32()
        return cls(key_id, decode_key(TYPE_X25519, r.take(ENCODED_X25519_LEN)))

    @classmethod
    def decode(cls, data: bytes) -> OneTimePreKey:
        r = codec.Reader(data)
        out = cls.read(r)
        r.finish()
        return out


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """What Alice fetches to start a session with Bob.

    version u8 (1) || Encode(IK_B) || SignedPreKey || kem kind u8 || KemPreKey
    || has_opk u8 (0/1) || [OneTimePreKey]
    """

    identity: bytes
    signed_prekey: SignedPreKey
    kem_kind: KemKind
    kem_prekey: KemPreKey
    one_time_prekey: OneTimePreKey | None = None

    def encode(self) -> bytes:
        parts = [
            codec.u8(BUNDLE_VERSION),
            encode_key(TYPE_ED25519, self.identity),
            self.signed_prekey.encode(),
            codec.u8(self.kem_kind),
            self.kem_prekey.encode(),
            codec.flag(self.one_time_prekey is not None),
        ]
        if self.one_time_prekey is not None:
            parts.append(self.one_time_prekey.encode())
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> PreKeyBundle:
        r = codec.Reader(data)
        r.expect(BUNDLE_VERSION, "bundle version")
        identity = decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN))
        spk = SignedPreKey.read(r)
        kind = read_kem_kind(r)
        kem = KemPreKey.read(r)
        opk = OneTimePreKey.read(r) if r.flag() else None
        r.finish()
        return cls(identity, spk, kind, kem, opk)

    def verify(self) -> None:
        """Check every signature in the bundle (PQXDH section 3.3, first step)."""
        self.signed_prekey.verify(self.identity)
        self.kem_prekey.verify(self.identity)


def read_kem_kind(r: codec.Reader) -> KemKind:
    value = r.u8()
    try:
        return KemKind(value)
    except ValueError:
        raise DecodeError(f"unknown KEM prekey kind {value}") from None
