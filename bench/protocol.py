"""Protocol benchmark (issue 2, "Benchmark (not a timed test)").

    .venv/bin/python bench/protocol.py              # 15 s of timed repetitions, 17 s in all
    .venv/bin/python bench/protocol.py --quick      # 3 s timed, 4 s in all
    .venv/bin/python bench/protocol.py --seconds 30 --reps 21

Prints messages/s for one-direction encrypt+decrypt (through `Ratchet` and through
`Session`), for alternating directions (a DH ratchet step per message), PQXDH
handshakes/s, and the floor: the same `cryptography` calls the code makes for one
message on both sides and nothing else, with the ratio ours/floor (aim: <= 1.5).

Every figure is the best (minimum) of several timed repetitions after a warm-up,
with the repetitions of all figures interleaved so that they see the same machine
load: other processes share the CPUs, and noise only ever makes a run slower.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is itself called protocol.py: drop its directory from the import path so
# that `import protocol` finds the package, and find the package from a plain checkout.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cryptography
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.constant_time import bytes_eq
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.e2e import padding
from protocol.e2e.kdf import MESSAGE_KEYS_INFO, SHA256, ZERO_SALT
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import HEADER_LEN, PreKeyMessage
from protocol.e2e.ratchet import Ratchet
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.prekeys import KemKind, PreKeyBundle

BODY_LEN = 100
"""Plaintext size before padding; padding.pad makes it 159 bytes, PKCS#7 160."""

AIM = 1.5

Timed = Callable[[int], float]
"""Runs an operation n times and returns the elapsed seconds."""


# -- parties ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bob:
    identity: IdentityKeyPair
    bundle: PreKeyBundle
    keys: PrivatePrekeys

    def lookup(self, _msg: PreKeyMessage) -> PrivatePrekeys:
        return self.keys


def make_bob() -> Bob:
    """Bob with a signed prekey, a last-resort KEM prekey and a one-time X25519
    prekey (so PQXDH computes DH4). The bench reuses the one-time prekey, which a
    real client would delete: that changes no cost."""
    identity = IdentityKeyPair.generate()
    spk_pair, spk = make_signed_prekey(identity, 1)
    kem_pair, kem = make_kem_prekey(identity, 2)
    opk_pair, opk = make_one_time_prekey(3)
    bundle = PreKeyBundle(identity.public, spk, KemKind.LAST_RESORT, kem, opk)
    return Bob(identity, bundle, PrivatePrekeys(spk_pair, kem_pair, opk_pair))


def handshake(alice: IdentityKeyPair, bob: Bob, body: bytes) -> tuple[Session, Session]:
    """PQXDH and Alice's first message: returns (Alice's session, Bob's session)."""
    sender = Session.initiate(alice, bob.bundle)
    kind, message = sender.encrypt(body)
    assert kind is MessageKind.PREKEY
    receiver, plaintext, _ = Session.respond(bob.identity, message, bob.lookup)
    assert plaintext == body
    return sender, receiver


def session_pair(alice: IdentityKeyPair, bob: Bob, body: bytes) -> tuple[Session, Session]:
    """A set-up pair past the initial-message phase (Bob has replied once), so that
    Alice's messages are plain ratchet messages."""
    sender, receiver = handshake(alice, bob, body)
    kind, reply = receiver.encrypt(body)
    assert sender.decrypt(kind, reply) == body
    assert sender.pending_prefix is None
    return sender, receiver


# -- what is timed ----------------------------------------------------------------


def bench_ratchet_one_way(alice: Ratchet, bob: Ratchet, padded: bytes) -> Timed:
    encrypt, decrypt = alice.encrypt, bob.decrypt

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            decrypt(encrypt(padded))
        return time.perf_counter() - t0

    return run


def bench_session_one_way(alice: Session, bob: Session, body: bytes) -> Timed:
    encrypt, decrypt = alice.encrypt, bob.decrypt

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            kind, message = encrypt(body)
            decrypt(kind, message)
        return time.perf_counter() - t0

    return run


def bench_alternating(alice: Ratchet, bob: Ratchet, padded: bytes) -> Timed:
    """Counts two messages per iteration: A->B, then B->A; each decryption is a DH
    ratchet step (two KDF_RK, one key generation, two X25519) besides the message."""
    a_enc, a_dec, b_enc, b_dec = alice.encrypt, alice.decrypt, bob.encrypt, bob.decrypt

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            b_dec(a_enc(padded))
            a_dec(b_enc(padded))
        return time.perf_counter() - t0

    return run


def bench_handshake(alice: IdentityKeyPair, bob: Bob, body: bytes) -> Timed:
    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            handshake(alice, bob, body)
        return time.perf_counter() - t0

    return run


