"""Protocol benchmark (issue 2, "Benchmark (not a timed test)"; issue 14 item 3).

    .venv/bin/python bench/protocol.py              # 21 paired rounds, about 25 s
    .venv/bin/python bench/protocol.py --quick      # 5 rounds, about 3 s
    .venv/bin/python bench/protocol.py --rounds 41 --sample-ms 50 --cpu 0

Prints per-message cost of one-direction encrypt+decrypt (through `Ratchet` and
through `Session`), of alternating directions (a DH ratchet step per message), of
PQXDH handshakes, and of the floor: the same message produced and consumed the way a
user of `cryptography` would write it from its documentation (see `floor_send` and
`floor_receive`), with the ratio ours/floor (aim: <= 1.5).

Method (nothing is best-of): the process is pinned to one CPU (os.sched_setaffinity;
`--cpu`, default the highest CPU it may run on), every figure is calibrated to about
`--sample-ms` per sample and warmed up, then `--rounds` rounds are run. In each round
every figure is timed once, back to back, in an order that reverses from one round to
the next (ratchet, floor, session, lean floor, alternating, handshake; then the other
way), so the floor runs right next to the two figures compared with it. Each round
gives a ratio ours/floor from its own two samples; the benchmark prints the median ratio over the
rounds with its minimum and maximum, and for every figure the median time per
operation with its minimum and maximum. The garbage collector is off while timing
(as timeit does), for ours and the floor alike.
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
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cryptography
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.constant_time import bytes_eq
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.e2e import padding
from protocol.e2e.kdf import MESSAGE_KEYS_INFO, ZERO_SALT
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import HEADER_LEN, MESSAGE_VERSION, PreKeyMessage
from protocol.e2e.ratchet import Ratchet
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.prekeys import KemKind, PreKeyBundle
from protocol.wire.publickeys import TYPE_X25519

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


# -- the floor --------------------------------------------------------------------
#
# What a user of `cryptography` writes for one message of this format, calls as its
# documentation shows them (hashes.SHA256() made per use, keyword arguments, the
# `padding.PKCS7` padder/unpadder, `HMAC.verify` for the tag), with no shortcut (no
# HMAC.copy, no cached objects, no precomputed padding). Per message:
#
#   sender:   KDF_CK as two HMAC-SHA256(ck, 0x01 / 0x02); HKDF-SHA256(salt=32 zero
#             bytes, info=MESSAGE_KEYS_INFO) -> 80 bytes = AES key, MAC key, IV;
#             PKCS#7 padding; AES-256-CBC encryption; the 41-byte header packed with
#             struct (version, key type, ratchet key, pn, n); HMAC-SHA256(MAC key,
#             AD || header || ciphertext); header || ciphertext || tag joined.
#   receiver: header unpacked with struct; the same KDF_CK and HKDF; HMAC.verify of
#             the tag over AD || header || ciphertext; AES-256-CBC decryption; PKCS#7
#             unpadding.
#
# That is the work of Ratchet.encrypt and of Ratchet.decrypt's in-chain path, and
# `check_floor` asserts that the floor's message is byte for byte the one Ratchet
# sends. Ratchet state (skipped keys, counters, chain bookkeeping) is what the ratio
# prices; the floor keeps only its two chain keys and the counter.


def floor_kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key)."""
    h = hmac.HMAC(chain_key, hashes.SHA256())
    h.update(b"\x01")
    message_key = h.finalize()
    h = hmac.HMAC(chain_key, hashes.SHA256())
    h.update(b"\x02")
    return h.finalize(), message_key


def floor_message_keys(message_key: bytes) -> tuple[bytes, bytes, bytes]:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=80, salt=ZERO_SALT, info=MESSAGE_KEYS_INFO)
    okm = hkdf.derive(message_key)
    return okm[:32], okm[32:64], okm[64:]


