"""Key encodings, the Ed25519 -> X25519 conversion, signatures, and the rejection of
low-order and non-canonical X25519 points."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol.e2e.errors import SessionSetupError
from protocol.e2e.keys import (
    ENCODED_ED25519_LEN,
    ENCODED_MLKEM768_LEN,
    ENCODED_X25519_LEN,
    MLKEM768_CT_LEN,
    TYPE_ED25519,
    TYPE_MLKEM768,
    TYPE_X25519,
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    decode_key,
    encode_key,
    identity_dh_public,
    kem_encapsulate,
    verify_signature,
    x25519,
)
from protocol.wire.errors import BadSignature, DecodeError
from tests.protocol.support import LOW_ORDER_X25519, P25519, DetRng

RNG = DetRng(b"test_keys")
ALICE = IdentityKeyPair.generate(RNG)
BOB = IdentityKeyPair.generate(RNG)
EPHEMERAL = X25519KeyPair.generate(RNG)
KEM = KemKeyPair.generate(RNG)

ENCODINGS = {
    TYPE_ED25519: ALICE.encoded_public(),
    TYPE_X25519: EPHEMERAL.encoded_public(),
    TYPE_MLKEM768: KEM.encoded_public(),
}


def test_encodings_are_type_byte_then_raw_key() -> None:
    assert ALICE.encoded_public() == b"\x01" + ALICE.public
    assert EPHEMERAL.encoded_public() == b"\x05" + EPHEMERAL.public
    assert KEM.encoded_public() == b"\x0a" + KEM.public
    assert [len(e) for e in ENCODINGS.values()] == [
        ENCODED_ED25519_LEN, ENCODED_X25519_LEN, ENCODED_MLKEM768_LEN
    ]


def test_encodings_of_different_types_are_pairwise_disjoint() -> None:
    # PQXDH section 2.3: no encoding of one key type may decode as another.
    for encoded_type, encoded in ENCODINGS.items():
        for expected in ENCODINGS:
            if expected == encoded_type:
                assert encode_key(expected, decode_key(expected, encoded)) == encoded
            else:
                with pytest.raises(DecodeError):
                    decode_key(expected, encoded)

    # The ML-KEM encoding differs from the others in length too.
    for expected in (TYPE_ED25519, TYPE_X25519):
        with pytest.raises(DecodeError):
            decode_key(expected, bytes((expected,)) + KEM.public)


@pytest.mark.parametrize("key_type", [TYPE_ED25519, TYPE_X25519, TYPE_MLKEM768])
def test_decode_key_rejects_truncation_and_trailing_bytes(key_type: int) -> None:
    encoded = ENCODINGS[key_type]
    for cut in (0, 1, len(encoded) - 1):
        with pytest.raises(DecodeError):
            decode_key(key_type, encoded[:cut])
    with pytest.raises(DecodeError):
        decode_key(key_type, encoded + b"\x00")


def test_encode_key_refuses_a_raw_key_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="wrong length"):
        encode_key(TYPE_X25519, bytes(31))


@pytest.mark.parametrize(
    "u", [2**255 - 1, P25519, P25519 + 1, 2**255 + 9], ids=["2^255-1", "p", "p+1", "top-bit-9"]
)
def test_non_canonical_x25519_encodings_are_rejected(u: int) -> None:
    # u >= p would be a second encoding of u mod p (X25519 ignores the top bit and
    # reduces mod p), so a flipped top bit would give the same DH output.
    raw = (u % 2**256).to_bytes(32, "little")
    with pytest.raises(DecodeError):
        decode_key(TYPE_X25519, b"\x05" + raw)


def test_the_largest_canonical_x25519_encoding_is_accepted() -> None:
    raw = (P25519 - 1).to_bytes(32, "little")
    assert decode_key(TYPE_X25519, b"\x05" + raw) == raw


def test_identity_x25519_form_is_the_birational_map_of_the_ed25519_key() -> None:
    # u = (1 + y) / (1 - y) mod p, with y the Edwards y-coordinate (sign bit cleared).
    y = int.from_bytes(ALICE.public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, -1, P25519) % P25519
    assert ALICE.dh_public() == u.to_bytes(32, "little")
    assert identity_dh_public(ALICE.public) == ALICE.dh_public()


def test_identity_x25519_private_key_is_the_clamped_hash_of_the_seed() -> None:
    scalar = bytearray(hashlib.sha512(ALICE.seed).digest()[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    assert ALICE.dh_private() == bytes(scalar)
    # ... and it belongs to the converted public key.
    assert X25519KeyPair.from_private(ALICE.dh_private()).public == ALICE.dh_public()


def test_identity_dh_agrees_with_plain_x25519() -> None:
    assert ALICE.dh(EPHEMERAL.public) == EPHEMERAL.dh(ALICE.dh_public())
    assert ALICE.dh(BOB.dh_public()) == BOB.dh(ALICE.dh_public())
    assert ALICE.dh(EPHEMERAL.public) != BOB.dh(EPHEMERAL.public)


def test_x25519_matches_the_library() -> None:
    other = X25519PrivateKey.generate()
    expected = other.exchange(X25519PublicKey.from_public_bytes(EPHEMERAL.public))
    assert EPHEMERAL.dh(other.public_key().public_bytes_raw()) == expected


@pytest.mark.parametrize("point", LOW_ORDER_X25519, ids=lambda p: p.hex()[:8])
def test_low_order_x25519_points_are_rejected(point: bytes) -> None:
    with pytest.raises(SessionSetupError):
        x25519(EPHEMERAL.private, point)
    with pytest.raises(SessionSetupError):
        ALICE.dh(point)
    with pytest.raises(SessionSetupError):  # the same points with the top bit set
        x25519(EPHEMERAL.private, point[:31] + bytes((point[31] | 0x80,)))


@pytest.mark.parametrize(
    "public",
    [(1).to_bytes(32, "little"), (P25519 - 1).to_bytes(32, "little"), (2).to_bytes(32, "little")],
    ids=["neutral", "order-2", "not-on-curve"],
)
def test_small_order_or_invalid_identity_keys_have_no_x25519_form(public: bytes) -> None:
    with pytest.raises(SessionSetupError):
        identity_dh_public(public)


def test_signatures_verify_and_bind_message_and_key() -> None:
    message = EPHEMERAL.encoded_public()
    signature = ALICE.sign(message)
    assert signature == ALICE.sign(message)  # deterministic (RFC 8032), so vectors reproduce
    verify_signature(ALICE.public, signature, message)
    with pytest.raises(BadSignature):
        verify_signature(BOB.public, signature, message)
    with pytest.raises(BadSignature):
        verify_signature(ALICE.public, signature, message[:-1] + b"\x00")
    with pytest.raises(BadSignature):
        verify_signature(ALICE.public, signature[:-1], message)
    with pytest.raises(BadSignature):
        verify_signature(ALICE.public, signature + b"\x00", message)
    for bit in (0, 255, 256, 511):
        bad = bytearray(signature)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BadSignature):
            verify_signature(ALICE.public, bytes(bad), message)


def test_a_signature_under_an_invalid_identity_key_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify_signature(b"\xff" * 32, ALICE.sign(b"m"), b"m")


def test_kem_encapsulation_round_trips_and_binds_the_ciphertext() -> None:
    ciphertext, shared = kem_encapsulate(KEM.public)
    assert len(ciphertext) == MLKEM768_CT_LEN
    assert len(shared) == 32
    assert KEM.decapsulate(ciphertext) == shared
    # Implicit rejection: a changed ciphertext gives an unrelated secret, no error.
    assert KEM.decapsulate(ciphertext[:-1] + bytes((ciphertext[-1] ^ 1,))) != shared
    assert KemKeyPair.generate(DetRng(b"other")).decapsulate(ciphertext) != shared


def test_kem_rejects_malformed_inputs() -> None:
    with pytest.raises(DecodeError):
        KEM.decapsulate(bytes(MLKEM768_CT_LEN - 1))
    with pytest.raises(SessionSetupError):
        kem_encapsulate(b"\xff" * len(KEM.public))  # coefficients out of range (FIPS 203)


def test_key_pairs_are_deterministic_in_their_seeds() -> None:
    assert IdentityKeyPair.from_seed(ALICE.seed) == ALICE
    assert KemKeyPair.from_seed(KEM.seed) == KEM
    assert X25519KeyPair.from_private(EPHEMERAL.private) == EPHEMERAL
    with pytest.raises(DecodeError):
        IdentityKeyPair.from_seed(bytes(31))
    with pytest.raises(DecodeError):
        KemKeyPair.from_seed(bytes(63))
    with pytest.raises(DecodeError):
        X25519KeyPair.from_private(bytes(33))