def floor_message(
    ck_a: bytes, ck_b: bytes, block_padded: bytes, ad: bytes, header: bytes
) -> tuple[bytes, bytes, bytes, bytes]:
    """One message with only the primitive calls the code makes, in the order it
    makes them. Returns (Alice's next chain key, Bob's next chain key, the sent body
    (ciphertext || MAC), the plaintext Bob recovered with PKCS#7 still on). Only used
    to check the floor against the implementation; the timed loop is `bench_floor`."""
    ad_header = ad + header
    # Alice: KDF_CK, ENCRYPT's HKDF, AES-256-CBC, HMAC.
    h = hmac.HMAC(ck_a, SHA256)
    c = h.copy()
    h.update(b"\x01")
    c.update(b"\x02")
    ck_a, mk = c.finalize(), h.finalize()
    okm = HKDF(SHA256, 80, ZERO_SALT, MESSAGE_KEYS_INFO).derive(mk)
    enc = Cipher(algorithms.AES(okm[:32]), modes.CBC(okm[64:])).encryptor()
    ct = enc.update(block_padded) + enc.finalize()
    h = hmac.HMAC(okm[32:64], SHA256)
    h.update(ad_header)
    h.update(ct)
    tag = h.finalize()
    # Bob: KDF_CK, HKDF, HMAC, constant-time compare, AES-256-CBC decryption.
    h = hmac.HMAC(ck_b, SHA256)
    c = h.copy()
    h.update(b"\x01")
    c.update(b"\x02")
    ck_b, mk = c.finalize(), h.finalize()
    okm = HKDF(SHA256, 80, ZERO_SALT, MESSAGE_KEYS_INFO).derive(mk)
    h = hmac.HMAC(okm[32:64], SHA256)
    h.update(ad_header)
    h.update(ct)
    if not bytes_eq(h.finalize(), tag):
        raise AssertionError("floor MAC mismatch")
    dec = Cipher(algorithms.AES(okm[:32]), modes.CBC(okm[64:])).decryptor()
    pt = dec.update(ct) + dec.finalize()
    return ck_a, ck_b, ct + tag, pt


def bench_floor(chain_key: bytes, block_padded: bytes, ad: bytes, header: bytes) -> Timed:
    """The floor: `floor_message` inlined, names bound to locals, inputs prepared
    (PKCS#7 already applied, AD || header already joined). Both chains advance, as
    in a real exchange."""
    ad_header = ad + header
    state = [chain_key, chain_key]
    hmac_, sha256, hkdf, cipher, aes, cbc, eq = (
        hmac.HMAC, SHA256, HKDF, Cipher, algorithms.AES, modes.CBC, bytes_eq
    )
    zero, info, one, two = ZERO_SALT, MESSAGE_KEYS_INFO, b"\x01", b"\x02"

    def run(n: int) -> float:
        ck_a, ck_b = state
        t0 = time.perf_counter()
        for _ in range(n):
            h = hmac_(ck_a, sha256)
            c = h.copy()
            h.update(one)
            c.update(two)
            ck_a, mk = c.finalize(), h.finalize()
            okm = hkdf(sha256, 80, zero, info).derive(mk)
            enc = cipher(aes(okm[:32]), cbc(okm[64:])).encryptor()
            ct = enc.update(block_padded) + enc.finalize()
            h = hmac_(okm[32:64], sha256)
            h.update(ad_header)
            h.update(ct)
            tag = h.finalize()

            h = hmac_(ck_b, sha256)
            c = h.copy()
            h.update(one)
            c.update(two)
            ck_b, mk = c.finalize(), h.finalize()
            okm = hkdf(sha256, 80, zero, info).derive(mk)
            h = hmac_(okm[32:64], sha256)
            h.update(ad_header)
            h.update(ct)
            if not eq(h.finalize(), tag):
                raise AssertionError("floor MAC mismatch")
            dec = cipher(aes(okm[:32]), cbc(okm[64:])).decryptor()
            dec.update(ct) + dec.finalize()
        elapsed = time.perf_counter() - t0
        state[:] = [ck_a, ck_b]
        return elapsed

    return run


def check_floor(alice: Ratchet, bob: Ratchet, padded: bytes) -> bytes:
    """The floor's calls produce byte-for-byte the message the implementation sends,
    so the floor measures the same work. Returns that message's header."""
    assert alice.cks is not None and bob.ckr is not None and alice.cks == bob.ckr
    chain_key = alice.cks
    message = alice.encrypt(padded)
    assert bob.decrypt(message) == padded
    pad = 16 - len(padded) % 16
    _, _, body, pt = floor_message(chain_key, chain_key, padded + bytes((pad,)) * pad,
                                   alice.ad, message[:HEADER_LEN])
    assert body == message[HEADER_LEN:], "floor does not reproduce the implementation"
    assert pt[:-pad] == padded
    return message[:HEADER_LEN]


