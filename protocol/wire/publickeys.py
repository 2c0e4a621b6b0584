"""Public key encodings and signature verification: everything the relay needs.

Encode(PK) is one type byte followed by the raw public key. The three key types
have distinct type bytes *and* distinct lengths, so no encoding of one type can
be read as another (PQXDH section 2.3 requires pairwise-disjoint encodings).
This module holds no private-key operation; `protocol.e2e.keys` has those.
"""

from __future__ import annotations

import functools

import nacl.bindings as sodium
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.wire.errors import BadSignature, DecodeError

TYPE_ED25519 = 0x01
TYPE_X25519 = 0x05
TYPE_MLKEM768 = 0x0A

ED25519_LEN = 32
X25519_LEN = 32
MLKEM768_PUBLIC_LEN = 1184
MLKEM768_SEED_LEN = 64
MLKEM768_CT_LEN = 1088
SIGNATURE_LEN = 64

ENCODED_ED25519_LEN = 1 + ED25519_LEN
ENCODED_X25519_LEN = 1 + X25519_LEN
ENCODED_MLKEM768_LEN = 1 + MLKEM768_PUBLIC_LEN

X25519_P = 2**255 - 19
"""An encoded X25519 key must be canonical: u < p, so its top bit is 0."""

_LENGTHS = {
    TYPE_ED25519: ED25519_LEN,
    TYPE_X25519: X25519_LEN,
    TYPE_MLKEM768: MLKEM768_PUBLIC_LEN,
}


def encode_key(key_type: int, raw: bytes) -> bytes:
    """Encode(PK): type byte || raw public key."""
    if len(raw) != _LENGTHS[key_type]:
        raise ValueError("raw key has the wrong length for its type")
    return bytes((key_type,)) + raw


def decode_key(expected_type: int, encoded: bytes) -> bytes:
    """Inverse of encode_key for one expected type; returns the raw key."""
    if not encoded:
        raise DecodeError("empty key encoding")
    if encoded[0] != expected_type:
        raise DecodeError(f"key type {encoded[0]:#04x}, expected {expected_type:#04x}")
    raw = encoded[1:]
    if len(raw) != _LENGTHS[expected_type]:
        length = _LENGTHS[expected_type]
        raise DecodeError(f"key of type {expected_type:#04x} must be {length} bytes")
    if expected_type == TYPE_X25519 and int.from_bytes(raw, "little") >= X25519_P:
        # X25519 reduces u mod p and ignores the top bit (RFC 7748 section 5), so a
        # non-canonical u would be a second encoding with the same DH output: a flipped
        # top bit of EK_A in an initial message would otherwise go unnoticed.
        raise DecodeError("non-canonical X25519 key (u >= 2^255 - 19)")
    if expected_type == TYPE_ED25519:
        check_identity_key(raw)
    return raw


def check_identity_key(raw: bytes) -> None:
    """An Ed25519 identity key must have an X25519 form (PROTOCOL.md 3.2, 3.3): it
    decodes to a curve point of the prime-order subgroup, not one of small order.
    Without this, a small-order key with the "universal" signature (R the identity
    point, S = 0) would verify for every message, so anyone could log in as it."""
    if not _has_x25519_form(bytes(raw)):
        raise DecodeError("not a valid identity key: it has no X25519 form "
                          "(small order, outside the prime-order subgroup, or no "
                          "curve point)")


@functools.lru_cache(maxsize=4096)
def _has_x25519_form(raw: bytes) -> bool:
    """check_identity_key's test, remembered per key: a client draining its queue
    decodes the same few senders' keys (in certificates and session records) for every
    envelope, and this point decoding was a fifth of its time (issue 14). The answer
    depends on the public key's bytes alone, so remembering it changes no outcome."""
    try:
        sodium.crypto_sign_ed25519_pk_to_curve25519(raw)
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError,
            TypeError):
        return False
    return True


def verify_signature(identity_public: bytes, signature: bytes, message: bytes) -> None:
    """Ed25519 verification (RFC 8032); raises BadSignature."""
    if len(signature) != SIGNATURE_LEN:
        raise BadSignature("signature must be 64 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(identity_public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc
