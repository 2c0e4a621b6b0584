"""PQXDH (Signal's PQXDH specification, sections 3.3 and 3.4) from both sides."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.e2e import pqxdh
from protocol.e2e.errors import SessionSetupError
from protocol.e2e.kdf import PQXDH_INFO
from protocol.e2e.keys import (
    IdentityKeyPair,
    kem_encapsulate,
    make_kem_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import Session
from protocol.wire.errors import BadSignature
from protocol.wire.prekeys import KemPreKey, PreKeyBundle, SignedPreKey
from tests.protocol.support import LOW_ORDER_X25519, DetRng, Device

R = TypeVar("R", SignedPreKey, KemPreKey)

ALICE = IdentityKeyPair.generate(DetRng(b"pqxdh-alice"))
BOB = Device.create("pqxdh-bob", one_time_kem=2, one_time=2)
MALLORY = IdentityKeyPair.generate(DetRng(b"pqxdh-mallory"))


def _as_message(init: pqxdh.Initiation) -> PreKeyMessage:
    """The initial message, with a placeholder ratchet message (PQXDH alone ignores it)."""
    return PreKeyMessage.decode(init.prefix + b"\x01\x05" + bytes(40) + bytes(48))


def _respond(msg: PreKeyMessage, device: Device = BOB) -> pqxdh.Agreement:
    keys = device.lookup(msg)
    return pqxdh.respond(device.identity, msg, keys.signed_prekey, keys.kem_prekey,
                         keys.one_time_prekey)


def _x25519(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(public)
    )


@pytest.mark.parametrize("opk", [True, False], ids=["with-opk", "without-opk"])
@pytest.mark.parametrize("one_time_kem", [True, False], ids=["one-time-kem", "last-resort-kem"])
def test_both_sides_derive_the_same_secret(opk: bool, one_time_kem: bool) -> None:
    bundle = BOB.bundle(opk=opk, one_time_kem=one_time_kem)
    init = pqxdh.initiate(ALICE, bundle)
    msg = _as_message(init)
    bob = _respond(msg)
    assert bob.sk == init.agreement.sk
    assert len(bob.sk) == 32
    assert bob.ad == init.agreement.ad == b"\x01" + ALICE.public + b"\x01" + BOB.public
    assert bob.dh == init.agreement.dh
    assert len(bob.dh) == (4 if opk else 3)
    assert bob.kem_shared_secret == init.agreement.kem_shared_secret
    # The initial message names exactly the prekeys that were used.
    assert msg.identity == ALICE.public
    assert msg.signed_prekey_id == bundle.signed_prekey.key_id
    assert msg.kem_kind is bundle.kem_kind
    assert msg.kem_prekey_id == bundle.kem_prekey.key_id
    expected_opk = bundle.one_time_prekey.key_id if bundle.one_time_prekey else None
    assert msg.one_time_prekey_id == expected_opk
    assert init.signed_prekey == bundle.signed_prekey.public


@pytest.mark.parametrize("opk", [True, False], ids=["with-opk", "without-opk"])
def test_secret_is_the_specified_hkdf_of_the_dh_outputs_and_kem_secret(opk: bool) -> None:
    """SK = HKDF(salt = 32 zero bytes, IKM = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4] || SS),
    recomputed here from the raw primitives and Bob's private keys."""
    seen: list[tuple[bytes, bytes]] = []

    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        seen.append(kem_encapsulate(public))
        return seen[-1]

    bundle = BOB.bundle(opk=opk)
    init = pqxdh.initiate(ALICE, bundle, DetRng(b"ek"), encapsulate)
    msg = _as_message(init)
    spk = BOB.signed[1][0]
    dh1 = _x25519(spk.private, ALICE.dh_public())
    dh2 = _x25519(BOB.identity.dh_private(), msg.ephemeral)
    dh3 = _x25519(spk.private, msg.ephemeral)
    km = dh1 + dh2 + dh3
    if opk:
        km += _x25519(BOB.one_time[300][0].private, msg.ephemeral)
    ciphertext, ss = seen[0]
    assert msg.kem_ciphertext == ciphertext
    sk = HKDF(hashes.SHA256(), 32, bytes(32), PQXDH_INFO).derive(b"\xff" * 32 + km + ss)
    assert init.agreement.sk == sk
    assert b"".join(init.agreement.dh) == km


