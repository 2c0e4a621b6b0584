"""Cluster throughput benchmark (issue 14 item 4): one and two relay processes on
PostgreSQL + NATS against one process on embedded SQLite, in the same run.

    .venv/bin/python bench/cluster.py                  # K = 10, 2 KiB, 3 paired rounds
    .venv/bin/python bench/cluster.py --quick          # one short round
    .venv/bin/python bench/cluster.py --pairs 10 100 --repeat 5

Setups, each started afresh for every run:

* sqlite x1: `blindrelay serve` on SQLite in a fresh data directory (the default);
* pg x1: one process with `--storage postgresql://…` on a fresh database;
* pg+nats x2: two processes on one fresh database and one port (SO_REUSEPORT), with
  `--bus nats://…/<fresh name>`; the kernel spreads the connections over both, so a
  sender and its receiver are often on different processes and the envelope reaches
  the receiver through the bus and a read of its queue (server/cluster.py).

The load is bench/relay.py's own load generator (its `--loadgen` role, the same
frames and the same counting): K sender/receiver pairs, each sender with `--inflight`
SENDs outstanding, each receiver ACKing what it gets; envelopes/s counts DELIVERs
received in the window (sent -> delivered). The relay processes are pinned to one
CPU and the load generators to another where there are two (`--no-pin` to leave
scheduling alone); PostgreSQL and NATS run wherever the system puts them and their
CPU is part of the "others" column. On a 2-core machine two relay processes share
the relay's one core, so the two-process figure shows what the cluster costs, not
how it scales: on more cores give each process its own (`--server-cpus 0 1`).

Each round runs the three setups back to back in an order that rotates from round to
round; each round gives the ratios pg x1 / sqlite x1 and pg+nats x2 / sqlite x1 from
its own runs, and the table prints the median ratio with its minimum and maximum, and
the throughput as the median with its minimum and maximum. Nothing is best-of.
Needs PostgreSQL (BLINDRELAY_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432/
postgres, where it creates and drops a database per run) and NATS
(BLINDRELAY_BENCH_NATS, default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench._support import (
    BENCH_SERVE_ARGS,
    Child,
    child,
    cpu_seconds,
    exit_on_sigterm,
    machine_busy_seconds,
    machine_note,
    percentile,
    raise_nofile,
    script_role,
)
from bench.relay import NS, SERVER_ARGS, pin_process, split

RELAY_SCRIPT = _BENCH_DIR / "relay.py"
POSTGRES = os.environ.get("BLINDRELAY_BENCH_POSTGRES",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
NATS = os.environ.get("BLINDRELAY_BENCH_NATS", "nats://127.0.0.1:4222")
SETUPS = ("sqlite x1", "pg x1", "pg+nats x2")
BASE = "sqlite x1"


@dataclass
class Measured:
    env_per_s: float
    sent_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # summed over relay processes, in cores
    other_cpu: float  # everything else but the load generators (PostgreSQL, NATS...)
    errors: dict[str, int]


def _db_url(name: str) -> str:
    base, _, query = POSTGRES.partition("?")
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _admin(sql: str) -> None:
    asyncpg: Any = importlib.import_module("asyncpg")  # no type hints of its own
    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = "blindrelay_bench_" + secrets.token_hex(6)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _db_url(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def relays(setup: str, tmp: Path) -> Iterator[tuple[list[Child], str]]:
    """The relay process(es) of `setup`, listening; their URL."""
    port = free_port()
    argv = [sys.executable, "-m", "blindrelay", "serve", "--host", "127.0.0.1", "--port",
            str(port), "--data", str(tmp / "data"), "--log-level", "WARNING",
            *BENCH_SERVE_ARGS, *SERVER_ARGS]
    with contextlib.ExitStack() as stack:
        if setup != BASE:
            argv += ["--storage", stack.enter_context(fresh_database())]
        count = 2 if setup.endswith("x2") else 1
        if count > 1:
            argv += ["--bus", f"{NATS}/bench-{secrets.token_hex(4)}"]
        procs = []
        for n in range(count):  # one after the other: the first creates the key files
            proc = stack.enter_context(child(f"relay{n}", argv, tmp / f"relay{n}.log"))
            proc.expect("blindrelay relay listening on ", 60)
            procs.append(proc)
        yield procs, f"ws://127.0.0.1:{port}"


def drive(setup: str, pairs: int, size: int, args: argparse.Namespace, tmp: Path
          ) -> Measured:
    with relays(setup, tmp) as (servers, url), contextlib.ExitStack() as stack:
        gens = [stack.enter_context(script_role(
                    RELAY_SCRIPT, f"loadgen{n}", "--loadgen", "--target", "ours", "--url", url,
                    "--first", str(first), "--count", str(count), "--size", str(size),
                    "--inflight", str(args.inflight), "--ack-delay", "0",
                    log=tmp / f"loadgen{n}.log"))
                for n, (first, count) in enumerate(split(pairs, args.procs))]
        for gen in gens:
            gen.expect("READY", 180)
        for n, server in enumerate(servers):
            pin_process(server.pid, args.server_cpus[n % len(args.server_cpus)]
                        if args.server_cpus else None)
        for gen in gens:
            pin_process(gen.pid, args.loadgen_cpu)
        warmup, seconds = int(args.warmup * NS), int(args.seconds * NS)
        start = time.monotonic_ns() + NS // 5
        for gen in gens:
            gen.tell(f"GO {start} {warmup} {seconds}")
        time.sleep(max(0.0, (start + warmup - time.monotonic_ns()) / NS))
        srv0 = [cpu_seconds(s.pid) for s in servers]
        gen0 = [cpu_seconds(g.pid) for g in gens]
        busy0 = machine_busy_seconds()
        time.sleep(max(0.0, (start + warmup + seconds - time.monotonic_ns()) / NS))
        srv1 = [cpu_seconds(s.pid) for s in servers]
        gen1 = [cpu_seconds(g.pid) for g in gens]
        busy1 = machine_busy_seconds()
        results = [json.loads(gen.expect("RESULT ", 60 + args.seconds)) for gen in gens]
    server_cpu = sum(b - a for a, b in zip(srv0, srv1, strict=True)) / args.seconds
    gen_cpu = sum(b - a for a, b in zip(gen0, gen1, strict=True)) / args.seconds
    latencies = sorted(x for r in results for x in r["latencies_us"])
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    return Measured(
        env_per_s=sum(r["delivered"] for r in results) / args.seconds,
        sent_per_s=sum(r["sent"] for r in results) / args.seconds,
        p50_ms=percentile(latencies, 0.50) / 1000, p99_ms=percentile(latencies, 0.99) / 1000,
        server_cpu=server_cpu,
        other_cpu=max(0.0, (busy1 - busy0) / args.seconds - server_cpu - gen_cpu),
        errors=dict(errors))


def _spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main(args: argparse.Namespace) -> int:
    exit_on_sigterm()
    raise_nofile()
    if args.quick:
        args.warmup, args.seconds = min(args.warmup, 0.5), min(args.seconds, 1.5)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.no_pin or len(allowed) < 2:
        args.server_cpus, args.loadgen_cpu = [], None
    else:
        args.server_cpus = args.server_cpus or [allowed[0]]
        args.loadgen_cpu = allowed[-1] if args.loadgen_cpu is None else args.loadgen_cpu
    print(f"blindrelay cluster benchmark: {', '.join(SETUPS)} x {args.repeat} round(s); "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s measured; {args.inflight} SEND(s) "
          f"in flight per sender; {args.procs} load generator process(es)")
    print(f"machine: {machine_note()}; Python {platform.python_version()}")
    if args.server_cpus:
        print(f"relay processes pinned to CPU(s) {args.server_cpus}, load generators to CPU "
              f"{args.loadgen_cpu}; PostgreSQL and NATS unpinned (in 'others').")
    tmp_root = Path(tempfile.mkdtemp(prefix="blindrelay-cluster-bench-"))
    table: list[tuple[int, int, dict[str, list[Measured]]]] = []
    started = time.monotonic()
    try:
        for pairs in args.pairs:
            for size in args.sizes:
                runs: dict[str, list[Measured]] = {s: [] for s in SETUPS}
                for rep in range(args.repeat):
                    order = SETUPS[rep % 3:] + SETUPS[:rep % 3]
                    for setup in order:
                        tmp = Path(tempfile.mkdtemp(dir=tmp_root))
                        try:
                            m = drive(setup, pairs, size, args, tmp)
                        finally:
                            shutil.rmtree(tmp, ignore_errors=True)
                        runs[setup].append(m)
                        print(f"  K={pairs:<3} {size:>5} B round {rep + 1} {setup:10}: "
                              f"{m.env_per_s:7.0f} env/s (SENT/s {m.sent_per_s:.0f})  "
                              f"p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:7.2f} ms  cpu relays "
                              f"{m.server_cpu:4.0%} others {m.other_cpu:4.0%}"
                              + (f"  ERRORS {m.errors}" if m.errors else ""), flush=True)
                table.append((pairs, size, runs))
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    print()
    print(f"medians of {args.repeat} round(s) (min-max); machine now: {machine_note()}")
    head = (f"{'K':>4} {'size':>6} | {'setup':10} | {'env/s delivered':>20} | "
            f"{'ratio to sqlite x1':>18} | {'p50/p99 ms':>15} | cpu relays/others")
    print(head)
    print("-" * len(head))
    for pairs, size, runs in table:
        for setup in SETUPS:
            ms = runs[setup]
            ratios = [m.env_per_s / b.env_per_s if b.env_per_s else float("nan")
                      for m, b in zip(ms, runs[BASE], strict=True)]
            p50 = statistics.median(m.p50_ms for m in ms)
            p99 = statistics.median(m.p99_ms for m in ms)
            print(f"{pairs:>4} {size:>6} | {setup:10} | "
                  f"{_spread([m.env_per_s for m in ms], '.0f'):>20} | "
                  f"{_spread(ratios, '.2f'):>18} | {p50:>6.2f} / {p99:<6.2f} | "
                  f"{statistics.median(m.server_cpu for m in ms):.0%}/"
                  f"{statistics.median(m.other_cpu for m in ms):.0%}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, nargs="+", default=[10], metavar="K",
                   help="sender/receiver pairs (default 10)")
    p.add_argument("--sizes", type=int, nargs="+", default=[2048], metavar="BYTES",
                   help="envelope body sizes (default 2048)")
    p.add_argument("--inflight", type=int, default=4,
                   help="SEND frames outstanding per sender (default 4)")
    p.add_argument("--seconds", type=float, default=4.0, help="measured window (default 4)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before it (default 1)")
    p.add_argument("--repeat", type=int, default=None,
                   help="rounds, medians kept (default 3; 1 with --quick)")
    p.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    p.add_argument("--server-cpus", type=int, nargs="+", default=None, metavar="CPU",
                   help="CPUs for the relay processes, one each in turn (default: the first)")
    p.add_argument("--loadgen-cpu", type=int, default=None,
                   help="CPU for the load generators (default: the last allowed)")
    p.add_argument("--no-pin", action="store_true", help="pin nothing")
    p.add_argument("--quick", action="store_true",
                   help="0.5 s warm-up, 1.5 s windows, one round unless --repeat")
    args = p.parse_args(argv)
    if (args.repeat or 1) < 1 or args.inflight < 1 or min(args.sizes) < 8:
        p.error("--repeat and --inflight >= 1, sizes >= 8 bytes")
    return args


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        print("interrupted; processes, databases and temporary files cleaned up",
              file=sys.stderr)
        sys.exit(130)