def floor_send(chain_key: bytes, dh_public: bytes, pn: int, n: int, plaintext: bytes,
               ad: bytes) -> tuple[bytes, bytes]:
    """Returns (next chain key, the message as sent)."""
    chain_key, message_key = floor_kdf_ck(chain_key)
    enc_key, mac_key, iv = floor_message_keys(message_key)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    header = struct.pack(">BB32sII", MESSAGE_VERSION, TYPE_X25519, dh_public, pn, n)
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(ad + header + ciphertext)
    return chain_key, header + ciphertext + h.finalize()


def floor_receive(chain_key: bytes, message: bytes, ad: bytes) -> tuple[bytes, bytes]:
    """Returns (next chain key, the plaintext); raises InvalidSignature on a bad tag."""
    header, ciphertext, tag = message[:HEADER_LEN], message[HEADER_LEN:-32], message[-32:]
    struct.unpack(">BB32sII", header)  # what a receiver reads to place the message
    chain_key, message_key = floor_kdf_ck(chain_key)
    enc_key, mac_key, iv = floor_message_keys(message_key)
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(ad + header + ciphertext)
    h.verify(tag)
    decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return chain_key, unpadder.update(padded) + unpadder.finalize()


# The lean floor: the same calls with the shortcuts protocol/e2e/aead.py and kdf.py
# take (one keyed HMAC copied for KDF_CK, one SHA256 instance, a PKCS#7 table, the
# header packed by a prepared Struct, bytes_eq for the tag). It is not the aim's
# reference; it prices what the ratchet's own bookkeeping costs on top of the calls.

_SHA256 = hashes.SHA256()
_HEADER = struct.Struct(">BB32sII")
_PKCS7 = [bytes((i,)) * i for i in range(17)]


def lean_send(chain_key: bytes, dh_public: bytes, pn: int, n: int, plaintext: bytes,
              ad: bytes) -> tuple[bytes, bytes]:
    h = hmac.HMAC(chain_key, _SHA256)
    c = h.copy()
    h.update(b"\x01")
    c.update(b"\x02")
    chain_key, message_key = c.finalize(), h.finalize()
    okm = HKDF(_SHA256, 80, ZERO_SALT, MESSAGE_KEYS_INFO).derive(message_key)
    encryptor = Cipher(algorithms.AES(okm[:32]), modes.CBC(okm[64:])).encryptor()
    ciphertext = encryptor.update(plaintext + _PKCS7[16 - len(plaintext) % 16])
    ciphertext += encryptor.finalize()
    header = _HEADER.pack(MESSAGE_VERSION, TYPE_X25519, dh_public, pn, n)
    h = hmac.HMAC(okm[32:64], _SHA256)
    h.update(ad + header)
    h.update(ciphertext)
    return chain_key, header + ciphertext + h.finalize()


