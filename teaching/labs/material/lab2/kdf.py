"""Lab 2: fix the broken client. THIS is one of the two files you edit (the other is
aead.py). It is a copy of blindrelay's protocol/e2e/kdf.py, the Double Ratchet's KDFs
(docs/PROTOCOL.md sections 5 and 7), with flaws planted in it. `blindrelay lab check 2`
runs a client that uses this file instead of the real one. Read README.md.
"""


from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SHA256 = hashes.SHA256()
ZERO_SALT = bytes(32)

ROOT_INFO = b"blindrelay_DoubleRatchet_RootChain_v1"
MESSAGE_KEYS_INFO = b"blindrelay_DoubleRatchet_MessageKey_v1"
PQXDH_INFO = b"blindrelay_PQXDH_CURVE25519_SHA-256_ML-KEM-768_v1"

_HMAC = hmac.HMAC
_MESSAGE_KEY_INPUT = b"\x01"
_CHAIN_KEY_INPUT = b"\x02"


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), extract-then-expand."""
    return HKDF(SHA256, length, salt, info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, SHA256)
    mac.update(data)
    return mac.finalize()


def kdf_rk(root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """KDF_RK (DR 5.2): HKDF(salt=rk, IKM=dh_out, info=ROOT_INFO) -> 64 bytes;
    returns (new root key, new chain key)."""
    out = HKDF(SHA256, 64, root_key, ROOT_INFO).derive(dh_out)
    return out[:32], out[32:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK (DR 5.2): returns (next chain key, message key), with
    message key = HMAC(ck, 0x01) and next chain key = HMAC(ck, 0x02)."""
    mac = _HMAC(chain_key, SHA256)
    mac.update(_MESSAGE_KEY_INPUT)
    message_key = mac.finalize()
    return chain_key, message_key


def message_keys(message_key: bytes) -> tuple[bytes, bytes, bytes]:
    """ENCRYPT's expansion (DR 5.2): HKDF(salt=32 zero bytes, IKM=mk,
    info=MESSAGE_KEYS_INFO) -> 80 bytes = enc key 32 || auth key 32 || IV 16."""
    out = HKDF(SHA256, 80, ZERO_SALT, MESSAGE_KEYS_INFO).derive(message_key)
    return out[:32], out[32:64], out[64:]


def pqxdh_kdf(key_material: bytes) -> bytes:
    """PQXDH section 2.2: HKDF(salt = zero-filled hash-length, IKM = F || KM, info) where
    F is 32 0xFF bytes for X25519."""
    return hkdf(ZERO_SALT, b"\xff" * 32 + key_material, PQXDH_INFO, 32)
