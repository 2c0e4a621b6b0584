"""Key pairs, their fixed encodings, and the Ed25519 -> X25519 conversion.

Encode(PK) is one type byte followed by the raw public key. The three key types
have distinct type bytes *and* distinct lengths, so no encoding of one type can
be read as another (PQXDH section 2.3 requires pairwise-disjoint encodings).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings as sodium
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol.errors import BadSignature, DecodeError, SessionSetupError

Rng = Callable[[int], bytes]
"""A source of random bytes: `rng(n)` returns n bytes. Defaults to os.urandom;
tests and vectors inject a deterministic one."""

default_rng: Rng = os.urandom

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
    return raw


def x25519(private: bytes, public: bytes) -> bytes:
    """DH(private, public) on X25519 (RFC 7748). An all-zero output, which a
    low-order public key produces, is rejected as the RFC section 6.1 allows."""
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(public)
        )
    except ValueError as exc:
        raise SessionSetupError("X25519 produced an invalid shared secret") from exc


@dataclass(frozen=True, slots=True)
class X25519KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> X25519KeyPair:
        if len(private) != X25519_LEN:
            raise DecodeError("X25519 private key must be 32 bytes")
        pub = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
        return cls(private, pub)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> X25519KeyPair:
        return cls.from_private(rng(X25519_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_X25519, self.public)

    def dh(self, peer_public: bytes) -> bytes:
        return x25519(self.private, peer_public)


def verify_signature(identity_public: bytes, signature: bytes, message: bytes) -> None:
    """Ed25519 verification (RFC 8032); raises BadSignature."""
    if len(signature) != SIGNATURE_LEN:
        raise BadSignature("signature must be 64 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(identity_public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def identity_dh_public(identity_public: bytes) -> bytes:
    """The X25519 form of an Ed25519 public key (libsodium's
    crypto_sign_ed25519_pk_to_curve25519: u = (1 + y) / (1 - y))."""
    try:
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(identity_public))
    except Exception as exc:  # libsodium rejects small-order and non-canonical points
        raise SessionSetupError("identity key has no valid X25519 form") from exc


@dataclass(frozen=True, slots=True)
class IdentityKeyPair:
    """A user's long-term Ed25519 key pair, kept as its 32-byte seed."""

    seed: bytes
    public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKeyPair:
        if len(seed) != ED25519_LEN:
            raise DecodeError("Ed25519 seed must be 32 bytes")
        pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return cls(seed, pub)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> IdentityKeyPair:
        return cls.from_seed(rng(ED25519_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_ED25519, self.public)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signatures are deterministic (RFC 8032), so vectors reproduce."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def dh_private(self) -> bytes:
        """The X25519 form of the private key (crypto_sign_ed25519_sk_to_curve25519:
        the clamped first half of SHA-512(seed))."""
        return bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(self.seed + self.public))

    def dh_public(self) -> bytes:
        return identity_dh_public(self.public)

    def dh(self, peer_public: bytes) -> bytes:
        return x25519(self.dh_private(), peer_public)


@dataclass(frozen=True, slots=True)
class KemKeyPair:
    """An ML-KEM-768 key pair (FIPS 203), kept as its 64-byte seed (d || z)."""

    seed: bytes
    public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> KemKeyPair:
        if len(seed) != MLKEM768_SEED_LEN:
            raise DecodeError("ML-KEM-768 seed must be 64 bytes")
        key = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        return cls(seed, key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> KemKeyPair:
        return cls.from_seed(rng(MLKEM768_SEED_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_MLKEM768, self.public)

    def decapsulate(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) != MLKEM768_CT_LEN:
            raise DecodeError("ML-KEM-768 ciphertext must be 1088 bytes")
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(self.seed).decapsulate(ciphertext)


def kem_encapsulate(public: bytes) -> tuple[bytes, bytes]:
    """ML-KEM-768.Encaps with the OS's randomness: returns (ciphertext, shared secret).
    `cryptography` takes no injected randomness here, which is why the test vectors
    record the output and check the decapsulating side against it."""
    try:
        key = mlkem.MLKEM768PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise SessionSetupError("invalid ML-KEM-768 public key") from exc
    shared, ciphertext = key.encapsulate()
    return ciphertext, shared
