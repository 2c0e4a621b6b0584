"""What the vector generators share: hex helpers, the error-name probe, the fixed
identities and Bob's prekeys (docs/PROTOCOL.md section 17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import Json
from protocol.e2e import pqxdh
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import PrivatePrekeys
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind, PreKeyBundle

LABEL = "blindrelay/vectors/v1/"


# --------------------------------------------------------------------------- helpers


def h(data: bytes) -> str:
    return data.hex()


def oh(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def error_name(call: Callable[..., object], *args: Any) -> str:
    """The exception class name `call(*args)` raises (it must raise a ProtocolError)."""
    try:
        call(*args)
    except ProtocolError as exc:
        return type(exc).__name__
    raise AssertionError("expected a ProtocolError")


def fixed_encapsulation(ct: bytes, ss: bytes, expected_public: bytes) -> pqxdh.Encapsulate:
    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        assert public == expected_public, "encapsulating to an unexpected KEM key"
        return ct, ss

    return encapsulate


# ------------------------------------------------------------------ shared key material


def identity(name: str) -> IdentityKeyPair:
    return IdentityKeyPair.generate(Drbg(f"{LABEL}identity/{name}"))


def identity_json(key: IdentityKeyPair) -> Json:
    return {
        "seed": h(key.seed),
        "public": h(key.public),
        "x25519_private": h(key.dh_private()),
        "x25519_public": h(key.dh_public()),
    }


class BobKeys:
    """Bob's prekeys, drawn in this order from DRBG(LABEL + "prekeys/bob"):
    signed prekey (32 bytes), last-resort KEM seed (64), one-time KEM seed (64),
    one-time X25519 prekey (32)."""

    SPK_ID = 1
    KEM_LAST_RESORT_ID = 2
    KEM_ONE_TIME_ID = 101
    OPK_ID = 1001

    def __init__(self) -> None:
        self.identity = identity("bob")
        self.label = f"{LABEL}prekeys/bob"
        rng = Drbg(self.label)
        self.spk, self.spk_pub = make_signed_prekey(self.identity, self.SPK_ID, rng)
        self.kem_lr, self.kem_lr_pub = make_kem_prekey(self.identity, self.KEM_LAST_RESORT_ID, rng)
        self.kem_ot, self.kem_ot_pub = make_kem_prekey(self.identity, self.KEM_ONE_TIME_ID, rng)
        self.opk, self.opk_pub = make_one_time_prekey(self.OPK_ID, rng)

    def bundle(self, one_time_kem: bool, with_opk: bool) -> PreKeyBundle:
        return PreKeyBundle(
            self.identity.public,
            self.spk_pub,
            KemKind.ONE_TIME if one_time_kem else KemKind.LAST_RESORT,
            self.kem_ot_pub if one_time_kem else self.kem_lr_pub,
            self.opk_pub if with_opk else None,
        )

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        assert msg.signed_prekey_id == self.SPK_ID
        kem = {self.KEM_ONE_TIME_ID: self.kem_ot, self.KEM_LAST_RESORT_ID: self.kem_lr}
        opk = None
        if msg.one_time_prekey_id is not None:
            assert msg.one_time_prekey_id == self.OPK_ID
            opk = self.opk
        return PrivatePrekeys(self.spk, kem[msg.kem_prekey_id], opk)

    def private_json(self, bundle: PreKeyBundle) -> Json:
        kem = self.kem_ot if bundle.kem_kind is KemKind.ONE_TIME else self.kem_lr
        return {
            "identity": identity_json(self.identity),
            "signed_prekey_id": self.SPK_ID,
            "signed_prekey_private": h(self.spk.private),
            "kem_prekey_id": bundle.kem_prekey.key_id,
            "kem_kind": int(bundle.kem_kind),
            "kem_prekey_seed": h(kem.seed),
            "one_time_prekey_id": None if bundle.one_time_prekey is None else self.OPK_ID,
            "one_time_prekey_private": None if bundle.one_time_prekey is None
            else h(self.opk.private),
        }
