"""Shared helpers for the protocol tests: a deterministic random source, a device
with a prekey store (Bob's side of PQXDH), ready-made ratchet pairs, and bit flips."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from conformance.drbg import Drbg
from protocol.e2e.errors import SessionSetupError
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.pqxdh import associated_data
from protocol.e2e.ratchet import Ratchet
from protocol.e2e.session import Consumed, PrivatePrekeys
from protocol.wire.certificates import issue, signer_from_seed
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

# Bytes 0..31 are little-endian u-coordinates of X25519 points of order 1, 2, 4 or 8
# (and their non-canonical forms u + p): every DH with them gives all zeros.
P25519 = 2**255 - 19
LOW_ORDER_X25519 = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P25519 - 1).to_bytes(32, "little"),
    P25519.to_bytes(32, "little"),
    (P25519 + 1).to_bytes(32, "little"),
]


CERT_SEED = bytes(range(32))
"""A relay certificate key for the protocol tests (section 20)."""
CERT_PUBLIC = signer_from_seed(CERT_SEED)[1]
CERT_EXPIRES = 1_900_000_000
CERT_NOW = CERT_EXPIRES - 3600


def certificate(name: str, identity: bytes | None = None, expires: int = CERT_EXPIRES,
                seed: bytes = CERT_SEED) -> bytes:
    """A sender certificate for `name` (its identity key: one made from the name when
    not given), signed with the test relay's key."""
    if identity is None:
        identity = IdentityKeyPair.generate(DetRng(b"cert-" + name.encode())).public
    return issue(seed, name, identity, expires)


# Where Encode(EK_A) sits in an initial message: after version (1) and Encode(IK_A) (33).
EPHEMERAL = slice(34, 67)


class DetRng(Drbg):
    """The deterministic random source of the vectors (conformance.drbg), seeded per
    test, so that a failing hypothesis example replays identically."""

    def __init__(self, seed: int | bytes = 0) -> None:
        super().__init__(seed if isinstance(seed, bytes)
                         else seed.to_bytes(16, "big", signed=True))


def flip(data: bytes, bit: int) -> bytes:
    """`data` with bit number `bit` inverted (bit 0 is the low bit of byte 0)."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def every_bit(data: bytes) -> Iterator[int]:
    return iter(range(len(data) * 8))


@dataclass
class Device:
    """A user's identity and prekey store: what Bob's client keeps, and the
    `lookup` that Session.respond calls with an initial message."""

    identity: IdentityKeyPair
    signed: dict[int, tuple[X25519KeyPair, SignedPreKey]] = field(default_factory=dict)
    kem_one_time: dict[int, tuple[KemKeyPair, KemPreKey]] = field(default_factory=dict)
    kem_last_resort: dict[int, tuple[KemKeyPair, KemPreKey]] = field(default_factory=dict)
    one_time: dict[int, tuple[X25519KeyPair, OneTimePreKey]] = field(default_factory=dict)
    lookups: int = 0

    @classmethod
    def create(cls, seed: str = "bob", *, one_time_kem: int = 1, one_time: int = 1) -> Device:
        rng = DetRng(seed.encode())
        identity = IdentityKeyPair.generate(rng)
        device = cls(identity)
        device.signed[1] = make_signed_prekey(identity, 1, rng)
        device.kem_last_resort[100] = make_kem_prekey(identity, 100, rng)
        for i in range(one_time_kem):
            device.kem_one_time[200 + i] = make_kem_prekey(identity, 200 + i, rng)
        for i in range(one_time):
            device.one_time[300 + i] = make_one_time_prekey(300 + i, rng)
        return device

    @property
    def public(self) -> bytes:
        return self.identity.public

    def bundle(self, *, opk: bool = True, one_time_kem: bool = True) -> PreKeyBundle:
        """What the server would hand out: a one-time KEM prekey while any is left
        (else the last-resort one), and a one-time X25519 prekey if asked."""
        spk = self.signed[1][1]
        if one_time_kem:
            kind, kem = KemKind.ONE_TIME, next(iter(self.kem_one_time.values()))[1]
        else:
            kind, kem = KemKind.LAST_RESORT, self.kem_last_resort[100][1]
        one = next(iter(self.one_time.values()))[1] if opk else None
        return PreKeyBundle(self.public, spk, kind, kem, one)

    def snapshot(self) -> tuple[tuple[int, ...], ...]:
        return (tuple(self.signed), tuple(self.kem_one_time), tuple(self.kem_last_resort),
                tuple(self.one_time))

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        self.lookups += 1
        try:
            spk = self.signed[msg.signed_prekey_id][0]
            kems = (self.kem_one_time if msg.kem_kind is KemKind.ONE_TIME
                    else self.kem_last_resort)
            kem = kems[msg.kem_prekey_id][0]
            opk = None
            if msg.one_time_prekey_id is not None:
                opk = self.one_time[msg.one_time_prekey_id][0]
        except KeyError:
            raise SessionSetupError("unknown prekey id") from None
        return PrivatePrekeys(spk, kem, opk)

    def consume(self, consumed: Consumed) -> None:
        """Delete the one-time prekeys an accepted initial message used."""
        if consumed.one_time_prekey_id is not None:
            del self.one_time[consumed.one_time_prekey_id]
        if consumed.kem_prekey_id is not None:
            del self.kem_one_time[consumed.kem_prekey_id]


def ratchet_pair(rng: DetRng | None = None) -> tuple[Ratchet, Ratchet]:
    """Alice's and Bob's ratchets as PQXDH would leave them (random SK, real AD,
    Bob's signed prekey as his first ratchet key pair)."""
    rng = rng or DetRng(b"ratchet-pair")
    sk = rng(32)
    alice_id, bob_id = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    ad = associated_data(alice_id.public, bob_id.public)
    spk = X25519KeyPair.generate(rng)
    alice = Ratchet.initiator(sk, ad, spk.public, rng)
    bob = Ratchet.responder(sk, ad, spk, rng)
    return alice, bob


def talking_pair(rng: DetRng | None = None) -> tuple[Ratchet, Ratchet]:
    """A ratchet pair that has exchanged one message each way, so both can send."""
    alice, bob = ratchet_pair(rng)
    assert bob.decrypt(alice.encrypt(b"hello bob")) == b"hello bob"
    assert alice.decrypt(bob.encrypt(b"hello alice")) == b"hello alice"
    return alice, bob
