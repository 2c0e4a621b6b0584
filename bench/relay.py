"""Relay throughput benchmark (issue 3, "Benchmarks (not timed tests)").

    .venv/bin/python bench/relay.py                 # K = 1, 10, 100 x 200 B, 2 KiB; ~2.5 min
    .venv/bin/python bench/relay.py --quick         # one short run each, ~35 s
    .venv/bin/python bench/relay.py --inflight 16 --pairs 100 --sizes 200
    .venv/bin/python bench/relay.py --ack-delay 10  # receivers ACK every 10 ms

For each configuration (K sender/receiver pairs, envelope body size) it starts, each
in its own process on a loopback port:

* ours: `blindrelay serve` (real SQLite WAL storage in a fresh temporary data dir,
  rate limit raised to 60000 frames/s, queue limit 100000, abuse budgets and the
  per-address connection cap off: bench/_support.py BENCH_SERVE_ARGS), and
* bare: a websockets forwarder (no auth, no storage, compression off) that relays
  each binary message of sender connection i to receiver connection i and answers
  the sender with the message's 6-byte header (the stand-in for SENT),

and drives it from load-generator processes (this script again, `--procs` of them,
each with a share of the pairs). Every pair is one sender and one receiver
connection; on ours both register first (the receiver stays logged in). A sender
keeps `--inflight` SEND frames outstanding (distinct request ids) and sends the next
when a SENT comes back, i.e. when the envelope is durably committed. A receiver ACKs
what it gets. By default (`--ack quiet`) with quiet ACKs (request id 0, no answer:
docs/PROTOCOL.md 16.5), one for every id that arrived since the last, sent once it has
read everything its socket held (one id per ACK at low load, a batch under load), so
an envelope costs three frames plus a share of an ACK. That is what the real client
does (client/connection.py `ack_committed`: one quiet ACK per committed page of
DELIVERs). With one SEND in flight per sender a receiver never holds more than one
unacknowledged envelope, so its ACKs carry one id each (the "ids/ACK" figure): four
frames per envelope against the forwarder's three (`--inflight` above 1 lets
DELIVERs arrive together and share an ACK). With `--ack ok`, numbered ACKs answered
by OK, one outstanding per receiver, the next carrying every id that arrived meanwhile (what
clients did before the quiet ACK); with `--ack-delay MS`, one ACK every MS
milliseconds.

Real clients send only the envelope size classes of docs/PROTOCOL.md section 10.1,
2048 bytes and up: the 2 KiB runs are what every short message costs, the 200 B runs
show the per-frame floor.

Each body starts with the send time (CLOCK_MONOTONIC ns, shared by all processes);
latency is send -> DELIVER read at the receiver. Envelopes/s counts the DELIVERs
received during a window of `--seconds` after `--warmup`; SENT/s counts the
acknowledged sends in that window, and a warning is printed where the relay
acknowledged markedly more than it delivered live. The server, the load generators
and the forwarder share the machine's CPUs, and other work on the machine shares them
too (the "others" CPU figure, from /proc/stat). To keep the two sides apart, the
server (ours or the forwarder) is pinned to one CPU and the load generators to another
(`--server-cpu`, `--loadgen-cpu`; default 0 and 1 where there are two CPUs, every
thread of each process; `--no-pin` to leave scheduling alone). `--repeat N` (default 3)
runs N paired rounds per configuration, ours and bare back to back in an order that
alternates from one round to the next; each round gives a ratio ours/bare from its own
two runs, and the table prints the median ratio over the rounds with its minimum and
maximum, and every other figure as the median over the rounds (throughput with its
minimum and maximum). Nothing is best-of.
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
import json
import os
import platform
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.version import version as websockets_version

from bench._support import (
    Child,
    cpu_seconds,
    exit_on_sigterm,
    machine_busy_seconds,
    machine_note,
    percentile,
    raise_nofile,
    relay_server,
    script_role,
)
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import (
    Ack,
    Deliver,
    Error,
    Hello,
    Ok,
    Outgoing,
    QueueDone,
    Register,
    Send,
    Sent,
    decode_server_frame,
    encode_frame,
    normalize_url,
    register_statement,
)

SCRIPT = Path(__file__).resolve()
AIM = 0.8
AIM_LARGE = 0.6
"""Issue 14: ours/bare at K = AIM_K, at least AIM, and AIM_LARGE for bodies of
LARGE bytes and more."""
LARGE = 64 * 1024
AIM_K = 100
SERVER_ARGS = ("--rate", "60000", "--burst", "60000", "--max-queue", "100000")
SETUP_CONCURRENCY = 50
MAX_ACK_IDS = 4096
STAMP_LEN = 8
NS = 1_000_000_000

T_SENT, T_DELIVER, T_OK, T_ERROR = Sent.TYPE, Deliver.TYPE, Ok.TYPE, Error.TYPE
DELIVER_BODY_AT = 6 + 16 + 8 + 4  # header, envelope id, received-at, body length
NO_REQUEST = b"\x00\x00\x00\x00"


# -- load generator (a child process) ---------------------------------------------


@dataclass
class Window:
    start: int  # CLOCK_MONOTONIC ns: senders start
    measure_from: int
    measure_to: int  # senders stop


@dataclass
class Stats:
    delivered: int = 0  # in the window
    sent: int = 0  # SENT answers in the window
    total_delivered: int = 0
    total_sent: int = 0
    latencies_us: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    acks: int = 0
    acked_ids: int = 0

    def on_delivery(self, stamp: int, window: Window) -> None:
        now = time.monotonic_ns()
        self.total_delivered += 1
        if window.measure_from <= now < window.measure_to:
            self.delivered += 1
            self.latencies_us.append((now - stamp) // 1000)

    def on_sent(self, window: Window) -> None:
        self.total_sent += 1
        if window.measure_from <= time.monotonic_ns() < window.measure_to:
            self.sent += 1


async def _bounded(items: Sequence[Any], fn: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(item: Any) -> Any:
        async with gate:
            return await fn(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def ours_register(url: str, username: str) -> ClientConnection:
    """Opens a connection, registers `username` (which logs it in) and waits for the
    end of the (empty) queue drain. Uses the documented frames only."""
    ws = await connect(url, compression=None, max_size=None)
    _, hello = decode_server_frame(await ws.recv(decode=False))
    assert isinstance(hello, Hello)
    identity = IdentityKeyPair.generate()
    signature = identity.sign(register_statement(normalize_url(url), hello.challenge,
                                                 username, identity.public))
    await ws.send(encode_frame(Register(username, identity.public, signature), 1))
    while True:
        request_id, frame = decode_server_frame(await ws.recv(decode=False))
        if request_id == 1 and isinstance(frame, Error):
            raise RuntimeError(f"register {username}: {frame.code} {frame.message}")
        if isinstance(frame, QueueDone):
            return ws


def send_template(recipient: str, size: int) -> tuple[bytes, bytes]:
    """A SEND frame for one envelope of `size` bytes is head[:2] || request id ||
    rest || body; returns (head[:2], rest), checked against encode_frame."""
    probe = bytes(size)
    frame = encode_frame(Send((Outgoing(recipient, probe),)), 0x01020304)
    assert frame.endswith(probe) and frame[2:6] == b"\x01\x02\x03\x04"
    return frame[:2], frame[6:len(frame) - size]


async def ours_sender(ws: ClientConnection, recipient: str, size: int, inflight: int,
                      window: Window, stats: Stats) -> None:
    head, rest = send_template(recipient, size)
    pad = os.urandom(size - STAMP_LEN)
    slots = asyncio.Semaphore(inflight)

    async def answers() -> None:
        async for msg in ws:
            assert isinstance(msg, bytes)
            if msg[2:6] == NO_REQUEST:  # PREKEYS_LOW after registering
                continue
            if msg[1] == T_SENT:
                stats.on_sent(window)
            else:
                stats.errors[_error_name(msg)] += 1
            slots.release()

    reader = asyncio.get_running_loop().create_task(answers())
    request_id = 0
    try:
        await _sleep_until(window.start)
        while True:
            await slots.acquire()
            now = time.monotonic_ns()
            if now >= window.measure_to:
                break
            request_id += 1
            await ws.send(b"".join((head, request_id.to_bytes(4, "big"), rest,
                                    now.to_bytes(STAMP_LEN, "big"), pad)))
    finally:
        reader.cancel()


class OursReceiver:
    """Reads DELIVERs and ACKs them. Without a timer (ack_delay 0): at once if no ACK is
    outstanding, else with the next one (batches form under load). With a timer, the
    load generator's single `ack_timer` task sends each receiver's pending ids."""

    ACK_HEAD = bytes((1, Ack.TYPE))

    def __init__(self, ws: ClientConnection, window: Window, stats: Stats, timed: bool,
                 quiet: bool = False) -> None:
        self.ws = ws
        self.window = window
        self.stats = stats
        self.timed = timed
        self.quiet = quiet
        self.pending: list[bytes] = []
        self.ack_outstanding = False
        self.request_id = 0
        self.flush_due = False
        self.sending: set[asyncio.Task[None]] = set()

    def take(self) -> list[bytes]:
        ids, self.pending = self.pending[:MAX_ACK_IDS], self.pending[MAX_ACK_IDS:]
        self.stats.acks += 1
        self.stats.acked_ids += len(ids)
        return ids

    async def quiet_ack(self, ids: list[bytes]) -> None:
        """Request id 0: no answer comes."""
        await self.ws.send(b"".join((self.ACK_HEAD, NO_REQUEST, len(ids).to_bytes(2, "big"),
                                     *ids)))

    async def ack(self) -> None:
        ids = self.take()
        if self.quiet:
            await self.quiet_ack(ids)
            return
        self.request_id += 1
        self.ack_outstanding = True
        await self.ws.send(b"".join((self.ACK_HEAD, self.request_id.to_bytes(4, "big"),
                                     len(ids).to_bytes(2, "big"), *ids)))

    def flush(self) -> None:
        """Quiet ACKs: runs once the reader has taken every frame its socket held."""
        self.flush_due = False
        while self.pending:
            task = asyncio.get_running_loop().create_task(self.quiet_ack(self.take()))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    async def run(self) -> None:
        stats, window = self.stats, self.window
        async for msg in self.ws:
            assert isinstance(msg, bytes)
            kind = msg[1]
            if kind == T_DELIVER:
                stats.on_delivery(int.from_bytes(
                    msg[DELIVER_BODY_AT:DELIVER_BODY_AT + STAMP_LEN], "big"), window)
                self.pending.append(msg[6:22])
                if self.timed:
                    continue
                if self.quiet:
                    if not self.flush_due:
                        self.flush_due = True
                        asyncio.get_running_loop().call_soon(self.flush)
                elif not self.ack_outstanding:
                    await self.ack()
            elif msg[2:6] != NO_REQUEST:  # the answer to an ACK
                if kind != T_OK:
                    stats.errors[_error_name(msg)] += 1
                self.ack_outstanding = False
                if not self.timed and self.pending:
                    await self.ack()


async def ack_timer(receivers: list[OursReceiver], delay: float) -> None:
    while True:
        await asyncio.sleep(delay)
        for receiver in receivers:
            while receiver.pending:
                await receiver.ack()


def _error_name(msg: bytes) -> str:
    try:
        _, frame = decode_server_frame(msg)
    except Exception:
        return f"undecodable frame type {msg[1]:#x}"
    if isinstance(frame, Error):
        return f"{frame.code}: {frame.message}"
    return type(frame).__name__


async def bare_sender(ws: ClientConnection, size: int, inflight: int, window: Window,
                      stats: Stats) -> None:
    head = bytes((1, Send.TYPE))
    pad = os.urandom(size - STAMP_LEN)
    slots = asyncio.Semaphore(inflight)

    async def answers() -> None:
        async for _ in ws:
            stats.on_sent(window)
            slots.release()

    reader = asyncio.get_running_loop().create_task(answers())
    request_id = 0
    try:
        await _sleep_until(window.start)
        while True:
            await slots.acquire()
            now = time.monotonic_ns()
            if now >= window.measure_to:
                break
            request_id += 1
            await ws.send(b"".join((head, request_id.to_bytes(4, "big"),
                                    now.to_bytes(STAMP_LEN, "big"), pad)))
    finally:
        reader.cancel()


async def bare_receiver(ws: ClientConnection, window: Window, stats: Stats) -> None:
    async for msg in ws:
        assert isinstance(msg, bytes)
        stats.on_delivery(int.from_bytes(msg[6:6 + STAMP_LEN], "big"), window)


async def _sleep_until(ns: int) -> None:
    delay = (ns - time.monotonic_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)


async def _stdin_line() -> str:
    line = str(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    if not line:
        raise SystemExit("benchmark went away")
    return line.strip()


async def loadgen_main(args: argparse.Namespace) -> None:
    raise_nofile()
    pairs = range(args.first, args.first + args.count)
    url = args.url
    if args.target == "ours":
        receivers = await _bounded(pairs, lambda i: ours_register(url, f"rcv{i:05d}"))
        senders = await _bounded(pairs, lambda i: ours_register(url, f"snd{i:05d}"))
    else:
        async def bare_receiver_open(i: int) -> ClientConnection:
            ws = await connect(f"{url}/r/{i}", compression=None, max_size=None)
            if await ws.recv(decode=False) != b"ready":
                raise RuntimeError("forwarder did not confirm the receiver")
            return ws

        receivers = await _bounded(pairs, bare_receiver_open)
        senders = await _bounded(pairs, lambda i: connect(f"{url}/s/{i}", compression=None,
                                                          max_size=None))
    print("READY", flush=True)
    start, warmup, seconds = (int(x) for x in (await _stdin_line()).split()[1:])
    window = Window(start, start + warmup, start + warmup + seconds)
    stats = Stats()
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    timed: list[OursReceiver] = []
    for i, (send_ws, recv_ws) in enumerate(zip(senders, receivers, strict=True)):
        if args.target == "ours":
            receiver = OursReceiver(recv_ws, window, stats, timed=args.ack_delay > 0,
                                    quiet=args.ack == "quiet")
            timed.append(receiver)
            tasks.append(loop.create_task(receiver.run()))
            tasks.append(loop.create_task(ours_sender(send_ws, f"rcv{pairs[i]:05d}", args.size,
                                                      args.inflight, window, stats)))
        else:
            tasks.append(loop.create_task(bare_receiver(recv_ws, window, stats)))
            tasks.append(loop.create_task(bare_sender(send_ws, args.size, args.inflight, window,
                                                      stats)))
    if args.target == "ours" and args.ack_delay > 0:
        tasks.append(loop.create_task(ack_timer(timed, args.ack_delay / 1000)))
    cpu0 = time.process_time()
    await _sleep_until(window.measure_from)
    cpu1 = time.process_time()
    await _sleep_until(window.measure_to)
    cpu2 = time.process_time()
    await asyncio.sleep(0.2)  # late deliveries are not counted; let them land quietly
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    failed = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
    for exc in failed[:3]:
        stats.errors[f"task failed: {exc!r}"] += 1
    result = {
        "delivered": stats.delivered, "sent": stats.sent,
        "total_delivered": stats.total_delivered, "total_sent": stats.total_sent,
        "latencies_us": stats.latencies_us, "errors": dict(stats.errors),
        "acks": stats.acks, "acked_ids": stats.acked_ids,
        "cpu_window": cpu2 - cpu1, "cpu_warmup": cpu1 - cpu0,
    }
    print("RESULT " + json.dumps(result), flush=True)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(*(ws.close() for ws in (*senders, *receivers)),
                           return_exceptions=True), 5)


# -- the bare forwarder (a child process) -----------------------------------------


async def forwarder_main() -> None:
    receivers: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        role, _, pair = ws.request.path.strip("/").partition("/")
        if role == "r":
            receivers[pair] = ws
            await ws.send(b"ready")
            try:
                await ws.wait_closed()
            finally:
                if receivers.get(pair) is ws:
                    del receivers[pair]
        elif role == "s":
            async for msg in ws:
                peer = receivers.get(pair)
                if peer is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await peer.send(msg)
                await ws.send(msg[:6])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"bare forwarder listening on ws://127.0.0.1:{port}", flush=True)
        await stop.wait()


# -- the benchmark ----------------------------------------------------------------


@dataclass
class Measured:
    env_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # fraction of one core during the window
    loadgen_cpu: float  # summed over load generators
    other_cpu: float  # everything else on the machine, in cores
    sent_per_s: float
    errors: dict[str, int]
    ids_per_ack: float


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) shares of range(total) over `parts` load generators."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    out, first = [], 0
    for p in range(parts):
        count = base + (1 if p < extra else 0)
        out.append((first, count))
        first += count
    return out


def drive(target: str, url: str, server: Child, pairs: int, size: int,
          args: argparse.Namespace, procs: int, tmp: Path) -> Measured:
    with contextlib.ExitStack() as stack:
        gens = [
            stack.enter_context(script_role(
                SCRIPT, f"loadgen{n}", "--loadgen", "--target", target, "--url", url,
                "--first", str(first), "--count", str(count), "--size", str(size),
                "--inflight", str(args.inflight), "--ack-delay", str(args.ack_delay),
                "--ack", args.ack,
                log=tmp / f"loadgen{n}.log"))
            for n, (first, count) in enumerate(split(pairs, procs))
        ]
        for gen in gens:
            gen.expect("READY", 180)
        pin_process(server.pid, args.pin_server)
        for gen in gens:
            pin_process(gen.pid, args.pin_loadgen)
        warmup, seconds = int(args.warmup * NS), int(args.seconds * NS)
        start = time.monotonic_ns() + NS // 5
        for gen in gens:
            gen.tell(f"GO {start} {warmup} {seconds}")
        pids = [server.pid, *(g.pid for g in gens)]
        time.sleep(max(0.0, (start + warmup - time.monotonic_ns()) / NS))
        cpu0 = [cpu_seconds(pid) for pid in pids]
        busy0 = machine_busy_seconds()
        time.sleep(max(0.0, (start + warmup + seconds - time.monotonic_ns()) / NS))
        cpu1 = [cpu_seconds(pid) for pid in pids]
        busy1 = machine_busy_seconds()
        results = [json.loads(gen.expect("RESULT ", 60 + args.seconds)) for gen in gens]
    cpu = [(b - a) / args.seconds for a, b in zip(cpu0, cpu1, strict=True)]
    latencies = sorted(x for r in results for x in r["latencies_us"])
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    acks = sum(r["acks"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    return Measured(
        env_per_s=delivered / args.seconds,
        p50_ms=percentile(latencies, 0.50) / 1000,
        p99_ms=percentile(latencies, 0.99) / 1000,
        server_cpu=cpu[0], loadgen_cpu=sum(cpu[1:]),
        other_cpu=max(0.0, (busy1 - busy0) / args.seconds - sum(cpu)),
        sent_per_s=sum(r["sent"] for r in results) / args.seconds,
        errors=dict(errors),
        ids_per_ack=sum(r["acked_ids"] for r in results) / acks if acks else 0.0,
    )


def measure(target: str, pairs: int, size: int, args: argparse.Namespace, procs: int,
            tmp_root: Path) -> Measured:
    tmp = Path(tempfile.mkdtemp(prefix=f"{target}-k{pairs}-s{size}-", dir=tmp_root))
    try:
        if target == "ours":
            with relay_server(tmp / "data", *SERVER_ARGS, *args.relay_arg,
                              log=tmp / "relay.log") as (srv, url):
                return drive(target, url, srv, pairs, size, args, procs, tmp)
        with script_role(SCRIPT, "forwarder", "--forwarder", log=tmp / "forwarder.log") as fwd:
            url = fwd.expect("bare forwarder listening on ", 30)
            return drive(target, url, fwd, pairs, size, args, procs, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pin_process(pid: int, cpu: int | None) -> None:
    """Pins every thread of process `pid` to `cpu` (threads it starts later inherit it)."""
    if cpu is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), {cpu})


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU), or (None, None) where pinning is off or there
    are not two CPUs to pin to."""
    if args.no_pin or not hasattr(os, "sched_setaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    server = allowed[0] if args.server_cpu is None else args.server_cpu
    loadgen = allowed[1] if args.loadgen_cpu is None else args.loadgen_cpu
    return server, loadgen


@dataclass(frozen=True)
class Rounds:
    """The paired rounds of one configuration."""
    ours: list[Measured]
    bare: list[Measured]

    def ratios(self) -> list[float]:
        return [o.env_per_s / b.env_per_s if b.env_per_s else float("nan")
                for o, b in zip(self.ours, self.bare, strict=True)]

    @staticmethod
    def median(runs: list[Measured], attr: str) -> float:
        return float(statistics.median(getattr(m, attr) for m in runs))


def _spread(values: list[float], fmt: str) -> str:
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-"
            f"{max(values):{fmt}})")


