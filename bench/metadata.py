"""Metadata benchmark (issue 12, item 4): what a relay that records everything it can
see live reconstructs of who talks to whom.

    .venv/bin/python bench/metadata.py               # 3 seeded rounds: ~2 min
    .venv/bin/python bench/metadata.py --quick       # 1 round, fewer texts: ~30 s
    .venv/bin/python bench/metadata.py --rounds 5 --messages 40 --seed 7

Each round starts a real relay (server/relay.py, tapped by teaching.harvest's
HarvestingRelay, which records each connection with its address and port, each login,
each frame in and out with its exact time, recipients, sizes and capability hashes) on a
free loopback port, and 8 real clients (real encrypted profiles), each connecting from a
loopback address of its own (127.0.0.10 on). The seeded contact graph (10 pairs) makes
first contact, one message each way per pair, recorded apart ("setup"); then the group
chats under each configuration in turn, each phase recorded and analysed on its own:

* authenticated: every envelope by SEND on the sender's logged-in connection;
* sealed: SEALED_SEND on a connection that never logs in (Client.sealed_sending);
* sealed + receipt delay: the same, each automatic receipt held a uniformly random
  0..D seconds (Client.receipt_delay; D = teaching.harvest.RECEIPT_DELAY).

Texts go one at a time at exponentially distributed gaps (mean 0.4 s) on randomly chosen
pairs, at least once each way per pair; the clients send their own receipts. The
analyst (teaching.harvest.reconstruct) is scored against the true graph: precision and
recall, as median (min-max) over the rounds, twice: as if the users shared one address
(a NAT, a proxy, Tor; addresses ignored) and with each user's own address used. A
third figure counts only the edges the relay knows for certain. Nothing is timed:
these are counts, from the real client and relay code; the timing the analyst uses is
the relay's own clock while this machine's other work shares the CPUs.
tests/bench/test_metadata_smoke.py runs `--quick` with a tiny group.
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
import asyncio
import logging
import os
import platform
import time
from dataclasses import replace

from teaching.harvest import (
    CONFIGS,
    EDGES,
    REACTION,
    RECEIPT_DELAY,
    SHARPNESS,
    USERS,
    HarvestResult,
    harvest,
    spread,
)


def report(results: list[HarvestResult]) -> None:
    first = [r.first_contact for r in results]
    first_all = [r.first_contact_all for r in results]
    print(f"first contact (setup, key fetches and lookups alone): recall "
          f"{spread([s.recall for s in first])}, precision "
          f"{spread([s.precision for s in first])}; with the first messages: recall "
          f"{spread([s.recall for s in first_all])}")
    print()
    print(f"{'configuration':<24} {'address':<9} {'precision':<18} {'recall':<18} "
          f"{'certain recall':<18}")
    for index, phase in enumerate(results[0].phases):
        name = phase.config.name
        rows = [r.phases[index] for r in results]
        for label, scores in (("shared", [p.shared for p in rows]),
                              ("own", [p.own for p in rows])):
            certain = spread([p.shared_certain.recall for p in rows]) if label == "shared" \
                else ""
            print(f"{name:<24} {label:<9} {spread([s.precision for s in scores]):<18} "
                  f"{spread([s.recall for s in scores]):<18} {certain}")
    print()
    print("observations per phase: " + ", ".join(
        f"{p.config.name} {spread([r.phases[i].observations for r in results], 0)}"
        for i, p in enumerate(results[0].phases)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="one round with fewer texts: about 30 s")
    parser.add_argument("--rounds", type=int, default=None,
                        help="seeded rounds (default 3, quick 1)")
    parser.add_argument("--messages", type=int, default=None,
                        help="texts per configuration and round (default 30, quick 20)")
    parser.add_argument("--users", type=int, default=len(USERS),
                        help=f"people in the group (2-{len(USERS)}, default {len(USERS)})")
    parser.add_argument("--edges", type=int, default=EDGES,
                        help=f"contact pairs (default {EDGES})")
    parser.add_argument("--gap", type=float, default=0.4,
                        help="mean seconds between texts (default 0.4)")
    parser.add_argument("--delay", type=float, default=RECEIPT_DELAY,
                        help=f"D, the receipt delay of the third configuration "
                        f"(default {RECEIPT_DELAY:g} s)")
    parser.add_argument("--seed", type=int, default=1, help="the first round's seed")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    messages = args.messages if args.messages is not None else (20 if args.quick else 30)
    if rounds < 1 or messages < 1 or not 2 <= args.users <= len(USERS) or args.gap <= 0 \
            or not args.delay > 0:
        parser.error("--rounds and --messages must be positive, --users 2-8, --gap and "
                     "--delay > 0")
    users = USERS[: args.users]
    configs = tuple(replace(c, receipt_delay=args.delay) if c.receipt_delay else c
                    for c in CONFIGS)
    logging.basicConfig(level=logging.WARNING)

    print("blindrelay metadata benchmark: what a recording relay reconstructs")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{len(users)} users, {args.edges} contact pairs, {messages} texts per "
          f"configuration at mean gaps of {args.gap:g} s, {rounds} round(s) from seed "
          f"{args.seed}; receipt delay D = {args.delay:g} s; the analyst looks back "
          f"{REACTION:g} s (+ D with the delay, which it is told), weights fall off "
          f"past D over {SHARPNESS * 1000:.0f} ms")
    results = []
    started = time.monotonic()
    for number in range(rounds):
        seed = args.seed + number
        results.append(asyncio.run(harvest(seed, configs, messages, args.gap, users,
                                           args.edges)))
        print(f"round {number + 1} (seed {seed}) done, {time.monotonic() - started:.0f} s",
              flush=True)
    print()
    report(results)
    print(f"done: {rounds} round(s) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
