"""Ciphersuite 1, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 section 5.1),
and the labelled operations every other part of MLS is built from (sections 5.1.3,
5.2, 5.1.2).

    KDF  HKDF-SHA256 (Nh = 32)       AEAD  AES-128-GCM (Nk = 16, Nn = 12)
    KEM  DHKEM(X25519, HKDF-SHA256)  signature  Ed25519

Labels are prefixed "MLS 1.0 " wherever the RFC says so, in one place each, so that a
label in a caller reads as in the RFC ("epoch", "sender data", ...). HPKE (RFC 9180,
base mode, empty AAD) comes from `cryptography`; its DeriveKeyPair (RFC 9180 section
7.1.3), which `cryptography` does not expose, is written out here from HKDF.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.e2e.errors import DecryptionFailed
from protocol.wire import tls

CIPHER_SUITE = 1
NH = 32  # KDF.Nh, also Hash.length
NK = 16  # AEAD.Nk
NN = 12  # AEAD.Nn
LABEL_PREFIX = b"MLS 1.0 "

_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
_KEM_SUITE_ID = b"KEM" + (0x0020).to_bytes(2, "big")  # DHKEM(X25519, HKDF-SHA256)


class BadSignature(DecryptionFailed):
    """A signature over labelled content did not verify (section 5.1.2)."""


# -- hash and KDF (sections 5.1, 5.2)

def hash_(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC (section 5.1): HMAC with the suite's hash."""
    return hmac.new(key, data, hashlib.sha256).digest()


def extract(salt: bytes, ikm: bytes) -> bytes:
    """KDF.Extract (HKDF-Extract, RFC 5869 section 2.2); an empty salt is Nh zeros."""
    return hmac.new(salt or bytes(NH), ikm, hashlib.sha256).digest()


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    """KDF.Expand (HKDF-Expand, RFC 5869 section 2.3)."""
    if length > 255 * NH:
        raise ValueError("HKDF-Expand output too long")
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def expand_with_label(secret: bytes, label: str | bytes, context: bytes, length: int
                      ) -> bytes:
    """ExpandWithLabel (section 5.2): KDFLabel = uint16 length ||
    opaque label<V> = "MLS 1.0 " + Label || opaque context<V>."""
    raw = label.encode() if isinstance(label, str) else label
    info = tls.u16(length) + tls.opaque(LABEL_PREFIX + raw) + tls.opaque(context)
    return expand(secret, info, length)


def derive_secret(secret: bytes, label: str | bytes) -> bytes:
    """DeriveSecret (section 5.2): ExpandWithLabel(secret, label, "", Nh)."""
    return expand_with_label(secret, label, b"", NH)


def derive_tree_secret(secret: bytes, label: str | bytes, generation: int, length: int
                       ) -> bytes:
    """DeriveTreeSecret (section 9.1): the generation as a uint32 context."""
    return expand_with_label(secret, label, tls.u32(generation), length)


def ref_hash(label: str | bytes, value: bytes) -> bytes:
    """RefHash (section 5.2): Hash(opaque label<V> || opaque value<V>), the label used
    as given (e.g. "MLS 1.0 KeyPackage Reference")."""
    raw = label.encode() if isinstance(label, str) else label
    return hash_(tls.opaque(raw) + tls.opaque(value))


# -- signatures (section 5.1.2)

def _sign_content(label: str | bytes, content: bytes) -> bytes:
    raw = label.encode() if isinstance(label, str) else label
    return tls.opaque(LABEL_PREFIX + raw) + tls.opaque(content)


def sign_with_label(private_key: bytes, label: str | bytes, content: bytes) -> bytes:
    """SignWithLabel: Ed25519 over SignContent = opaque label<V> = "MLS 1.0 " + Label ||
    opaque content<V>. `private_key` is the 32-byte Ed25519 seed."""
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(
        _sign_content(label, content))


