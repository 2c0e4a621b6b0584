"""Prekey records and bundles: layouts, round trips, and signatures over Encode(PK)."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.e2e.keys import (
    TYPE_MLKEM768,
    TYPE_X25519,
    IdentityKeyPair,
    encode_key,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.wire.errors import BadSignature
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from tests.protocol.support import DetRng, Device

RNG = DetRng(b"test_prekeys")
BOB = IdentityKeyPair.generate(RNG)
MALLORY = IdentityKeyPair.generate(RNG)
SPK_PAIR, SPK = make_signed_prekey(BOB, 7, RNG)
KEM_PAIR, KEM = make_kem_prekey(BOB, 0xFFFFFFFF, RNG)
OPK_PAIR, OPK = make_one_time_prekey(0, RNG)


def test_records_have_the_documented_layout() -> None:
    assert SPK.encode() == (7).to_bytes(4, "big") + b"\x05" + SPK_PAIR.public + SPK.signature
    assert KEM.encode() == b"\xff" * 4 + b"\x0a" + KEM_PAIR.public + KEM.signature
    assert OPK.encode() == bytes(4) + b"\x05" + OPK_PAIR.public
    assert (len(SPK.encode()), len(KEM.encode()), len(OPK.encode())) == (101, 1253, 37)
    assert (SignedPreKey.SIZE, KemPreKey.SIZE, OneTimePreKey.SIZE) == (101, 1253, 37)


def test_records_round_trip() -> None:
    assert SignedPreKey.decode(SPK.encode()) == SPK
    assert KemPreKey.decode(KEM.encode()) == KEM
    assert OneTimePreKey.decode(OPK.encode()) == OPK


def test_signatures_cover_exactly_the_encoded_key() -> None:
    SPK.verify(BOB.public)
    KEM.verify(BOB.public)
    assert BOB.sign(encode_key(TYPE_X25519, SPK.public)) == SPK.signature
    assert BOB.sign(encode_key(TYPE_MLKEM768, KEM.public)) == KEM.signature
    # A signature over the raw key (without its type byte) is not accepted.
    with pytest.raises(BadSignature):
        dataclasses.replace(SPK, signature=BOB.sign(SPK.public)).verify(BOB.public)
    with pytest.raises(BadSignature):
        dataclasses.replace(KEM, signature=BOB.sign(KEM.public)).verify(BOB.public)
    # The key id is not signed: re-numbering a key keeps its signature valid.
    dataclasses.replace(SPK, key_id=8).verify(BOB.public)


def test_signatures_belong_to_their_owner_and_key() -> None:
    with pytest.raises(BadSignature):
        SPK.verify(MALLORY.public)
    with pytest.raises(BadSignature):
        KEM.verify(MALLORY.public)
    _, other = make_signed_prekey(BOB, 7, RNG)
    with pytest.raises(BadSignature):
        dataclasses.replace(other, signature=SPK.signature).verify(BOB.public)


@pytest.mark.parametrize("opk", [True, False])
@pytest.mark.parametrize("one_time_kem", [True, False])
def test_bundles_round_trip_and_verify(opk: bool, one_time_kem: bool) -> None:
    device = Device.create("bundle-owner")
    bundle = device.bundle(opk=opk, one_time_kem=one_time_kem)
    encoded = bundle.encode()
    assert PreKeyBundle.decode(encoded) == bundle
    assert bundle.kem_kind is (KemKind.ONE_TIME if one_time_kem else KemKind.LAST_RESORT)
    assert (bundle.one_time_prekey is not None) == opk
    assert encoded[0] == 1
    assert len(encoded) == 1 + 33 + 101 + 1 + 1253 + 1 + (37 if opk else 0)
    bundle.verify()


def _flipped(signature: bytes, bit: int) -> bytes:
    out = bytearray(signature)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("bit", [0, 100, 511])
def test_a_bundle_with_any_bad_signature_does_not_verify(bit: int) -> None:
    bundle = PreKeyBundle(BOB.public, SPK, KemKind.ONE_TIME, KEM, OPK)
    bundle.verify()
    bad_spk = dataclasses.replace(SPK, signature=_flipped(SPK.signature, bit))
    bad_kem = dataclasses.replace(KEM, signature=_flipped(KEM.signature, bit))
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, signed_prekey=bad_spk).verify()
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, kem_prekey=bad_kem).verify()
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, kem_kind=KemKind.LAST_RESORT, kem_prekey=bad_kem).verify()
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, identity=MALLORY.public).verify()
