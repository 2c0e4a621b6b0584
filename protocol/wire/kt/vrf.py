"""RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI (suite_string 0x03): the directory's VRF.

The key directory finds an entry by `beta = VRF(username)` rather than by the name,
so the published directory does not list who is registered, while anyone holding the
directory's public key can check (with the proof `pi`) that a label really is the VRF
output for a given name (docs/PROTOCOL.md section 19.3).

Names follow RFC 9381: `prove` is ECVRF_prove (section 5.1), `proof_to_hash` is
ECVRF_proof_to_hash (5.2), `verify` is ECVRF_verify (5.3) with validate_key on,
`encode_to_curve` is try-and-increment (5.4.1.1), `nonce_generation` follows RFC 8032
(5.4.2.2), `challenge_generation` is 5.4.3, `decode_proof` 5.4.4 and `validate_key`
5.4.5.

Point arithmetic is libsodium's (through PyNaCl). libsodium's scalar multiplication
accepts only points of the prime-order subgroup, while RFC 9381 verification must work
on any point that decodes (a public key or Gamma may carry a small-order component).
`_scalar_mult` therefore splits such a point P into its prime-order part A = (8^-1 mod
L) * (8 * P) and its torsion part T = P - A, and computes k * P = k * A + (k mod 8) * T.
Multiplying by the cofactor is three doublings with `crypto_core_ed25519_add`, which
takes any point on the curve. Point decoding is RFC 8032 section 5.1.3 done strictly
here (libsodium's decoder accepts y >= p and a "negative" zero x): a non-canonical
encoding is INVALID, as RFC 9381 section 5.5 requires.

Operations on the secret scalar and the nonce use libsodium's scalar functions; the
public challenge c and response s are plain integers.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import nacl.bindings as sodium

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.errors import VrfError

SUITE_STRING = b"\x03"
"""ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 section 5.5)."""

SECRET_KEY_LEN = 32
PUBLIC_KEY_LEN = 32
PT_LEN = 32
"""ptLen: an encoded point (RFC 8032 section 5.1.2)."""
C_LEN = 16
"""cLen: the challenge is the first 16 bytes of a SHA-512 output."""
Q_LEN = 32
"""qLen: the response s, little-endian, s < L."""
PROOF_LEN = PT_LEN + C_LEN + Q_LEN
"""pi = Gamma (32) || c (16) || s (32): 80 bytes."""
BETA_LEN = 64
"""beta: one SHA-512 output."""

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
"""The order q of the prime-order subgroup (RFC 9381 calls it q)."""
COFACTOR = 8
_D = (-121665 * pow(121666, -1, P)) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_INV_COFACTOR = pow(COFACTOR, -1, L)

IDENTITY = (1).to_bytes(32, "little")
"""The neutral element (x = 0, y = 1), encoded."""

_ENCODE_FRONT = b"\x01"
_ENCODE_BACK = b"\x00"
_CHALLENGE_FRONT = b"\x02"
_CHALLENGE_BACK = b"\x00"
_PROOF_TO_HASH_FRONT = b"\x03"
_PROOF_TO_HASH_BACK = b"\x00"


@dataclass(frozen=True)
class Proof:
    """A decoded proof (RFC 9381 section 5.4.4): Gamma as a canonical encoding."""

    gamma: bytes
    c: int
    s: int


def _sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def is_point(data: bytes) -> bool:
    """RFC 8032 section 5.1.3 decoding, strictly: True when `data` is the canonical
    encoding of a point on edwards25519 (any point, small-order ones included)."""
    if len(data) != PT_LEN:
        return False
    value = int.from_bytes(data, "little")
    x_0 = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= P:
        return False
    u = (y * y - 1) % P
    v = (_D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P != 0:
        x = (x * _SQRT_M1) % P
        if (v * x * x - u) % P != 0:
            return False
    return not (x == 0 and x_0 == 1)


def _add(a: bytes, b: bytes) -> bytes:
    return bytes(sodium.crypto_core_ed25519_add(a, b))


def _sub(a: bytes, b: bytes) -> bytes:
    return bytes(sodium.crypto_core_ed25519_sub(a, b))


def _mul_cofactor(point: bytes) -> bytes:
    """8 * point by three doublings: defined for every point on the curve."""
    for _ in range(3):
        point = _add(point, point)
    return point


def _scalar(value: int) -> bytes:
    return (value % L).to_bytes(32, "little")


def _reduce(data: bytes) -> bytes:
    """A little-endian byte string of up to 64 bytes, reduced mod L (32 bytes)."""
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(data.ljust(64, b"\x00")))


def _base_mult(scalar: bytes) -> bytes:
    """scalar * B for a reduced scalar (libsodium refuses 0, whose product is the
    identity)."""
    if not any(scalar):
        return IDENTITY
    return bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(scalar))


def _subgroup_mult(scalar: bytes, point: bytes) -> bytes:
    """scalar * point for a reduced scalar and a point of the prime-order subgroup
    (the identity included)."""
    if not any(scalar) or point == IDENTITY:
        return IDENTITY
    return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))


def _scalar_mult(value: int, point: bytes) -> bytes:
    """value * point for any point on the curve: prime-order part by libsodium, the
    small-order part (order dividing 8) by repeated addition. A point of the
    prime-order subgroup (every honest key and Gamma) goes straight to libsodium."""
    if sodium.crypto_core_ed25519_is_valid_point(point):
        return _subgroup_mult(_scalar(value), point)
    prime_part = _subgroup_mult(_scalar(_INV_COFACTOR), _mul_cofactor(point))
    torsion = _sub(point, prime_part)
    result = _subgroup_mult(_scalar(value), prime_part)
    for _ in range(value % COFACTOR):
        result = _add(result, torsion)
    return result


def _check_secret_key(secret_key: bytes) -> None:
    if not isinstance(secret_key, bytes) or len(secret_key) != SECRET_KEY_LEN:
        raise LocalProtocolError(f"a VRF secret key is {SECRET_KEY_LEN} bytes")


def _secret_scalar(secret_key: bytes) -> bytes:
    """x from SK as in RFC 8032 section 5.1.5: the pruned first half of SHA-512(SK),
    reduced mod L (x * B is unchanged, and libsodium wants scalars below 2^255)."""
    buffer = bytearray(_sha512(secret_key)[:32])
    buffer[0] &= 0xF8
    buffer[31] &= 0x7F
    buffer[31] |= 0x40
    return _reduce(bytes(buffer))


def public_key(secret_key: bytes) -> bytes:
    """PK_string = point_to_string(x * B): the Ed25519 public key of the same seed."""
    _check_secret_key(secret_key)
    return _base_mult(_secret_scalar(secret_key))


def encode_to_curve(salt: bytes, alpha: bytes) -> bytes:
    """ECVRF_encode_to_curve_try_and_increment (RFC 9381 section 5.4.1.1), with
    encode_to_curve_salt = PK_string: hash with a one-byte counter until the first 32
    bytes decode to a point whose cofactor multiple is not the identity."""
    for ctr in range(256):
        hash_string = _sha512(SUITE_STRING, _ENCODE_FRONT, salt, alpha,
                              bytes([ctr]), _ENCODE_BACK)
        candidate = hash_string[:PT_LEN]
        if not is_point(candidate):
            continue
        point = _mul_cofactor(candidate)
        if point != IDENTITY:
            return point
    # Each try fails with probability about 1/2: unreachable in practice.
    raise VrfError("encode_to_curve found no point in 256 tries")


def nonce_generation(secret_key: bytes, h_string: bytes) -> bytes:
    """ECVRF_nonce_generation_RFC8032 (RFC 9381 section 5.4.2.2): k = SHA-512(second
    half of SHA-512(SK) || H_string) mod L, as a 32-byte little-endian scalar."""
    _check_secret_key(secret_key)
    truncated_hashed_sk = _sha512(secret_key)[32:]
    return _reduce(_sha512(truncated_hashed_sk, h_string))


def challenge_generation(p1: bytes, p2: bytes, p3: bytes, p4: bytes, p5: bytes) -> int:
    """ECVRF_challenge_generation (RFC 9381 section 5.4.3): the first cLen bytes of
    SHA-512(suite || 0x02 || P1 || ... || P5 || 0x00), read little-endian."""
    c_string = _sha512(SUITE_STRING, _CHALLENGE_FRONT, p1, p2, p3, p4, p5, _CHALLENGE_BACK)
    return int.from_bytes(c_string[:C_LEN], "little")


def prove(secret_key: bytes, alpha: bytes) -> bytes:
    """ECVRF_prove (RFC 9381 section 5.1): pi = Gamma || c || s for input alpha."""
    _check_secret_key(secret_key)
    x = _secret_scalar(secret_key)
    y = _base_mult(x)
    h = encode_to_curve(y, alpha)
    gamma = _subgroup_mult(x, h)
    k = nonce_generation(secret_key, h)
    c = challenge_generation(y, h, gamma, _base_mult(k), _subgroup_mult(k, h))
    c_scalar = c.to_bytes(C_LEN, "little").ljust(32, b"\x00")
    s = bytes(sodium.crypto_core_ed25519_scalar_add(
        k, sodium.crypto_core_ed25519_scalar_mul(c_scalar, x)))
    return gamma + c.to_bytes(C_LEN, "little") + s


def decode_proof(pi: bytes) -> Proof:
    """ECVRF_decode_proof (RFC 9381 section 5.4.4): exactly 80 bytes, Gamma a canonical
    point encoding, s < L. Raises VrfError otherwise."""
    if not isinstance(pi, bytes) or len(pi) != PROOF_LEN:
        raise VrfError(f"a VRF proof is {PROOF_LEN} bytes")
    gamma = pi[:PT_LEN]
    if not is_point(gamma):
        raise VrfError("the proof's Gamma is not a canonical curve point")
    c = int.from_bytes(pi[PT_LEN:PT_LEN + C_LEN], "little")
    s = int.from_bytes(pi[PT_LEN + C_LEN:], "little")
    if s >= L:
        raise VrfError("the proof's s is not below the group order")
    return Proof(gamma=gamma, c=c, s=s)


def proof_to_hash(pi: bytes) -> bytes:
    """ECVRF_proof_to_hash (RFC 9381 section 5.2): beta = SHA-512(suite || 0x03 ||
    8 * Gamma || 0x00). It does not verify pi: use it on a proof from `prove`, or call
    `verify`, which returns the same beta only for a valid proof."""
    return _gamma_to_hash(decode_proof(pi).gamma)


def _gamma_to_hash(gamma: bytes) -> bytes:
    return _sha512(SUITE_STRING, _PROOF_TO_HASH_FRONT, _mul_cofactor(gamma),
                   _PROOF_TO_HASH_BACK)


def validate_key(pk: bytes) -> None:
    """ECVRF_validate_key (RFC 9381 section 5.4.5): PK must decode, and 8 * Y must
    not be the identity (a small-order key would let one proof serve many inputs).
    Raises VrfError."""
    if not isinstance(pk, bytes) or not is_point(pk):
        raise VrfError("the VRF public key is not a canonical curve point")
    if _mul_cofactor(pk) == IDENTITY:
        raise VrfError("the VRF public key has small order")


def verify(pk: bytes, pi: bytes, alpha: bytes) -> bytes:
    """ECVRF_verify (RFC 9381 section 5.3) with validate_key: returns beta when pi
    proves that beta is the VRF output of alpha under pk; raises VrfError otherwise."""
    validate_key(pk)
    proof = decode_proof(pi)
    h = encode_to_curve(pk, alpha)
    u = _sub(_base_mult(_scalar(proof.s)), _scalar_mult(proof.c, pk))
    v = _sub(_subgroup_mult(_scalar(proof.s), h), _scalar_mult(proof.c, proof.gamma))
    expected = challenge_generation(pk, h, proof.gamma, u, v)
    if not hmac.compare_digest(expected.to_bytes(C_LEN, "little"),
                               proof.c.to_bytes(C_LEN, "little")):
        raise VrfError("the VRF proof does not verify")
    return _gamma_to_hash(proof.gamma)
