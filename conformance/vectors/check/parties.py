"""Alice's and Bob's keys as the vectors list them (docs/PROTOCOL.md section 17.2), and
the stand-ins for what no injected randomness reaches (section 17.1: recorded ML-KEM
encapsulations)."""

from __future__ import annotations

from typing import Any

from conformance.vectors.check.support import At, b
from protocol.e2e import pqxdh
from protocol.e2e.keys import IdentityKeyPair, KemKeyPair, X25519KeyPair
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import PrivatePrekeys
from protocol.wire.prekeys import KemKind


def identity_from(at: At, field: str, data: Any) -> IdentityKeyPair:
    """The identity key object `data` (field `field`), its derived values checked."""
    key = IdentityKeyPair.from_seed(b(data["seed"]))
    at.eq(f"{field}.public", b(data["public"]), key.public)
    at.eq(f"{field}.x25519_private", b(data["x25519_private"]), key.dh_private())
    at.eq(f"{field}.x25519_public", b(data["x25519_public"]), key.dh_public())
    return key


class BobKeys:
    """Bob's private keys as a vector lists them, with the lookup Session.respond needs;
    the lookup checks the initial message names exactly these prekeys."""

    def __init__(self, at: At, field: str, data: Any) -> None:
        self.at = at
        self.field = field
        self.identity = identity_from(at, f"{field}.identity", data["identity"])
        self.spk_id = data["signed_prekey_id"]
        self.spk = X25519KeyPair.from_private(b(data["signed_prekey_private"]))
        self.kem_id = data["kem_prekey_id"]
        self.kem_kind = KemKind(data["kem_kind"])
        self.kem = KemKeyPair.from_seed(b(data["kem_prekey_seed"]))
        self.opk_id = data["one_time_prekey_id"]
        private = data["one_time_prekey_private"]
        self.opk = None if private is None else X25519KeyPair.from_private(b(private))

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        f = self.field
        self.at.eq(f"{f}.signed_prekey_id", self.spk_id, msg.signed_prekey_id)
        self.at.eq(f"{f}.kem_prekey_id", self.kem_id, msg.kem_prekey_id)
        self.at.true(f"{f}.kem_kind", msg.kem_kind is self.kem_kind,
                     f"the message names KEM kind {self.kem_kind.name}")
        self.at.eq(f"{f}.one_time_prekey_id", self.opk_id, msg.one_time_prekey_id)
        return PrivatePrekeys(self.spk, self.kem, self.opk)


def recorded_encapsulation(at: At, field: str, ct: bytes, ss: bytes,
                           public: bytes) -> pqxdh.Encapsulate:
    """Stands in for ML-KEM-768.Encaps, which takes no injected randomness."""

    def encapsulate(key: bytes) -> tuple[bytes, bytes]:
        at.eq(f"{field} (the KEM key encapsulated to)", public, key)
        return ct, ss

    return encapsulate


def never_encapsulate(at: At, field: str) -> pqxdh.Encapsulate:
    def encapsulate(_key: bytes) -> tuple[bytes, bytes]:
        raise at.mismatch(field, "abort before encapsulating", "encapsulated")

    return encapsulate


def never_rng(at: At, field: str) -> Any:
    def rng(_n: int) -> bytes:
        raise at.mismatch(field, "abort before drawing an ephemeral key", "drew randomness")

    return rng