def test_every_initiation_is_fresh() -> None:
    bundle = BOB.bundle()
    first, second = pqxdh.initiate(ALICE, bundle), pqxdh.initiate(ALICE, bundle)
    assert first.agreement.sk != second.agreement.sk
    assert _as_message(first).ephemeral != _as_message(second).ephemeral


def test_one_time_and_last_resort_kem_keys_give_different_secrets() -> None:
    one_time = pqxdh.initiate(ALICE, BOB.bundle(one_time_kem=True), DetRng(b"same"))
    last_resort = pqxdh.initiate(ALICE, BOB.bundle(one_time_kem=False), DetRng(b"same"))
    assert one_time.agreement.dh == last_resort.agreement.dh  # same EK, same DHs
    assert one_time.agreement.sk != last_resort.agreement.sk  # the KEM secret differs
    # Bob decapsulating with the wrong KEM key gets a different secret (implicit rejection).
    msg = _as_message(one_time)
    keys = BOB.lookup(msg)
    wrong = pqxdh.respond(BOB.identity, msg, keys.signed_prekey,
                          BOB.kem_last_resort[100][0], keys.one_time_prekey)
    assert wrong.sk != one_time.agreement.sk


def test_responder_must_use_the_one_time_prekey_exactly_when_the_message_names_one() -> None:
    with_opk = _as_message(pqxdh.initiate(ALICE, BOB.bundle(opk=True)))
    without = _as_message(pqxdh.initiate(ALICE, BOB.bundle(opk=False)))
    keys = BOB.lookup(with_opk)
    with pytest.raises(SessionSetupError):
        pqxdh.respond(BOB.identity, with_opk, keys.signed_prekey, keys.kem_prekey, None)
    with pytest.raises(SessionSetupError):
        pqxdh.respond(BOB.identity, without, keys.signed_prekey, keys.kem_prekey,
                      keys.one_time_prekey)


def test_a_different_one_time_prekey_gives_a_different_secret() -> None:
    msg = _as_message(pqxdh.initiate(ALICE, BOB.bundle(opk=True)))
    keys = BOB.lookup(msg)
    right = pqxdh.respond(BOB.identity, msg, keys.signed_prekey, keys.kem_prekey,
                          keys.one_time_prekey)
    wrong = pqxdh.respond(BOB.identity, msg, keys.signed_prekey, keys.kem_prekey,
                          BOB.one_time[301][0])
    assert right.sk != wrong.sk


# -- a bad signature on any prekey aborts before anything in the bundle is used


def _bad_bundles() -> dict[str, PreKeyBundle]:
    good_one_time = BOB.bundle(one_time_kem=True)
    good_last_resort = BOB.bundle(one_time_kem=False)

    def flip_sig(record: R) -> R:
        sig = bytearray(record.signature)
        sig[5] ^= 0x10
        return dataclasses.replace(record, signature=bytes(sig))

    _, mallory_spk = make_signed_prekey(MALLORY, 1, DetRng(b"m1"))
    _, mallory_kem = make_kem_prekey(MALLORY, 200, DetRng(b"m2"))
    _, other_spk = make_signed_prekey(BOB.identity, 1, DetRng(b"m3"))
    return {
        "signed-prekey-signature": dataclasses.replace(
            good_one_time, signed_prekey=flip_sig(good_one_time.signed_prekey)),
        "one-time-kem-signature": dataclasses.replace(
            good_one_time, kem_prekey=flip_sig(good_one_time.kem_prekey)),
        "last-resort-kem-signature": dataclasses.replace(
            good_last_resort, kem_prekey=flip_sig(good_last_resort.kem_prekey)),
        "signed-prekey-swapped": dataclasses.replace(
            good_one_time, signed_prekey=dataclasses.replace(
                other_spk, signature=good_one_time.signed_prekey.signature)),
        "signed-prekey-by-mallory": dataclasses.replace(good_one_time, signed_prekey=mallory_spk),
        "one-time-kem-by-mallory": dataclasses.replace(good_one_time, kem_prekey=mallory_kem),
        "last-resort-kem-by-mallory": dataclasses.replace(
            good_last_resort, kem_prekey=mallory_kem),
        "identity-replaced": dataclasses.replace(good_one_time, identity=MALLORY.public),
    }


