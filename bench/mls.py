"""MLS group costs (issue 13): add, remove and self-update commits in groups of 10, 100
and 1,000 members, time to create (the committer) and to process (a member at the far
end of the tree), and application messages against the one-to-one ratchet in the same
run.

    .venv/bin/python bench/mls.py [--sizes 10 100 1000] [--rounds 9] [--cpu 1]

Everything runs in one process pinned to one core (`--cpu`), in-process and sans-I/O
(no relay): these are the engine's costs. Each figure is the median over `--rounds`
rounds with min and max; the application-message line gives the per-round ratio
(MLS / one-to-one, both measured back to back in each round) as median (min-max).
Never best-of.

Each round makes a self-update, adds a new member and removes that member again, so
the group keeps its size. The group is built as a client would: the creator adds
everyone in one commit and the far member joins from the Welcome. In that tree every
parent off the creator's path is blank, so the creator's commits encrypt path
secrets to about half the group (the resolution of the root's other half): the worst
case, what a just-created group costs until its members have committed themselves.
Processing is the aim's figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.mls import committing
from protocol.e2e.mls.group import Group
from protocol.e2e.mls.welcome import Welcome
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.prekeys import KemKind, PreKeyBundle

TEXT = b"x" * 100
"""A short chat message."""


def ms(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:8.2f} ms "
            f"({min(values) * 1000:.2f}-{max(values) * 1000:.2f})")


def build(n: int) -> tuple[Group, Group, list[committing.Identity]]:
    """The creator's state and the far member's (the last leaf), after one commit
    adding n - 1 members."""
    creator = committing.Identity.generate(b"member-0")
    group = committing.create_group(creator)
    identities = [committing.Identity.generate(f"member-{i}".encode()) for i in range(1, n)]
    packages = [committing.new_key_package(i) for i in identities]
    pending = committing.commit(group, adds=[p.key_package for p in packages], path=False)
    assert pending.welcome is not None and isinstance(pending.welcome.message, Welcome)
    far = packages[-1]
    member = Group.join(pending.welcome.message, far.key_package, far.init_private,
                        far.encryption_private, identities[-1].signature_private)
    return pending.group, member, identities


def commits(n: int, rounds: int) -> None:
    group, member, _ = build(n)
    rows: dict[str, tuple[list[float], list[float]]] = {
        "self-update": ([], []), "add": ([], []), "remove": ([], [])}
    added = 0  # the leaf the round's add filled: the round's remove takes it out again
    for r in range(rounds):
        for kind in rows:
            adds, removes = [], []
            if kind == "add":
                identity = committing.Identity.generate(b"new-%d" % r)
                adds = [committing.new_key_package(identity).key_package]
            elif kind == "remove":
                removes = [added]
            t0 = time.perf_counter()
            pending = committing.commit(group, adds=adds, removes=removes)
            t1 = time.perf_counter()
            member.handle(pending.message)
            t2 = time.perf_counter()
            group = pending.group
            if kind == "add":
                added = pending.added[0]
            assert member.epoch_authenticator == group.epoch_authenticator
            rows[kind][0].append(t1 - t0)
            rows[kind][1].append(t2 - t1)
    for kind, (create, process) in rows.items():
        print(f"  {n:>5} members  {kind:<12} create {ms(create)}   process {ms(process)}")


def one_to_one() -> tuple[Session, Session]:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk_pair, spk = make_signed_prekey(bob, 1)
    kem_pair, kem = make_kem_prekey(bob, 2)
    opk_pair, opk = make_one_time_prekey(3)
    bundle = PreKeyBundle(bob.public, spk, KemKind.LAST_RESORT, kem, opk)
    keys = PrivatePrekeys(spk_pair, kem_pair, opk_pair)

    def lookup(_m: PreKeyMessage) -> PrivatePrekeys:
        return keys

    sender = Session.initiate(alice, bundle)
    kind, message = sender.encrypt(TEXT)
    receiver, _, _ = Session.respond(bob, message, lookup)
    kind, reply = receiver.encrypt(TEXT)
    sender.decrypt(kind, reply)
    return sender, receiver


def messages(rounds: int, count: int) -> None:
    group, member, _ = build(10)
    sender, receiver = one_to_one()
    ratios, mls_rates, dr_rates = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(count):
            member.handle(committing.encrypt_application(group, TEXT))
        t_mls = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(count):
            receiver.decrypt(*sender.encrypt(TEXT))
        t_dr = time.perf_counter() - t0
        ratios.append(t_mls / t_dr)
        mls_rates.append(count / t_mls)
        dr_rates.append(count / t_dr)
    print(f"  application messages (100-byte text, encrypt + decrypt), {count} per round:")
    print(f"    MLS (10-member group)   {statistics.median(mls_rates):8.0f} msg/s "
          f"({min(mls_rates):.0f}-{max(mls_rates):.0f})")
    print(f"    one-to-one ratchet      {statistics.median(dr_rates):8.0f} msg/s "
          f"({min(dr_rates):.0f}-{max(dr_rates):.0f})")
    print(f"    time ratio MLS / ratchet: median {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}), {rounds} paired rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin to this core (default: the last one)")
    args = parser.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    print(f"MLS suite 1, pinned to core {cpu}; median (min-max) over {args.rounds} rounds")
    print("commits (the committer creates; the member at the last leaf processes):")
    for n in args.sizes:
        commits(n, args.rounds)
    messages(args.rounds, args.messages)


if __name__ == "__main__":
    main()
