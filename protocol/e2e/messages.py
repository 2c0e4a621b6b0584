"""Wire layouts of Double Ratchet messages and PQXDH initial messages."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol.e2e.aead import BLOCK, MAC_LEN
from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.prekeys import KemKind, read_kem_kind
from protocol.wire.publickeys import (
    ENCODED_ED25519_LEN,
    ENCODED_X25519_LEN,
    MLKEM768_CT_LEN,
    TYPE_ED25519,
    TYPE_X25519,
    X25519_P,
    decode_key,
    encode_key,
)

MESSAGE_VERSION = 1
HEADER_LEN = 1 + ENCODED_X25519_LEN + 4 + 4
_HEADER = struct.Struct(">BB32sII")


def encode_header(dh: bytes, pn: int, n: int) -> bytes:
    return _HEADER.pack(MESSAGE_VERSION, TYPE_X25519, dh, pn, n)


def parse_header(message: bytes) -> tuple[bytes, int, int]:
    """(dh, pn, n) of an encoded RatchetMessage, checking its whole layout (the
    ratchet's fast path): the same checks as RatchetMessage.decode, through the one
    header parser `_read_header`."""
    body_len = len(message) - HEADER_LEN
    if body_len < BLOCK + MAC_LEN or (body_len - MAC_LEN) % BLOCK:
        if body_len < 0:
            raise DecodeError(f"header must be {HEADER_LEN} bytes")
        raise DecodeError("ciphertext length is not a whole number of blocks plus a MAC")
    return _read_header(message)


def _read_header(data: bytes) -> tuple[bytes, int, int]:
    """The one parser of the 42 header bytes at the start of `data` (PROTOCOL.md 7.2):
    version, key type and a canonical X25519 ratchet key (u < 2^255 - 19; the 19
    encodings 2^255 - 19 .. 2^255 - 1 and any with the top bit set are refused)."""
    version, key_type, dh, pn, n = _HEADER.unpack_from(data)
    if version != MESSAGE_VERSION:
        raise DecodeError(f"unknown message version {version}")
    if key_type != TYPE_X25519:
        raise DecodeError(f"ratchet key type {key_type:#04x}, expected 0x05")
    # only keys whose last byte is 0x7f or more can reach p; the rest skip the bignum
    if dh[31] >= 0x7F and int.from_bytes(dh, "little") >= X25519_P:
        raise DecodeError("non-canonical X25519 ratchet key")
    return dh, pn, n


@dataclass(frozen=True, slots=True)
class Header:
    """HEADER(dh_pair, pn, n) of DR section 3.2:
    version u8 (1) || Encode(ratchet public key) || PN u32 || N u32; 42 bytes."""

    dh: bytes
    pn: int
    n: int

    def encode(self) -> bytes:
        return encode_header(self.dh, self.pn, self.n)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if len(data) != HEADER_LEN:
            raise DecodeError(f"header must be {HEADER_LEN} bytes")
        dh, pn, n = _read_header(data)
        return cls(dh, pn, n)


@dataclass(frozen=True, slots=True)
class RatchetMessage:
    """header (42 bytes) || ciphertext || MAC (32 bytes). The ciphertext is a
    non-empty multiple of 16 bytes; nothing follows the MAC."""

    header: Header
    body: bytes

    def encode(self) -> bytes:
        return self.header.encode() + self.body

    @classmethod
    def decode(cls, data: bytes) -> RatchetMessage:
        dh, pn, n = parse_header(data)
        return cls(Header(dh, pn, n), data[HEADER_LEN:])


@dataclass(frozen=True, slots=True)
class PreKeyMessage:
    """PQXDH's initial message (section 3.3) wrapped around a ratchet message.

    version u8 (1) || Encode(IK_A) || Encode(EK_A) || SPK id u32 || KEM kind u8
    || KEM prekey id u32 || has_opk u8 || [OPK id u32] || KEM ciphertext (1088)
    || RatchetMessage
    """

    identity: bytes
    ephemeral: bytes
    signed_prekey_id: int
    kem_kind: KemKind
    kem_prekey_id: int
    one_time_prekey_id: int | None
    kem_ciphertext: bytes
    message: RatchetMessage

    def encode_prefix(self) -> bytes:
        """Everything but the ratchet message: what the initiator repeats."""
        return encode_prekey_prefix(
            self.identity,
            self.ephemeral,
            self.signed_prekey_id,
            self.kem_kind,
            self.kem_prekey_id,
            self.one_time_prekey_id,
            self.kem_ciphertext,
        )

    def encode(self) -> bytes:
        return self.encode_prefix() + self.message.encode()

    @classmethod
    def decode(cls, data: bytes) -> PreKeyMessage:
        r = codec.Reader(data)
        r.expect(MESSAGE_VERSION, "initial message version")
        identity = decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN))
        ephemeral = decode_key(TYPE_X25519, r.take(ENCODED_X25519_LEN))
        spk_id = r.u32()
        kind = read_kem_kind(r)
        kem_id = r.u32()
        opk_id = r.u32() if r.flag() else None
        ct = r.take(MLKEM768_CT_LEN)
        return cls(identity, ephemeral, spk_id, kind, kem_id, opk_id, ct,
                   RatchetMessage.decode(r.rest()))


def encode_prekey_prefix(
    identity: bytes,
    ephemeral: bytes,
    signed_prekey_id: int,
    kem_kind: KemKind,
    kem_prekey_id: int,
    one_time_prekey_id: int | None,
    kem_ciphertext: bytes,
) -> bytes:
    if len(kem_ciphertext) != MLKEM768_CT_LEN:
        raise ValueError("KEM ciphertext must be 1088 bytes")
    opk = b"\x00" if one_time_prekey_id is None else b"\x01" + codec.u32(one_time_prekey_id)
    return b"".join((
        codec.u8(MESSAGE_VERSION),
        encode_key(TYPE_ED25519, identity),
        encode_key(TYPE_X25519, ephemeral),
        codec.u32(signed_prekey_id),
        codec.u8(kem_kind),
        codec.u32(kem_prekey_id),
        opk,
        kem_ciphertext,
    ))
