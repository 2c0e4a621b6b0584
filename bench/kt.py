"""Key directory benchmark (issue 10, "Speed"; docs/PROTOCOL.md sections 19.6-19.9).

    .venv/bin/python bench/kt.py                    # 1,000,000 entries: ~15 min, ~2 GB
    .venv/bin/python bench/kt.py --quick            # 20,000 entries, smaller runs: ~30 s
    .venv/bin/python bench/kt.py --entries 100000 --lookups 500 --cpu 1

Builds a `protocol.wire.kt.directory.Directory` of N registrations the way a relay
rebuilds it at start-up (one `append` per update: VRF label, commitment, prefix tree
insert, log append), then prints:

* the build: time, and the process's resident memory before and after;
* lookups: the size of a LookupAnswer (and of the whole KT_LOOKUP_ANSWER frame, with
  the signed checkpoint) for random registered names and for absent names, the
  relay's time to make one, and the client's time to check one (`verify_answer`), with
  what that time is made of (VRF verification, prefix tree, two inclusion proofs);
* appends: one registration followed by signing a checkpoint, and a batch of
  registrations followed by one checkpoint (and a batch of re-bindings of names the
  relay already knows, whose labels are cached);
* owner monitoring across the batch: what the owner's client downloads (KT_ENTRIES
  answers, 96 bytes per entry, and KT_OWN), and its work: the leaves checked against
  two signed heads from a frontier (`RangeVerifier`), the leaves under its label found,
  and its own openings checked (`verify_commitment`).

Every timed figure is the median of its samples (time.perf_counter_ns), with the
minimum and maximum beside it, not the best run alone. After the build the heap is
frozen (gc.freeze): the collector no longer rescans the directory's millions of
objects, as it would not in a client, which has no directory. Other processes share
the machine's CPUs; `--cpu K` pins this process to CPU K to keep it from migrating.
Nothing here is a timed test: tests/bench/test_kt_smoke.py only runs `--quick` with
tiny sizes and checks that the figures are printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a protocol.py: keep this directory off the import path so `import
# protocol` finds the package, and find the packages from a plain checkout.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse
import gc
import os
import platform
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.wire import codec
from protocol.wire.frames import (
    KtEntries,
    KtEntryRange,
    KtLookupAnswer,
    KtOwn,
    KtOwnEntries,
    OwnEntry,
    encode_frame,
)
from protocol.wire.kt import vrf
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.commitment import verify_commitment
from protocol.wire.kt.directory import (
    ENTRY_LEN,
    MAX_RANGE,
    Binding,
    Directory,
    EntryKind,
    LogEntry,
    LookupAnswer,
    RangeVerifier,
    change_statement,
    label_of,
    verify_answer,
)
from protocol.wire.kt.merkle import verify_inclusion
from protocol.wire.kt.note import Signer
from protocol.wire.kt.prefix_tree import LookupProof, verify_lookup

ORIGIN = "bench.blindrelay.example/kt"
OWNER = "owner"
KEY_POOL = 1024
"""Distinct identity keys handed out round-robin: a key per user would cost a key
generation per entry and change no size or time measured."""
PROOF_AIM = 2048
VERIFY_AIM_MS = 5.0
BATCH_AIM_S = 1.0
FRAME_HEADER = 6


# -- small helpers ------------------------------------------------------------------


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p(sorted_values: Sequence[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass(frozen=True, slots=True)
class Stats:
    """Nanosecond samples, summarised."""

    samples: tuple[int, ...]

    @classmethod
    def of(cls, samples: Sequence[int]) -> Stats:
        return cls(tuple(sorted(samples)))

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def ms(self, p99: bool = False) -> str:
        s = self.samples
        out = f"median {self.median / 1e6:.3f} ms"
        if p99:
            out += f", p99 {p(s, 0.99) / 1e6:.3f}"
        return out + f" (min {s[0] / 1e6:.3f}, max {s[-1] / 1e6:.3f}; n={len(s)})"

    def us(self) -> str:
        s = self.samples
        return (f"median {self.median / 1e3:.1f} us (min {s[0] / 1e3:.1f}, "
                f"max {s[-1] / 1e3:.1f}; n={len(s)})")


def timed(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def row(label: str, value: str) -> None:
    print(f"  {label:<44} {value}", flush=True)


def size_row(label: str, sizes: Sequence[int]) -> None:
    s = sorted(sizes)
    row(label, f"median {statistics.median(s):,.0f} B, max {s[-1]:,} B "
        f"(min {s[0]:,}; n={len(s)})")


# -- the parts ----------------------------------------------------------------------


@dataclass
class Setup:
    directory: Directory
    keys: list[bytes]
    owner_key: Ed25519PrivateKey
    names: list[str]


def build(entries: int) -> Setup:
    """N registrations, the owner's first; timed as one start-up replay."""
    directory = Directory(Signer.generate(ORIGIN), os.urandom(vrf.SECRET_KEY_LEN))
    keys = [raw_public(Ed25519PrivateKey.generate()) for _ in range(KEY_POOL)]
    owner_key = Ed25519PrivateKey.generate()
    names = [OWNER] + [f"user{i:07d}" for i in range(1, entries)]
    openings = [os.urandom(16) for _ in range(entries)]
    rss0 = rss_mib()
    print(f"building a directory of {entries:,} registrations ...", flush=True)
    t0 = time.perf_counter_ns()
    directory.append(OWNER, Binding(EntryKind.REGISTER, 0, raw_public(owner_key)), openings[0])
    register = EntryKind.REGISTER
    step = max(1, entries // 10)
    for i in range(1, entries):
        directory.append(names[i], Binding(register, 0, keys[i % KEY_POOL]), openings[i])
        if i % step == 0 and entries >= 100_000:
            elapsed = (time.perf_counter_ns() - t0) / 1e9
            print(f"    {i:>9,} entries, {elapsed:7.1f} s, RSS {rss_mib():,.0f} MiB", flush=True)
    built = time.perf_counter_ns() - t0
    t1 = time.perf_counter_ns()
    directory.checkpoint()
    signed = time.perf_counter_ns() - t1
    gc.collect()
    gc.freeze()
    rss1 = rss_mib()
    print("build")
    row("entries", f"{directory.size:,} (prefix tree {len(directory.tree):,} labels)")
    row("time to build (append each, one at a time)",
        f"{built / 1e9:.1f} s ({built / entries / 1e3:.0f} us per entry)")
    row("then the first checkpoint (root + signature)", f"{signed / 1e6:.2f} ms")
    row("resident memory before -> after",
        f"{rss0:,.0f} -> {rss1:,.0f} MiB (+{(rss1 - rss0) * 1024 / entries:.2f} KiB per entry;"
        f" peak {maxrss_mib():,.0f} MiB)")
    return Setup(directory, keys, owner_key, names)


def absent_names(count: int) -> list[str]:
    return [f"nobody{i:07d}" for i in range(count)]


def lookups(setup: Setup, count: int, rng: random.Random) -> None:
    d = setup.directory
    note = d.checkpoint()
    checkpoint, _ = open_checkpoint(note, d.signer.verifier)
    vrf_pk = d.vrf_public_key
    sample = rng.sample(setup.names, min(count, len(setup.names)))
    absent = absent_names(max(20, count // 10))
    for name in sample + absent:  # every label cached, as a relay's are after start-up
        d.label(name)
    for name in sample[:5] + absent[:5]:  # warm-up
        d.lookup(name)

    relay_ns: list[int] = []
    answers: list[tuple[str, bytes]] = []
    for name in sample + absent:
        t0 = time.perf_counter_ns()
        answer = d.lookup(name).encode()
        relay_ns.append(time.perf_counter_ns() - t0)
        answers.append((name, answer))
    found_sizes = [len(a) for _, a in answers[: len(sample)]]
    absent_sizes = [len(a) for _, a in answers[len(sample):]]
    frame = len(encode_frame(KtLookupAnswer(note, answers[0][1])))

    bytes_parts = size_breakdown(answers[: len(sample)], d.size)

    verify_ns: list[int] = []
    for name, answer in answers:
        t0 = time.perf_counter_ns()
        verified = verify_answer(answer, name, vrf_pk, checkpoint)
        verify_ns.append(time.perf_counter_ns() - t0)
        if (verified.binding is None) != name.startswith("nobody"):
            raise AssertionError(f"lookup of {name} verified to the wrong result")
    verify = Stats.of(verify_ns)
    verify_found = Stats.of(verify_ns[: len(sample)])
    verify_absent = Stats.of(verify_ns[len(sample):])

    parts = breakdown(answers, vrf_pk, checkpoint)
    cp_ns = [timed(lambda: open_checkpoint(note, d.signer.verifier)) for _ in range(200)]

    print(f"lookups at size {d.size:,}")
    size_row(f"answer bytes, {len(sample):,} registered names", found_sizes)
    size_row(f"answer bytes, {len(absent):,} absent names", absent_sizes)
    row("KT_LOOKUP_ANSWER frame (note + answer)",
        f"{frame:,} B for the first name (signed checkpoint note {len(note)} B)")
    verdict = "meets" if max(found_sizes + absent_sizes) < PROOF_AIM else "misses"
    row("aim: proof < 2 KiB", f"{verdict} (largest {max(found_sizes + absent_sizes):,} B)")
    print("  where the bytes of a registered name's answer go (medians):")
    for label, value in bytes_parts:
        row(f"  {label}", value)
    row("relay: lookup(name).encode()", Stats.of(relay_ns).ms(p99=True))
    row("client: verify_answer, all", verify.ms(p99=True))
    row("client: verify_answer, registered", verify_found.ms(p99=True))
    row("client: verify_answer, absent", verify_absent.ms(p99=True))
    verdict = "meets" if p(verify.samples, 0.99) / 1e6 < VERIFY_AIM_MS else "misses"
    row("aim: verification < 5 ms", f"{verdict} (p99 {p(verify.samples, 0.99) / 1e6:.3f} ms)")
    row("client: open_checkpoint (once per head)", Stats.of(cp_ns).ms())
    print("  where verification time goes (medians over the same answers):")
    for label, stats in parts:
        share = stats.median / verify_found.median * 100
        row(f"  {label}", f"{stats.median / 1e3:8.1f} us  ({share:4.1f}% of a registered lookup)")


def size_breakdown(answers: Sequence[tuple[str, bytes]], size: int) -> list[tuple[str, str]]:
    """The parts of section 19.7's layout, in bytes, over the registered names' answers."""
    head, prefix, found_part = [], [], []
    head_hashes, prefix_hashes, found_hashes = [], [], []
    for _, raw in answers:
        answer = LookupAnswer.decode(raw, size)
        assert answer.head is not None and answer.found is not None
        head.append(ENTRY_LEN + 1 + 32 * len(answer.head_inclusion))
        head_hashes.append(len(answer.head_inclusion))
        prefix.append(2 + len(answer.prefix_proof))
        prefix_hashes.append(sum(s != bytes(32) for s in
                                 LookupProof.decode(answer.prefix_proof).siblings))
        found_part.append(len(answer.encode()) - head[-1] - prefix[-1] - vrf.PROOF_LEN)
        found_hashes.append(len(answer.found.inclusion))
    med = statistics.median
    return [
        ("VRF proof", f"{vrf.PROOF_LEN} B"),
        ("head entry + its inclusion proof",
         f"{med(head):,.0f} B ({med(head_hashes):.0f} hashes)"),
        ("prefix tree proof (var16)",
         f"{med(prefix):,.0f} B ({med(prefix_hashes):.0f} non-empty siblings)"),
        ("found flag, opening, value, index, root, proof",
         f"{med(found_part):,.0f} B ({med(found_hashes):.0f} hashes)"),
    ]


def breakdown(answers: Sequence[tuple[str, bytes]], vrf_pk: bytes,
              checkpoint: Checkpoint) -> list[tuple[str, Stats]]:
    """The steps of verify_answer (section 19.7) timed one by one on registered names."""
    size, root = checkpoint.size, checkpoint.root_hash
    decode: list[int] = []
    label_ns: list[int] = []
    head_ns: list[int] = []
    prefix_ns: list[int] = []
    open_ns: list[int] = []
    incl_ns: list[int] = []
    for name, raw in answers:
        t0 = time.perf_counter_ns()
        answer = LookupAnswer.decode(raw, size)
        t1 = time.perf_counter_ns()
        label = label_of(vrf_pk, answer.vrf_proof, name)
        t2 = time.perf_counter_ns()
        assert answer.head is not None
        verify_inclusion(answer.head.leaf(), size - 1, size, answer.head_inclusion, root)
        t3 = time.perf_counter_ns()
        commitment = verify_lookup(answer.head.prefix_root, label,
                                   LookupProof.decode(answer.prefix_proof))
        t4 = time.perf_counter_ns()
        if commitment is None or answer.found is None:
            continue
        found = answer.found
        verify_commitment(commitment, found.opening, label, found.value)
        Binding.decode(found.value)
        t5 = time.perf_counter_ns()
        entry = LogEntry(label, commitment, found.prefix_root)
        verify_inclusion(entry.leaf(), found.index, size, found.inclusion, root)
        t6 = time.perf_counter_ns()
        for ns, a, b in ((decode, t0, t1), (label_ns, t1, t2), (head_ns, t2, t3),
                         (prefix_ns, t3, t4), (open_ns, t4, t5), (incl_ns, t5, t6)):
            ns.append(b - a)
    return [("VRF verify (label_of)", Stats.of(label_ns)),
            ("decode the answer", Stats.of(decode)),
            ("head entry's inclusion proof", Stats.of(head_ns)),
            ("prefix tree proof (decode + verify)", Stats.of(prefix_ns)),
            ("commitment opening + Binding.decode", Stats.of(open_ns)),
            ("update's inclusion proof", Stats.of(incl_ns))]


def appends(setup: Setup, count: int) -> None:
    """One new registration then a checkpoint, `count` times. The new name's label (a
    VRF proof, cached by the directory) is computed inside `append`, as for a real
    registration."""
    d = setup.directory
    append_ns: list[int] = []
    sign_ns: list[int] = []
    total_ns: list[int] = []
    label_ns: list[int] = []
    for i in range(count):
        name = f"single{i:07d}"
        binding = Binding(EntryKind.REGISTER, 0, setup.keys[i % KEY_POOL])
        opening = os.urandom(16)
        t0 = time.perf_counter_ns()
        d.append(name, binding, opening)
        t1 = time.perf_counter_ns()
        d.checkpoint()
        t2 = time.perf_counter_ns()
        append_ns.append(t1 - t0)
        sign_ns.append(t2 - t1)
        total_ns.append(t2 - t0)
        other = f"other{i:07d}"
        label_ns.append(timed(partial(d.label, other)))
    print(f"one append at size {d.size - count:,}+ (a new name), then a checkpoint")
    row("append + checkpoint", Stats.of(total_ns).ms())
    row("  of which append", Stats.of(append_ns).ms())
    row("  of which checkpoint (root + Ed25519 note)", Stats.of(sign_ns).ms())
    row("  (a new name's label alone: VRF prove + hash)", Stats.of(label_ns).ms())


@dataclass
class Monitor:
    owner_label: bytes
    old_size: int
    old_root: bytes
    new_size: int
    new_root: bytes
    requests: list[bytes]
    answers: list[bytes]
    own: bytes


def batch(setup: Setup, count: int) -> Monitor:
    """`count` appends then one checkpoint: new names, with the owner's key change in
    the middle. Returns what the owner's client downloads to check them."""
    d = setup.directory
    old_size, old_root = d.size, d.log.root()
    d.checkpoint()
    new_owner = Ed25519PrivateKey.generate()
    previous = d.current(OWNER)
    assert previous is not None
    version = previous.version + 1
    statement = change_statement(OWNER, version, raw_public(new_owner))
    change = Binding(EntryKind.CHANGE, version, raw_public(new_owner),
                     setup.owner_key.sign(statement))
    items: list[tuple[str, Binding]] = [
        (f"batch{i:07d}", Binding(EntryKind.REGISTER, 0, setup.keys[i % KEY_POOL]))
        for i in range(count - 1)]
    items.insert(count // 2, (OWNER, change))
    openings = [os.urandom(16) for _ in items]
    t0 = time.perf_counter_ns()
    for (name, binding), opening in zip(items, openings, strict=True):
        d.append(name, binding, opening)
    t1 = time.perf_counter_ns()
    d.checkpoint()
    t2 = time.perf_counter_ns()
    new_size, new_root = d.size, d.log.root()

    # The same number of re-bindings of names the relay already knows (labels cached).
    known = setup.names[1 : count + 1]
    rebinds = [(n, d.next_binding(n, setup.keys[(i + 7) % KEY_POOL]), os.urandom(16))
               for i, n in enumerate(known)]
    t3 = time.perf_counter_ns()
    for name, binding, opening in rebinds:
        d.append(name, binding, opening)
    d.checkpoint()
    t4 = time.perf_counter_ns()

    print(f"a batch at size {old_size:,}")
    verdict = "meets" if (t2 - t0) / 1e9 <= BATCH_AIM_S else "misses"
    row(f"{count:,} appends (new names) + 1 checkpoint",
        f"{(t2 - t0) / 1e9:.2f} s ({(t1 - t0) / count / 1e3:.0f} us per append, "
        f"checkpoint {(t2 - t1) / 1e6:.2f} ms); {verdict} the aim of <= 1 s")
    row(f"{len(rebinds):,} re-bindings (labels cached) + 1 checkpoint",
        f"{(t4 - t3) / 1e9:.2f} s ({(t4 - t3) / len(rebinds) / 1e3:.0f} us per append)")

    requests, answers = [], []
    for start in range(old_size, new_size, MAX_RANGE):
        n = min(MAX_RANGE, new_size - start)
        requests.append(encode_frame(KtEntries(start, n), 1))
        answers.append(encode_frame(KtEntryRange(
            start, tuple(d.frontier(start)),
            tuple(e.encode() for e in d.entries[start : start + n])), 1))
    owned = tuple(OwnEntry(i, o, v, tuple(d.log.inclusion_proof(i, new_size)))
                  for i, o, v in d.owned(OWNER))
    own = encode_frame(KtOwnEntries(d.checkpoint(), d.label(OWNER)[1], owned), 2)
    return Monitor(d.label(OWNER)[0], old_size, old_root, new_size, new_root,
                   requests, answers, own)


def check_own_range(m: Monitor, vrf_pk: bytes, expected_key: bytes) -> int:
    """The owner's client: decode the frames, run the leaves from the old head's frontier
    to the new head, find the leaves under its label, open each. Returns their count."""
    own = KtOwnEntries.decode_payload(codec.Reader(m.own[FRAME_HEADER:]))
    label = label_of(vrf_pk, own.vrf_proof, OWNER)
    verifier: RangeVerifier | None = None
    mine: list[tuple[int, LogEntry]] = []
    index = m.old_size
    for raw in m.answers:
        r = codec.Reader(raw[FRAME_HEADER:])
        answer = KtEntryRange.decode_payload(r)
        r.finish()
        if verifier is None:
            verifier = RangeVerifier(answer.start, answer.frontier, m.old_root)
        for data in answer.entries:
            entry = LogEntry.decode(data)
            verifier.add(entry.leaf())
            if entry.label == label:
                mine.append((index, entry))
            index += 1
    assert verifier is not None
    verifier.finish(m.new_size, m.new_root)
    openings = {e.index: e for e in own.entries}
    binding: Binding | None = None
    for i, entry in mine:
        revealed = openings.get(i)
        if revealed is None:
            raise AssertionError(f"leaf {i} under the owner's label was not revealed")
        verify_commitment(entry.commitment, revealed.opening, label, revealed.value)
        binding = Binding.decode(revealed.value)
    if binding is None or binding.identity != expected_key:
        raise AssertionError("the owner's latest key is not the one it set")
    return len(mine)


def monitoring(setup: Setup, m: Monitor, reps: int) -> None:
    d = setup.directory
    latest = d.current(OWNER)
    assert latest is not None and latest.identity is not None
    found = check_own_range(m, d.vrf_public_key, latest.identity)  # warm-up and check
    ns = [timed(lambda: check_own_range(m, d.vrf_public_key, latest.identity or b""))
          for _ in range(reps)]
    count = m.new_size - m.old_size
    entries_bytes = count * ENTRY_LEN
    frames = sum(map(len, m.requests)) + sum(map(len, m.answers))
    own_bytes = len(m.own) + len(encode_frame(KtOwn(), 2))
    print(f"owner monitoring of one name across the {count:,} new entries")
    row("leaves under the owner's label found", f"{found} (its key change)")
    row("client work (decode, RangeVerifier, openings)",
        Stats.of(ns).ms() + f"; {Stats.of(ns).median / count / 1e3:.2f} us per leaf")
    row(f"download: {len(m.answers)} KT_ENTRIES answers",
        f"{sum(map(len, m.answers)):,} B ({entries_bytes:,} B of entries, 96 each, "
        f"+ headers and frontiers)")
    row("upload: KT_ENTRIES requests", f"{sum(map(len, m.requests)):,} B")
    row("KT_OWN request + answer", f"{own_bytes:,} B ({len(d.owned(OWNER))} updates)")
    row("total over the wire (frames, no WebSocket)", f"{frames + own_bytes:,} B")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20,000 entries, fewer samples")
    parser.add_argument("--entries", type=int, default=None,
                        help="registrations in the directory (default 1,000,000; quick 20,000)")
    parser.add_argument("--lookups", type=int, default=None,
                        help="registered names looked up and verified (default 1,000; quick 200)")
    parser.add_argument("--appends", type=int, default=None,
                        help="single appends timed (default 200; quick 50)")
    parser.add_argument("--batch", type=int, default=None,
                        help="appends in the batch and entries monitored (default 10,000; "
                             "quick 2,000)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of the owner's check (default 11; quick 5)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--seed", type=int, default=1, help="which names are sampled")
    args = parser.parse_args(argv)
    quick = args.quick
    entries = args.entries if args.entries is not None else (20_000 if quick else 1_000_000)
    count = args.lookups if args.lookups is not None else (200 if quick else 1000)
    appends_n = args.appends if args.appends is not None else (50 if quick else 200)
    batch_n = args.batch if args.batch is not None else (2_000 if quick else 10_000)
    reps = args.reps if args.reps is not None else (5 if quick else 11)
    if min(entries, count, appends_n, reps) < 1 or batch_n < 2 or batch_n >= entries:
        parser.error("sizes must be positive, and the batch at least 2 and below --entries")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    print("blindrelay key directory benchmark")
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
          + (f", pinned to CPU {args.cpu}" if args.cpu is not None else ""))
    print("method: time.perf_counter_ns per sample; medians with min and max (and p99 for "
          "verification); gc frozen after the build")
    setup = build(entries)
    lookups(setup, count, random.Random(args.seed))
    appends(setup, appends_n)
    monitor = batch(setup, batch_n)
    monitoring(setup, monitor, reps)
    print(f"done: {setup.directory.size:,} entries, peak resident memory "
          f"{maxrss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
