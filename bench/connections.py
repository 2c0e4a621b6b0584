"""Idle-connection memory benchmark (issue 3, "Benchmarks (not timed tests)").

    .venv/bin/python bench/connections.py                      # 10,000 connections, ~1 min
    .venv/bin/python bench/connections.py --connections 2000   # shorter

Starts `blindrelay serve` as its own process on a loopback port, opens `--connections`
idle connections to it from a separate client process (more than one if the open-file
limit requires it), each one registered (REGISTER logs the connection in), and reads
the server's VmRSS from /proc/PID/status before and after: the difference divided by
the number of connections is the memory an idle authenticated connection costs. Then
every connection is checked: a WebSocket ping must get its pong, and (ours only) a
PREKEY_COUNT request must be answered, which the relay does only for a logged-in
connection.

The same is then measured for a bare websockets server (a handler that only reads,
compression off), in its own process, for comparison. The "before" figure is taken
after a few warm-up connections, so one-time allocations are not counted per
connection. Aim: <= 24 KiB per idle connection for ours.

`--rounds N` (default 3) repeats the pair, ours and bare alternating within each round
(which goes first alternates too), so both see the same machine; the summary is the
median over the rounds with its minimum and maximum, for each server and for the
per-round ratio ours/bare (never the best round). Where there are two CPUs, the server
is pinned to one and the client processes to the other (`--no-pin` to leave
scheduling alone).
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
import contextlib
import math
import os
import platform
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.version import version as websockets_version

from bench._support import (
    Child,
    exit_on_sigterm,
    machine_note,
    raise_nofile,
    relay_server,
    rss_kib,
    script_role,
)
from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair

SCRIPT = Path(__file__).resolve()
AIM_KIB = 24.0
WARMUP = 32
SETTLE_SECONDS = 1.0
FD_MARGIN = 200
CHECK_TIMEOUT = 60.0


# -- the client process -------------------------------------------------------------


class Clients:
    """The connections of one client process, for one target."""

    def __init__(self, target: str, url: str, prefix: str, concurrency: int) -> None:
        self.target = target
        self.url = url
        self.prefix = prefix
        self.gate = asyncio.Semaphore(concurrency)
        self.ours: list[RelayConnection] = []
        self.bare: list[ClientConnection] = []
        self.failures: list[str] = []
        self.serial = 0

    async def _open_one(self) -> None:
        self.serial += 1
        name = f"{self.prefix}{self.serial:06d}"
        async with self.gate:
            try:
                if self.target == "ours":
                    conn = await RelayConnection.open(self.url)
                    try:
                        await conn.register(name, IdentityKeyPair.generate())
                    except BaseException:
                        await conn.close()
                        raise
                    self.ours.append(conn)
                else:
                    self.bare.append(await connect(self.url, compression=None))
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    async def open(self, count: int) -> None:
        await asyncio.gather(*(self._open_one() for _ in range(count)))

    def sockets(self) -> list[ClientConnection]:
        return [c.ws for c in self.ours] if self.target == "ours" else list(self.bare)

    async def _bounded(self, fn: Callable[[Any], Awaitable[object]], items: list[Any]) -> int:
        async def one(item: Any) -> bool:
            async with self.gate:
                try:
                    await asyncio.wait_for(fn(item), CHECK_TIMEOUT)
                    return True
                except Exception:
                    return False

        return sum(await asyncio.gather(*(one(item) for item in items)))

    async def pings(self) -> int:
        async def ping(ws: ClientConnection) -> None:
            await (await ws.ping())

        return await self._bounded(ping, self.sockets())

    async def logged_in(self) -> int:
        async def ask(conn: RelayConnection) -> None:
            await conn.prekey_counts()

        return await self._bounded(ask, self.ours)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(ws.close() for ws in self.sockets()), return_exceptions=True),
                30)


async def _command() -> str:
    line = str(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    if not line:
        raise SystemExit("benchmark went away")
    return line.strip()


async def client_main(args: argparse.Namespace) -> None:
    raise_nofile()
    warm = Clients(args.target, args.url, f"w{args.prefix}x", args.concurrency)
    await warm.open(args.warmup)
    if warm.failures:
        raise SystemExit(f"warm-up connections failed: {warm.failures[:3]}")
    print("WARM", flush=True)
    await _command()
    main = Clients(args.target, args.url, f"c{args.prefix}x", args.concurrency)
    started = time.monotonic()
    await main.open(args.count)
    print(f"OPENED {len(main.sockets())} {len(main.failures)} {time.monotonic() - started:.2f}"
          f" {main.failures[0] if main.failures else ''}", flush=True)
    await _command()
    started = time.monotonic()
    pongs = await main.pings()
    logged_in = await main.logged_in() if args.target == "ours" else -1
    print(f"CHECKED {pongs} {logged_in} {time.monotonic() - started:.2f}", flush=True)
    await _command()
    await main.close()
    await warm.close()


# -- the bare server process ---------------------------------------------------------


async def bare_server_main() -> None:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"bare server listening on ws://127.0.0.1:{port}", flush=True)
        await stop.wait()


# -- the benchmark -------------------------------------------------------------------


@dataclass
class Result:
    target: str
    opened: int
    failed: int
    open_seconds: float
    rss_before: int
    rss_after: int
    pongs: int
    logged_in: int
    check_seconds: float

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after - self.rss_before) / self.opened if self.opened else math.nan


@contextlib.contextmanager
def server_for(target: str, tmp: Path, connections: int) -> Iterator[tuple[Child, str]]:
    if target == "ours":
        # the relay's total cap (10,000 by default) must admit the warm-up connections
        # too, or the last WARMUP of a 10,000 run are refused by design, not by memory
        cap = str(connections + WARMUP + 64)
        with relay_server(tmp / "data", "--max-connections", cap,
                          log=tmp / "relay.log") as (proc, url):
            yield proc, url
        return
    with script_role(SCRIPT, "bare server", "--bare-server", log=tmp / "bare.log") as proc:
        yield proc, proc.expect("bare server listening on ", 30)


def _pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(server CPU, clients CPU), or (None, None) without pinning or two CPUs."""
    if args.no_pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def measure(target: str, args: argparse.Namespace, tmp_root: Path, fd_limit: int) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=tmp_root))
    per_proc = max(1, fd_limit - WARMUP - FD_MARGIN)
    procs = max(1, math.ceil(args.connections / per_proc))
    shares = [args.connections // procs + (1 if p < args.connections % procs else 0)
              for p in range(procs)]
    try:
        server_cpu, clients_cpu = _cpus(args)
        with (server_for(target, tmp, args.connections) as (server, url),
              contextlib.ExitStack() as stack):
            _pin(server.pid, server_cpu)
            clients = [
                stack.enter_context(script_role(
                    SCRIPT, f"clients{p}", "--client", "--target", target, "--url", url,
                    "--count", str(share), "--prefix", f"{p}",
                    "--warmup", str(WARMUP // procs or 1),
                    "--concurrency", str(args.concurrency), log=tmp / f"clients{p}.log"))
                for p, share in enumerate(shares)
            ]
            for c in clients:
                _pin(c.pid, clients_cpu)
            for c in clients:
                c.expect("WARM", 120)
            time.sleep(SETTLE_SECONDS)
            before = rss_kib(server.pid)
            for c in clients:
                c.tell("GO")
            opened = failed = 0
            open_seconds = 0.0
            for c in clients:
                fields = c.expect("OPENED ", 600).split(maxsplit=3)
                opened += int(fields[0])
                failed += int(fields[1])
                open_seconds = max(open_seconds, float(fields[2]))
                if len(fields) > 3:
                    print(f"  {c.name}: first failure: {fields[3]}")
            time.sleep(SETTLE_SECONDS)
            after = rss_kib(server.pid)
            for c in clients:
                c.tell("CHECK")
            pongs = logged_in = 0
            check_seconds = 0.0
            for c in clients:
                got = c.expect("CHECKED ", 600).split()
                pongs += int(got[0])
                logged_in += int(got[1])
                check_seconds = max(check_seconds, float(got[2]))
            for c in clients:
                c.tell("QUIT")
            for c in clients:
                with contextlib.suppress(Exception):
                    c.proc.wait(40)
        return Result(target, opened, failed, open_seconds, before, after, pongs,
                      logged_in if target == "ours" else -1, check_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(r: Result, wanted: int) -> None:
    name = "ours (blindrelay serve)" if r.target == "ours" else "bare websockets server"
    print(f"{name}:")
    print(f"  connections opened {r.opened} of {wanted} in {r.open_seconds:.1f} s"
          + (" (each registered, i.e. logged in)" if r.target == "ours" else "")
          + (f", {r.failed} FAILED" if r.failed else ""))
    print(f"  server VmRSS {r.rss_before / 1024:.1f} MiB before, {r.rss_after / 1024:.1f} MiB "
          f"after: {r.kib_per_connection:.1f} KiB per connection")
    line = f"  answered a ping: {r.pongs} of {r.opened}"
    if r.target == "ours":
        line += f"; answered PREKEY_COUNT (logged in): {r.logged_in} of {r.opened}"
    print(line + f" (checked in {r.check_seconds:.1f} s)", flush=True)


def _spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main(args: argparse.Namespace) -> int:
    exit_on_sigterm()
    fd_limit = raise_nofile()  # inherited by the servers started below
    print(f"blindrelay idle-connection benchmark: {args.connections} connections; "
          f"open-file limit {fd_limit}; {args.rounds} paired round(s)")
    print(f"machine: {machine_note()}; Python {platform.python_version()}, websockets "
          f"{websockets_version}", flush=True)
    server_cpu, clients_cpu = _cpus(args)
    if server_cpu is not None:
        print(f"server pinned to CPU {server_cpu}, client processes to CPU {clients_cpu}")
    targets = ["ours", "bare"] if args.only is None else [args.only]
    runs: dict[str, list[Result]] = {t: [] for t in targets}
    tmp_root = Path(tempfile.mkdtemp(prefix="blindrelay-conns-"))
    started = time.monotonic()
    try:
        for round_no in range(args.rounds):
            order = targets if round_no % 2 == 0 else targets[::-1]
            print(f"round {round_no + 1}: {' then '.join(order)}", flush=True)
            for target in order:
                result = measure(target, args, tmp_root, fd_limit)
                runs[target].append(result)
                report(result, args.connections)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    ours, bare = runs.get("ours", []), runs.get("bare", [])
    print(f"\nmedian of {args.rounds} round(s) (min-max), KiB per idle connection:")
    for name, results in (("ours (authenticated)", ours), ("bare websockets", bare)):
        if results:
            print(f"  {name:22} {_spread([r.kib_per_connection for r in results])}")
    ok = True
    if ours:
        ok = all(r.pongs == r.opened == args.connections and r.logged_in == r.opened
                 for r in ours)
        median_kib = statistics.median(r.kib_per_connection for r in ours)
        ok = ok and median_kib <= AIM_KIB
        if bare:
            ratios = [o.kib_per_connection / b.kib_per_connection
                      for o, b in zip(ours, bare, strict=True)]
            print(f"  ours/bare (per round)  {_spread(ratios, '.2f')}")
        print(f"aim <= {AIM_KIB:g} KiB (median) and every connection answering in every "
              f"round: {'met' if ok else 'NOT met'}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--connections", type=int, default=10_000,
                   help="idle connections to open (default 10000)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="connections being opened (or checked) at once (default 64)")
    p.add_argument("--only", choices=("ours", "bare"), help="measure only one server")
    p.add_argument("--rounds", type=int, default=3,
                   help="paired rounds, ours and bare alternating (default 3)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server and the clients to different CPUs")
    # helper roles: this script started again by the benchmark
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--target", choices=("ours", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="0", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.connections < 1 or args.concurrency < 1 or args.rounds < 1:
        p.error("--connections, --concurrency and --rounds must be >= 1")
    return args


if __name__ == "__main__":
    parsed = parse_args()
    try:
        if parsed.bare_server:
            asyncio.run(bare_server_main())
            sys.exit(0)
        if parsed.client:
            asyncio.run(client_main(parsed))
            sys.exit(0)
        sys.exit(main(parsed))
    except KeyboardInterrupt:
        print("interrupted; processes and temporary files cleaned up", file=sys.stderr)
        sys.exit(130)