def lean_receive(chain_key: bytes, message: bytes, ad: bytes) -> tuple[bytes, bytes]:
    header, ciphertext, tag = message[:HEADER_LEN], message[HEADER_LEN:-32], message[-32:]
    _HEADER.unpack(header)
    h = hmac.HMAC(chain_key, _SHA256)
    c = h.copy()
    h.update(b"\x01")
    c.update(b"\x02")
    chain_key, message_key = c.finalize(), h.finalize()
    okm = HKDF(_SHA256, 80, ZERO_SALT, MESSAGE_KEYS_INFO).derive(message_key)
    h = hmac.HMAC(okm[32:64], _SHA256)
    h.update(ad + header)
    h.update(ciphertext)
    if not bytes_eq(h.finalize(), tag):
        raise AssertionError("lean floor MAC mismatch")
    decryptor = Cipher(algorithms.AES(okm[:32]), modes.CBC(okm[64:])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    return chain_key, padded[:-padded[-1]]


Send = Callable[[bytes, bytes, int, int, bytes, bytes], tuple[bytes, bytes]]
Receive = Callable[[bytes, bytes, bytes], tuple[bytes, bytes]]


def bench_floor(chain_key: bytes, dh_public: bytes, padded: bytes, ad: bytes,
                send: Send = floor_send, receive: Receive = floor_receive) -> Timed:
    """One message sent and received through a floor; both chains advance, as in a
    real exchange, and the counter moves."""
    state = [chain_key, chain_key, 0]

    def run(n: int) -> float:
        ck_a, ck_b, counter = state
        assert isinstance(ck_a, bytes) and isinstance(ck_b, bytes) and isinstance(counter, int)
        t0 = time.perf_counter()
        for i in range(counter, counter + n):
            ck_a, message = send(ck_a, dh_public, 0, i, padded, ad)
            ck_b, _ = receive(ck_b, message, ad)
        elapsed = time.perf_counter() - t0
        state[:] = [ck_a, ck_b, counter + n]
        return elapsed

    return run


def check_floor(alice: Ratchet, bob: Ratchet, padded: bytes) -> tuple[bytes, int]:
    """The floor produces byte for byte the message the implementation sends, and
    reads it back, so it measures the same work. Returns (Alice's ratchet public key,
    the counter of her next message)."""
    assert alice.cks is not None and bob.ckr is not None and alice.cks == bob.ckr
    chain_key = alice.cks
    message = alice.encrypt(padded)
    assert bob.decrypt(message) == padded
    dh_public = alice.dhs.public
    _, floor = floor_send(chain_key, dh_public, alice.pn, alice.ns - 1, padded, alice.ad)
    assert floor == message, "floor does not reproduce the implementation"
    _, plaintext = floor_receive(chain_key, floor, alice.ad)
    assert plaintext == padded
    _, lean = lean_send(chain_key, dh_public, alice.pn, alice.ns - 1, padded, alice.ad)
    assert lean == message, "lean floor does not reproduce the implementation"
    _, plaintext = lean_receive(chain_key, lean, alice.ad)
    assert plaintext == padded
    return dh_public, alice.ns


# -- the harness ------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    label: str
    run: Timed
    ops_per_call: int  # messages (or handshakes) per loop iteration
    unit: str = "msg"
    n: int = 0
    per_op: list[float] = field(default_factory=list)  # seconds per operation, by round

    def sample(self) -> None:
        self.per_op.append(self.run(self.n) / (self.n * self.ops_per_call))


def calibrate(fig: Figure, sample_seconds: float) -> None:
    """Warm up and choose n so that one sample takes about sample_seconds."""
    n = 1
    while True:
        elapsed = fig.run(n)
        if elapsed >= min(0.02, sample_seconds / 2):
            break
        n *= 2
    fig.n = max(1, round(n * sample_seconds / elapsed))
    fig.run(fig.n)  # a full-size warm-up


def measure(figures: list[Figure], rounds: int, sample_seconds: float) -> None:
    """Paired rounds: every figure once per round, the order reversing each round."""
    gc.collect()
    gc.disable()  # as timeit does: no collector pauses inside the timed loops
    try:
        for fig in figures:
            calibrate(fig, sample_seconds)
        for r in range(rounds):
            for fig in figures if r % 2 == 0 else reversed(figures):
                fig.sample()
    finally:
        gc.enable()


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


def figure_line(fig: Figure) -> str:
    s = Spread.of(fig.per_op)
    return (f"{fig.label:<54} {1 / s.median:>9,.0f} {fig.unit + '/s':<12} "
            f"{s.median * 1e6:>8.1f} us/{fig.unit} (min {s.low * 1e6:.1f}, "
            f"max {s.high * 1e6:.1f})")


def ratios(ours: Figure, floor: Figure) -> list[float]:
    """Per-round ratios ours/floor, each from the two samples of one round."""
    return [o / f for o, f in zip(ours.per_op, floor.per_op, strict=True)]


def pin(cpu: int | None) -> int | None:
    """Pins this process to one CPU (default: the highest it may run on); returns it,
    or None where affinity is not available."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    chosen = max(allowed) if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return chosen


def load_note() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 5 rounds of 20 ms samples")
    parser.add_argument("--rounds", type=int, default=None,
                        help="paired rounds (default 21, quick 5)")
    parser.add_argument("--sample-ms", type=float, default=None,
                        help="milliseconds per sample (default 150, quick 20)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="CPU to pin to (default: the highest this process may use)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (5 if args.quick else 21)
    sample_ms = args.sample_ms if args.sample_ms is not None else (20.0 if args.quick else 150.0)
    if sample_ms <= 0 or rounds < 1:
        parser.error("--sample-ms must be positive and --rounds at least 1")
    cpu = pin(args.cpu)

    body = os.urandom(BODY_LEN)
    padded = padding.pad(body)  # what Session.encrypt hands to the ratchet
    alice_id = IdentityKeyPair.generate()
    bob = make_bob()

    # Separate pairs per figure, each past its setup, so that every one-direction
    # message stays in one chain and every alternating message is a DH step.
    r_alice, r_bob = (s.ratchet for s in handshake(alice_id, bob, body))
    s_alice, s_bob = session_pair(alice_id, bob, body)
    alt_alice, alt_bob = (s.ratchet for s in session_pair(alice_id, bob, body))
    assert r_alice.cks is not None
    floor_ck = r_alice.cks
    dh_public, _ = check_floor(r_alice, r_bob, padded)
    pkcs7 = 16 - len(padded) % 16

    one_way = Figure("one-direction via Ratchet (encrypt + decrypt)",
                     bench_ratchet_one_way(r_alice, r_bob, padded), 1)
    session = Figure("one-direction via Session (encrypt + decrypt)",
                     bench_session_one_way(s_alice, s_bob, body), 1)
    floor = Figure("floor: the same message, plain cryptography calls",
                   bench_floor(floor_ck, dh_public, padded, r_alice.ad), 1)
    lean = Figure("lean floor: the same calls with aead.py's shortcuts",
                  bench_floor(floor_ck, dh_public, padded, r_alice.ad, lean_send, lean_receive), 1)
    alternating = Figure("alternating direction (DH ratchet step every message)",
                         bench_alternating(alt_alice, alt_bob, padded), 2)
    handshakes = Figure("PQXDH handshakes (initiate + first message + respond)",
                        bench_handshake(alice_id, bob, body), 1, "handshake")
    figures = [one_way, floor, session, lean, alternating, handshakes]

    print("blindrelay protocol benchmark")
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, "
          + (f"pinned to CPU {cpu}" if cpu is not None else "not pinned (no affinity)"))
    print(f"plaintext {BODY_LEN} bytes, padded to {len(padded)}, "
          f"{len(padded) + pkcs7}-byte AES-CBC ciphertext")
    print(f"method: {rounds} paired rounds, every figure once per round (~{sample_ms:g} ms "
          "per sample), order reversed every round;")
    print("        medians over the rounds with min and max, ratios per round; gc off while "
          "timing (as timeit does)")
    print(f"machine before: {load_note()}", flush=True)
    measure(figures, rounds, sample_ms / 1000)
    print(f"machine after:  {load_note()}")

    # The ratchets must still agree after everything that was timed.
    assert r_bob.decrypt(r_alice.encrypt(padded)) == padded
    kind, message = s_alice.encrypt(body)
    assert s_bob.decrypt(kind, message) == body
    assert alt_bob.decrypt(alt_alice.encrypt(padded)) == padded

    print()
    for fig in (one_way, session, alternating, handshakes, floor, lean):
        print(figure_line(fig))
    print()
    for name, fig in (("Ratchet", one_way), ("Session", session)):
        s = Spread.of(ratios(fig, floor))
        verdict = "meets" if s.median <= AIM else "misses"
        print(f"{'ratio ours/floor, one-direction via ' + name:<54} median {s.median:.2f} "
              f"(min {s.low:.2f}, max {s.high:.2f} over {rounds} rounds; {verdict} the aim "
              f"of <= {AIM})")
    s = Spread.of(ratios(one_way, lean))
    print(f"{'ratio Ratchet/lean floor (its bookkeeping alone)':<54} median {s.median:.2f} "
          f"(min {s.low:.2f}, max {s.high:.2f})")
    s = Spread.of(ratios(floor, lean))
    print(f"{'ratio floor/lean floor (what the shortcuts save)':<54} median {s.median:.2f} "
          f"(min {s.low:.2f}, max {s.high:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