def _fmt_size(size: int) -> str:
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def main(args: argparse.Namespace) -> int:
    exit_on_sigterm()
    raise_nofile()
    if args.quick:
        args.warmup, args.seconds = min(args.warmup, 0.5), min(args.seconds, 1.5)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    configs = [(k, s) for k in args.pairs for s in args.sizes]
    args.pin_server, args.pin_loadgen = choose_cpus(args)
    print(f"blindrelay relay benchmark: {len(configs)} configurations x ours/bare x "
          f"{args.repeat} paired round(s); {args.warmup:g} s warm-up + {args.seconds:g} s "
          f"measured each; {args.inflight} SEND(s) in flight per sender")
    print(f"machine: {machine_note()}; Python {platform.python_version()}, websockets "
          f"{websockets_version}")
    print("server, load generator(s) and forwarder are separate processes sharing these CPUs "
          "(with anything else running on the machine): figures are lower bounds.")
    if args.pin_server is not None:
        print(f"server/forwarder pinned to CPU {args.pin_server}, load generators to CPU "
              f"{args.pin_loadgen}; ours and bare alternate within each round.")
    else:
        print("nothing pinned; ours and bare alternate within each round.")
    kind = "quiet ACKs (request id 0, no answer)" if args.ack == "quiet" else \
        "numbered ACKs (answered by OK)"
    if args.ack_delay > 0:
        print(f"receivers send {kind} every {args.ack_delay:g} ms, each carrying every id "
              "delivered since the previous one.", flush=True)
    elif args.ack == "quiet":
        print(f"receivers send {kind}: each carries every id read since the last one, sent "
              "once the socket's data is read.", flush=True)
    else:
        print("receivers ACK at once: one ACK outstanding per receiver, the next carrying every "
              "id delivered meanwhile.", flush=True)
    rows: list[tuple[int, int, int, Rounds]] = []
    tmp_root = Path(tempfile.mkdtemp(prefix="blindrelay-bench-"))
    started = time.monotonic()
    try:
        for k, size in configs:
            procs = args.procs if args.procs > 0 else (2 if k >= 10 else 1)
            runs: dict[str, list[Measured]] = {"ours": [], "bare": []}
            for rep in range(args.repeat):
                for target in ("ours", "bare") if rep % 2 == 0 else ("bare", "ours"):
                    m = measure(target, k, size, args, procs, tmp_root)
                    runs[target].append(m)
                    print(f"  K={k:<3} {_fmt_size(size):>6} round {rep + 1} {target:4}: "
                          f"{m.env_per_s:8.0f} env/s  p50 {m.p50_ms:6.2f} ms  p99 "
                          f"{m.p99_ms:6.2f} ms  cpu server {m.server_cpu:4.0%} loadgen "
                          f"{m.loadgen_cpu:4.0%} ({procs} proc) others {m.other_cpu:4.0%}"
                          + (f"  SENT/s {m.sent_per_s:.0f}  ids/ACK {m.ids_per_ack:.1f}"
                             if target == "ours" else "")
                          + (f"  ERRORS {m.errors}" if m.errors else ""), flush=True)
            rows.append((k, size, procs, Rounds(runs["ours"], runs["bare"])))
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    print()
    print(f"medians of {args.repeat} paired round(s) (min-max), {args.inflight} in flight per "
          f"sender, {args.seconds:g} s windows; machine now: {machine_note()}")
    head = (f"{'K':>4} {'size':>6} | {'ours/bare':>16} | {'ours env/s':>17} "
            f"{'bare env/s':>19} | {'ours p50/p99 ms':>15} | {'bare p50/p99 ms':>15} | "
            f"{'ours SENT/s':>11} | cpu srv/gen/others: ours, bare")
    print(head)
    print("-" * len(head))
    med = Rounds.median
    for k, size, procs, r in rows:
        o, b = r.ours, r.bare
        print(f"{k:>4} {_fmt_size(size):>6} | {_spread(r.ratios(), '.2f'):>16} | "
              f"{_spread([m.env_per_s for m in o], '.0f'):>17} "
              f"{_spread([m.env_per_s for m in b], '.0f'):>19} | "
              f"{med(o, 'p50_ms'):>6.2f} / {med(o, 'p99_ms'):<6.2f} | "
              f"{med(b, 'p50_ms'):>6.2f} / {med(b, 'p99_ms'):<6.2f} | "
              f"{med(o, 'sent_per_s'):>11.0f} | "
              f"{med(o, 'server_cpu'):.0%}/{med(o, 'loadgen_cpu'):.0%}/{med(o, 'other_cpu'):.0%}, "
              f"{med(b, 'server_cpu'):.0%}/{med(b, 'loadgen_cpu'):.0%}/{med(b, 'other_cpu'):.0%} "
              f"({procs} gen)")
    for k, size, _, r in rows:
        for m in r.ours:
            if m.env_per_s < 0.98 * m.sent_per_s:
                print(f"WARNING K={k} {_fmt_size(size)}: ours acknowledged {m.sent_per_s:.0f} "
                      f"envelopes/s (SENT) but delivered only {m.env_per_s:.0f}/s live in one "
                      "round; the rest stayed queued")
    for large, aim in ((False, AIM), (True, AIM_LARGE)):
        aim_ratios = [statistics.median(r.ratios()) for k, size, _, r in rows
                      if k == AIM_K and (size >= LARGE) == large]
        if aim_ratios:
            worst = min(aim_ratios)
            verdict = "met" if worst >= aim else "NOT met"
            what = f"bodies >= {_fmt_size(LARGE)}" if large else f"bodies < {_fmt_size(LARGE)}"
            print(f"aim ours/bare >= {aim} at K={AIM_K}, {what}: {verdict} (lowest median "
                  f"{worst:.2f})")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, nargs="+", default=[1, 10, 100], metavar="K",
                   help="sender/receiver pair counts (default 1 10 100)")
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 2048], metavar="BYTES",
                   help="envelope body sizes (default 200 2048)")
    p.add_argument("--inflight", type=int, default=1,
                   help="SEND frames outstanding per sender (default 1)")
    p.add_argument("--ack-delay", type=float, default=0.0, metavar="MS",
                   help="receivers ACK every MS milliseconds instead of at once (default 0: "
                   "at once, or with the next ACK while one is outstanding)")
    p.add_argument("--ack", choices=("quiet", "ok"), default="quiet",
                   help="quiet: ACKs with request id 0, which get no answer (default); ok: "
                   "numbered ACKs answered by OK, one outstanding per receiver")
    p.add_argument("--relay-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for `blindrelay serve` (repeat it), e.g. "
                   "--relay-arg=--event-loop --relay-arg=asyncio")
    p.add_argument("--seconds", type=float, default=4.0, help="measured window (default 4)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before it (default 1)")
    p.add_argument("--repeat", type=int, default=None,
                   help="paired rounds per configuration, medians kept (default 3; 1 with "
                   "--quick)")
    p.add_argument("--server-cpu", type=int, default=None,
                   help="CPU for the server or forwarder (default: the first allowed)")
    p.add_argument("--loadgen-cpu", type=int, default=None,
                   help="CPU for the load generators (default: the second allowed)")
    p.add_argument("--no-pin", action="store_true", help="pin nothing")
    p.add_argument("--procs", type=int, default=0,
                   help="load-generator processes (default: 1 for K < 10, else 2)")
    p.add_argument("--quick", action="store_true",
                   help="0.5 s warm-up, 1.5 s windows, one round unless --repeat")
    # helper roles: this script started again by the benchmark
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--forwarder", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--target", choices=("ours", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=200, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.sizes) < STAMP_LEN or args.inflight < 1 or (args.repeat or 1) < 1:
        p.error(f"sizes must be >= {STAMP_LEN} bytes, --inflight and --repeat >= 1")
    return args


if __name__ == "__main__":
    parsed = parse_args()
    try:
        if parsed.forwarder:
            asyncio.run(forwarder_main())
            sys.exit(0)
        if parsed.loadgen:
            asyncio.run(loadgen_main(parsed))
            sys.exit(0)
        sys.exit(main(parsed))
    except KeyboardInterrupt:
        print("interrupted; processes and temporary files cleaned up", file=sys.stderr)
        sys.exit(130)