# -- the harness ------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    label: str
    run: Timed
    ops_per_call: int  # messages (or handshakes) per loop iteration
    n: int = 0
    samples: list[float] = field(default_factory=list)

    def best(self) -> float:
        """Seconds per operation, best repetition."""
        return min(self.samples) / (self.n * self.ops_per_call)


def calibrate(fig: Figure, sample_seconds: float) -> None:
    """Warm up and choose n so that one repetition takes about sample_seconds."""
    n = 1
    while True:
        elapsed = fig.run(n)
        if elapsed >= min(0.02, sample_seconds / 2):
            break
        n *= 2
    fig.n = max(1, round(n * sample_seconds / elapsed))
    fig.run(fig.n)  # a full-size warm-up


def measure(figures: list[Figure], reps: int, sample_seconds: float) -> None:
    gc.collect()
    gc.disable()  # as timeit does: no collector pauses inside the timed loops
    try:
        for fig in figures:
            calibrate(fig, sample_seconds)
        for _ in range(reps):
            for fig in figures:
                fig.samples.append(fig.run(fig.n))
    finally:
        gc.enable()


def line(label: str, per_op: float, unit: str) -> str:
    return f"{label:<56} {1 / per_op:>9,.0f} {unit + '/s':<12} {per_op * 1e6:>8.1f} us/{unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: about 3 s and fewer repetitions")
    parser.add_argument("--seconds", type=float, default=None,
                        help="total seconds of timed repetitions (default 15, quick 3)")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed repetitions per figure (default 11, quick 5)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 15.0)
    reps = args.reps if args.reps is not None else (5 if args.quick else 11)
    if seconds <= 0 or reps < 1:
        parser.error("--seconds must be positive and --reps at least 1")

    body = os.urandom(BODY_LEN)
    padded = padding.pad(body)  # what Session.encrypt hands to the ratchet
    alice_id = IdentityKeyPair.generate()
    bob = make_bob()

    # Separate pairs per figure, each past its setup, so that every one-direction
    # message stays in one chain and every alternating message is a DH step.
    r_alice, r_bob = (s.ratchet for s in handshake(alice_id, bob, body))
    s_alice, s_bob = session_pair(alice_id, bob, body)
    alt_alice, alt_bob = (s.ratchet for s in session_pair(alice_id, bob, body))
    header = check_floor(r_alice, r_bob, padded)  # the floor MACs a real header
    assert r_alice.cks is not None
    floor_ck = r_alice.cks
    pkcs7 = 16 - len(padded) % 16

    one_way = Figure("one-direction via Ratchet (encrypt + decrypt)",
                     bench_ratchet_one_way(r_alice, r_bob, padded), 1)
    session = Figure("one-direction via Session (encrypt + decrypt)",
                     bench_session_one_way(s_alice, s_bob, body), 1)
    floor = Figure("floor: primitive calls only, one message, both sides",
                   bench_floor(floor_ck, padded + bytes((pkcs7,)) * pkcs7, r_alice.ad,
                               header), 1)
    alternating = Figure("alternating direction (DH ratchet step every message)",
                         bench_alternating(alt_alice, alt_bob, padded), 2)
    handshakes = Figure("PQXDH handshakes (initiate + first message + respond)",
                        bench_handshake(alice_id, bob, body), 1)
    figures = [one_way, session, floor, alternating, handshakes]

    print("blindrelay protocol benchmark")
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"plaintext {BODY_LEN} bytes, padded to {len(padded)}, "
          f"{len(padded) + pkcs7}-byte AES-CBC ciphertext")
    print(f"method: time.perf_counter; warm-up, then the best (min) of {reps} repetitions "
          f"of ~{seconds / reps / len(figures) * 1000:.0f} ms per figure,")
    print("        interleaved across figures; min-of-N because other processes share the "
          "machine")
    print("        and noise only ever slows a run; gc disabled while timing (as timeit does)")
    measure(figures, reps, seconds / reps / len(figures))

    # The ratchets must still agree after everything that was timed.
    assert r_bob.decrypt(r_alice.encrypt(padded)) == padded
    kind, message = s_alice.encrypt(body)
    assert s_bob.decrypt(kind, message) == body
    assert alt_bob.decrypt(alt_alice.encrypt(padded)) == padded

    print()
    for fig in (one_way, session, alternating):
        print(line(fig.label, fig.best(), "msg"))
    print(line(handshakes.label, handshakes.best(), "handshake"))
    print(line(floor.label, floor.best(), "msg"))
    print()
    for name, fig in (("Ratchet", one_way), ("Session", session)):
        ratio = fig.best() / floor.best()
        verdict = "meets" if ratio <= AIM else "misses"
        overhead = (fig.best() - floor.best()) * 1e6
        print(f"{'ratio ours/floor, one-direction via ' + name:<56} {ratio:>9.2f}   "
              f"({verdict} the aim of <= {AIM}; overhead {overhead:.1f} us/msg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