@pytest.mark.parametrize("case", sorted(_bad_bundles()))
def test_a_bad_signature_on_any_prekey_aborts_setup_before_anything_is_used(case: str) -> None:
    bundle = _bad_bundles()[case]
    used: list[str] = []

    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        used.append("encapsulate")
        return kem_encapsulate(public)

    def rng(n: int) -> bytes:
        used.append("rng")
        return bytes(n)

    with pytest.raises(BadSignature):
        pqxdh.initiate(ALICE, bundle, rng, encapsulate)
    with pytest.raises(BadSignature):
        Session.initiate(ALICE, bundle, rng, encapsulate)
    with pytest.raises(BadSignature):  # also after a trip through the wire format
        pqxdh.initiate(ALICE, PreKeyBundle.decode(bundle.encode()), rng, encapsulate)
    assert used == []


def test_the_good_bundles_the_bad_ones_were_made_from_are_accepted() -> None:
    for one_time_kem in (True, False):
        pqxdh.initiate(ALICE, BOB.bundle(one_time_kem=one_time_kem))


# -- low-order points


@pytest.mark.parametrize("point", LOW_ORDER_X25519[:5], ids=lambda p: p.hex()[:8])
def test_a_low_order_one_time_prekey_is_rejected(point: bytes) -> None:
    bundle = BOB.bundle(opk=True)
    assert bundle.one_time_prekey is not None
    bad = dataclasses.replace(bundle, one_time_prekey=dataclasses.replace(
        bundle.one_time_prekey, public=point))
    bad.verify()  # one-time X25519 prekeys are unsigned: only the DH check catches it
    with pytest.raises(SessionSetupError):
        pqxdh.initiate(ALICE, bad)
    with pytest.raises(SessionSetupError):
        pqxdh.initiate(ALICE, PreKeyBundle.decode(bad.encode()))


@pytest.mark.parametrize("point", LOW_ORDER_X25519[:5], ids=lambda p: p.hex()[:8])
def test_a_low_order_signed_prekey_is_rejected_even_when_signed(point: bytes) -> None:
    bundle = BOB.bundle(opk=False)
    spk = dataclasses.replace(bundle.signed_prekey, public=point,
                              signature=BOB.identity.sign(b"\x05" + point))
    bad = dataclasses.replace(bundle, signed_prekey=spk)
    bad.verify()
    with pytest.raises(SessionSetupError):
        pqxdh.initiate(ALICE, bad)


@pytest.mark.parametrize("point", LOW_ORDER_X25519[:5], ids=lambda p: p.hex()[:8])
def test_a_low_order_ephemeral_key_is_rejected_by_the_responder(point: bytes) -> None:
    msg = dataclasses.replace(_as_message(pqxdh.initiate(ALICE, BOB.bundle())), ephemeral=point)
    with pytest.raises(SessionSetupError):
        _respond(msg)
    with pytest.raises(SessionSetupError):
        _respond(PreKeyMessage.decode(msg.encode()))


def test_a_small_order_identity_key_is_rejected() -> None:
    neutral = (1).to_bytes(32, "little")
    msg = dataclasses.replace(_as_message(pqxdh.initiate(ALICE, BOB.bundle())), identity=neutral)
    with pytest.raises(SessionSetupError):
        _respond(msg)
    # In a bundle, the signatures cannot verify under it, so setup stops even earlier.
    with pytest.raises(BadSignature):
        pqxdh.initiate(ALICE, dataclasses.replace(BOB.bundle(), identity=neutral))


def test_an_invalid_kem_key_is_rejected_before_any_dh() -> None:
    bundle = BOB.bundle()
    kem = dataclasses.replace(bundle.kem_prekey, public=b"\xff" * 1184)
    kem = dataclasses.replace(kem, signature=BOB.identity.sign(b"\x0a" + kem.public))
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return bytes(n)

    with pytest.raises(SessionSetupError):
        pqxdh.initiate(ALICE, dataclasses.replace(bundle, kem_prekey=kem), rng)
    assert calls == []