def verify_with_label(public_key: bytes, label: str | bytes, content: bytes,
                      signature: bytes) -> None:
    """VerifyWithLabel; raises BadSignature (also for a malformed key or signature)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, _sign_content(label, content))
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def signature_public_key(private_key: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


# -- public-key encryption (section 5.1.3)

def _encrypt_context(label: str | bytes, context: bytes) -> bytes:
    raw = label.encode() if isinstance(label, str) else label
    return tls.opaque(LABEL_PREFIX + raw) + tls.opaque(context)


def encrypt_with_label(public_key: bytes, label: str | bytes, context: bytes,
                       plaintext: bytes) -> tuple[bytes, bytes]:
    """EncryptWithLabel: HPKE SealBase(pk, info = EncryptContext, aad = "", pt).
    Returns (kem_output, ciphertext)."""
    out = _HPKE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key),
                        info=_encrypt_context(label, context))
    return out[:32], out[32:]


def decrypt_with_label(private_key: bytes, label: str | bytes, context: bytes,
                       kem_output: bytes, ciphertext: bytes) -> bytes:
    """DecryptWithLabel; DecryptionFailed if it does not open."""
    try:
        return _HPKE.decrypt(kem_output + ciphertext,
                             X25519PrivateKey.from_private_bytes(private_key),
                             info=_encrypt_context(label, context))
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("HPKE ciphertext does not open") from exc


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + _KEM_SUITE_ID + label + ikm)


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + _KEM_SUITE_ID + label
                  + info, length)


def derive_key_pair(ikm: bytes) -> tuple[bytes, bytes]:
    """HPKE DeriveKeyPair for DHKEM(X25519) (RFC 9180 section 7.1.3): (private, public),
    raw 32 bytes each. MLS derives node keys from path secrets with it (section 7.4)."""
    dkp_prk = _labeled_extract(b"", b"dkp_prk", ikm)
    sk = _labeled_expand(dkp_prk, b"sk", b"", 32)
    pk = X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    return sk, pk


def x25519_public_key(private_key: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


# -- AEAD (sections 6.3, 9)

def aead_seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("AEAD ciphertext does not open") from exc


# -- HPKE export for external commits (RFC 9180 sections 4.1, 5.1, 5.3; RFC 9420 12.4.3.2)

_HPKE_SUITE_ID = b"HPKE" + (0x0020).to_bytes(2, "big") + (0x0001).to_bytes(2, "big") \
    + (0x0001).to_bytes(2, "big")  # DHKEM(X25519), HKDF-SHA256, AES-128-GCM


def _hpke_labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _hpke_labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes,
                         length: int) -> bytes:
    return expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info,
                  length)


def _hpke_exporter_secret(dh: bytes, kem_context: bytes) -> bytes:
    """Base mode with empty info, PSK and PSK id, up to the exporter secret."""
    eae_prk = _hpke_labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    shared = _hpke_labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, 32)
    psk_id_hash = _hpke_labeled_extract(_HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = _hpke_labeled_extract(_HPKE_SUITE_ID, b"", b"info_hash", b"")
    context = b"\x00" + psk_id_hash + info_hash
    secret = _hpke_labeled_extract(_HPKE_SUITE_ID, shared, b"secret", b"")
    return _hpke_labeled_expand(_HPKE_SUITE_ID, secret, b"exp", context, NH)


def _hpke_export(exporter_secret: bytes, exporter_context: bytes, length: int) -> bytes:
    return _hpke_labeled_expand(_HPKE_SUITE_ID, exporter_secret, b"sec", exporter_context,
                                length)


EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


def external_init_receive(external_private: bytes, kem_output: bytes) -> bytes:
    """The init secret a member derives from an ExternalInit's kem_output (12.4.3.2):
    SetupBaseR(kem_output, external_priv, "").Export("MLS 1.0 external init secret")."""
    try:
        private = X25519PrivateKey.from_private_bytes(external_private)
        dh = private.exchange(X25519PublicKey.from_public_bytes(kem_output))
    except ValueError as exc:
        raise DecryptionFailed("ExternalInit kem_output is not a valid key") from exc
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _hpke_export(_hpke_exporter_secret(dh, kem_output + public), EXTERNAL_INIT_LABEL,
                        NH)


def external_init_send(external_public: bytes) -> tuple[bytes, bytes]:
    """The joiner's side: (kem_output, init_secret) for the group's external_pub."""
    ephemeral = X25519PrivateKey.generate()
    enc = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(external_public))
    return enc, _hpke_export(_hpke_exporter_secret(dh, enc + external_public),
                             EXTERNAL_INIT_LABEL, NH)
