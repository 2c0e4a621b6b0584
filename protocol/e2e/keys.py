"""Key pairs and private-key operations: X25519, Ed25519 identities, ML-KEM-768.

The public encodings live in `protocol.wire.publickeys` (re-exported here) so that the
relay can import them without importing any private-key operation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.bindings as sodium
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol.e2e.errors import SessionSetupError
from protocol.wire.errors import DecodeError
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, SignedPreKey
from protocol.wire.publickeys import (
    ED25519_LEN,
    ENCODED_ED25519_LEN,
    ENCODED_MLKEM768_LEN,
    ENCODED_X25519_LEN,
    MLKEM768_CT_LEN,
    MLKEM768_PUBLIC_LEN,
    MLKEM768_SEED_LEN,
    SIGNATURE_LEN,
    TYPE_ED25519,
    TYPE_MLKEM768,
    TYPE_X25519,
    X25519_LEN,
    decode_key,
    encode_key,
    verify_signature,
)

Rng = Callable[[int], bytes]
"""A source of random bytes: `rng(n)` returns n bytes. Defaults to os.urandom;
tests and vectors inject a deterministic one."""

default_rng: Rng = os.urandom

def identity_dh_public(identity_public: bytes) -> bytes:
    """The X25519 form of an Ed25519 public key (libsodium's
    crypto_sign_ed25519_pk_to_curve25519: u = (1 + y) / (1 - y))."""
    try:
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(identity_public))
    except Exception as exc:  # libsodium rejects small-order and non-canonical points
        raise SessionSetupError("identity key has no valid X25519 form") from exc


def x25519(private: bytes, public: bytes) -> bytes:
    """DH(private, public) on X25519 (RFC 7748). An all-zero output, which a
    low-order public key produces, is rejected as the RFC section 6.1 allows."""
    return _exchange(X25519PrivateKey.from_private_bytes(private), public)


def _exchange(key: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:
        raise SessionSetupError("X25519 produced an invalid shared secret") from exc


@dataclass(frozen=True, slots=True)
class X25519KeyPair:
    """An X25519 key pair. The library key object is kept so that each DH costs one
    scalar multiplication, not two."""

    private: bytes
    public: bytes
    _key: X25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_private(cls, private: bytes) -> X25519KeyPair:
        if len(private) != X25519_LEN:
            raise DecodeError("X25519 private key must be 32 bytes")
        key = X25519PrivateKey.from_private_bytes(private)
        return cls(private, key.public_key().public_bytes_raw(), key)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> X25519KeyPair:
        return cls.from_private(rng(X25519_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_X25519, self.public)

    def dh(self, peer_public: bytes) -> bytes:
        return _exchange(self._key, peer_public)


@dataclass(frozen=True, slots=True)
class IdentityKeyPair:
    """A user's long-term Ed25519 key pair, kept as its 32-byte seed."""

    seed: bytes
    public: bytes
    _signer: Ed25519PrivateKey = field(repr=False, compare=False)
    _dh: X25519KeyPair = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKeyPair:
        if len(seed) != ED25519_LEN:
            raise DecodeError("Ed25519 seed must be 32 bytes")
        signer = Ed25519PrivateKey.from_private_bytes(seed)
        pub = signer.public_key().public_bytes_raw()
        # The X25519 form of the private key (crypto_sign_ed25519_sk_to_curve25519:
        # the clamped first half of SHA-512(seed)).
        dh = X25519KeyPair.from_private(
            bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(seed + pub)))
        return cls(seed, pub, signer, dh)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> IdentityKeyPair:
        return cls.from_seed(rng(ED25519_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_ED25519, self.public)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signatures are deterministic (RFC 8032), so vectors reproduce."""
        return self._signer.sign(message)

    def dh_private(self) -> bytes:
        return self._dh.private

    def dh_public(self) -> bytes:
        """Equals identity_dh_public(self.public): both maps agree (tests check it)."""
        return self._dh.public

    def dh(self, peer_public: bytes) -> bytes:
        return self._dh.dh(peer_public)


@dataclass(frozen=True, slots=True)
class KemKeyPair:
    """An ML-KEM-768 key pair (FIPS 203), kept as its 64-byte seed (d || z)."""

    seed: bytes
    public: bytes
    _key: mlkem.MLKEM768PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> KemKeyPair:
        if len(seed) != MLKEM768_SEED_LEN:
            raise DecodeError("ML-KEM-768 seed must be 64 bytes")
        key = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        return cls(seed, key.public_key().public_bytes_raw(), key)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> KemKeyPair:
        return cls.from_seed(rng(MLKEM768_SEED_LEN))

    def encoded_public(self) -> bytes:
        return encode_key(TYPE_MLKEM768, self.public)

    def decapsulate(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) != MLKEM768_CT_LEN:
            raise DecodeError("ML-KEM-768 ciphertext must be 1088 bytes")
        return self._key.decapsulate(ciphertext)


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



# -- making prekeys (PQXDH section 3.2): the private half stays with the caller


def make_signed_prekey(
    identity: IdentityKeyPair, key_id: int, rng: Rng = default_rng
) -> tuple[X25519KeyPair, SignedPreKey]:
    pair = X25519KeyPair.generate(rng)
    return pair, SignedPreKey(key_id, pair.public, identity.sign(pair.encoded_public()))


def make_kem_prekey(
    identity: IdentityKeyPair, key_id: int, rng: Rng = default_rng
) -> tuple[KemKeyPair, KemPreKey]:
    pair = KemKeyPair.generate(rng)
    return pair, KemPreKey(key_id, pair.public, identity.sign(pair.encoded_public()))


def make_one_time_prekey(
    key_id: int, rng: Rng = default_rng
) -> tuple[X25519KeyPair, OneTimePreKey]:
    pair = X25519KeyPair.generate(rng)
    return pair, OneTimePreKey(key_id, pair.public)


__all__ = [
    "ED25519_LEN",
    "ENCODED_ED25519_LEN",
    "ENCODED_MLKEM768_LEN",
    "ENCODED_X25519_LEN",
    "MLKEM768_CT_LEN",
    "MLKEM768_PUBLIC_LEN",
    "MLKEM768_SEED_LEN",
    "SIGNATURE_LEN",
    "TYPE_ED25519",
    "TYPE_MLKEM768",
    "TYPE_X25519",
    "X25519_LEN",
    "IdentityKeyPair",
    "KemKeyPair",
    "Rng",
    "X25519KeyPair",
    "decode_key",
    "default_rng",
    "encode_key",
    "identity_dh_public",
    "kem_encapsulate",
    "make_kem_prekey",
    "make_one_time_prekey",
    "make_signed_prekey",
    "verify_signature",
    "x25519",
]
