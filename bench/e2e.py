"""End-to-end benchmark: two real clients through a real relay (issue 14 item 1).

    .venv/bin/python bench/e2e.py                   # 7 paired rounds + a 10,000 drain
    .venv/bin/python bench/e2e.py --quick           # 3 rounds, a 2,000 drain
    .venv/bin/python bench/e2e.py --rounds 11 --messages 100 --drain 0

Every party is its own process: the relay (`blindrelay serve`, real SQLite storage in a
fresh temporary directory, abuse budgets off: bench/_support.py BENCH_SERVE_ARGS)
pinned to one CPU, and two client processes (this script again, in the roles `a` and
`b`) pinned to the other, as bench/relay.py does (`--no-pin` to leave scheduling
alone).

Latency: A sends a message every `--interval` ms with the library (`Client.send_text`,
sealed sending on, as a user's client does); its text carries the send time
(CLOCK_MONOTONIC ns, shared by the processes), and B notes the latency when the
library tells its views the message arrived (the MessageEvent after its commit).

The floor, measured in the same processes on the same relay, is the least work that
delivers a message durably: A encrypts it in a Double Ratchet session
(protocol.e2e.session), seals it with a sender certificate the relay issued, commits
it and the session state in one fsync'd SQLite transaction (WAL, synchronous=FULL),
and sends it (SEND, answered SENT once the relay committed); B unseals it, verifies
the certificate, decrypts, commits the message and the session state in one fsync'd
transaction, notes the latency and then acknowledges it. No encrypted store, no
history, no receipts, no outbox.

Each round runs both (ours then floor, or floor then ours, alternating), `--messages`
each; the round's ratio is ours p50 / floor p50. The table prints the median over the
rounds with its minimum and maximum; nothing is best-of.

Drain: B goes offline, A queues `--drain` messages for it (in one transaction, then
sends them), and B logs in again: the figure is the time from B's connect until every
envelope was decrypted, committed and acknowledged (the relay then has nothing left to
deliver: B reconnects once more and must get none, which is checked).
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
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench._support import (
    Child,
    exit_on_sigterm,
    listening_url,
    machine_note,
    percentile,
    relay_server,
    script_role,
)
from client.client import Client
from client.connection import RelayConnection
from client.events import Event, MessageEvent
from client.records import Direction, Message, State
from client.store import KdfParams
from protocol.e2e.content import Text, decode_content
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import SealedContent, seal, unseal
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.frames import Deliver
from protocol.wire.prekeys import KemKind, PreKeyBundle

SCRIPT = Path(__file__).resolve()
NS = 1_000_000_000
SERVER_ARGS = ("--rate", "60000", "--burst", "60000", "--max-queue", "100000",
               "--sealed-budget", "off")
KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
"""The profiles' Argon2id is paid once at open, outside anything timed."""
PASSPHRASE = b"bench"
STAMP = "e2e "
FILL = "drain "
USERS = {"a": "alice", "b": "bob"}
AIM_P50_MS = 3.0
AIM_DRAIN_S = 5.0


# -- the floor (see the module docstring) --------------------------------------------


def make_floor_pair(path: Path) -> None:
    """Two identities and a session pair past its initial message, for the floor."""
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk_pair, spk = make_signed_prekey(bob, 1)
    kem_pair, kem = make_kem_prekey(bob, 2)
    opk_pair, opk = make_one_time_prekey(3)
    bundle = PreKeyBundle(bob.public, spk, KemKind.LAST_RESORT, kem, opk)
    keys = PrivatePrekeys(spk_pair, kem_pair, opk_pair)

    def lookup(_msg: PreKeyMessage) -> PrivatePrekeys:
        return keys

    sender = Session.initiate(alice, bundle)
    _, first = sender.encrypt(b"hello")
    receiver, _, _ = Session.respond(bob, first, lookup)
    kind, reply = receiver.encrypt(b"hello")
    sender.decrypt(kind, reply)
    path.write_text(json.dumps({
        "a_seed": alice.seed.hex(), "b_seed": bob.seed.hex(),
        "a_session": sender.serialize().hex(), "b_session": receiver.serialize().hex()}))


class FloorStore:
    """One SQLite file, WAL and synchronous=FULL as the client's store: one row per
    message and the session state, committed together."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, "
                        "data BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, "
                        "data BLOB NOT NULL)")

    def commit(self, message: bytes, state: bytes) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO messages (data) VALUES (?)", (message,))
        self.db.execute("INSERT OR REPLACE INTO state (id, data) VALUES (1, ?)", (state,))
        self.db.execute("COMMIT")


class FloorParty:
    """A floor sender or receiver: a logged-in raw connection and a session."""

    def __init__(self, home: Path, keys: dict[str, str], side: str) -> None:
        self.identity = IdentityKeyPair.from_seed(bytes.fromhex(keys[f"{side}_seed"]))
        self.peer = IdentityKeyPair.from_seed(
            bytes.fromhex(keys["b_seed" if side == "a" else "a_seed"]))
        self.session = Session.deserialize(bytes.fromhex(keys[f"{side}_session"]))
        self.name = f"floor{side}"
        self.store = FloorStore(home / f"floor-{side}.sqlite3")
        self.conn: RelayConnection | None = None
        self.certificate = b""
        self.cert_key = b""

    async def connect(self, url: str) -> RelayConnection:
        if self.conn is None or self.conn.closed.is_set():
            conn = await RelayConnection.open(url)
            try:
                await conn.register(self.name, self.identity)
            except Exception:
                await conn.close()
                conn = await RelayConnection.open(url)
                await conn.login(self.name, self.identity)
            self.cert_key = await conn.cert_key()
            self.certificate = await conn.get_certificate()
            self.conn = conn
        return self.conn

    async def send(self, stamp: int) -> None:
        assert self.conn is not None
        plaintext = Text(os.urandom(16), stamp // 1_000_000, f"{STAMP}{stamp}").encode()
        kind, message = self.session.encrypt(plaintext)
        envelope = seal(self.peer.public, SealedContent(self.certificate, kind, message))
        self.store.commit(message, self.session.serialize())
        await self.conn.send([("floorb", envelope)])

    async def receive(self, count: int) -> list[float]:
        assert self.conn is not None
        latencies: list[float] = []
        while len(latencies) < count:
            frame = await self.conn.pushes.get()
            if not isinstance(frame, Deliver):
                continue
            content = unseal(self.identity, frame.body)
            content.verify_sender(self.cert_key, time.time())
            plaintext = self.session.decrypt(content.kind, content.message)
            self.store.commit(plaintext, self.session.serialize())
            content_item = decode_content(plaintext)
            assert isinstance(content_item, Text)
            text = content_item.text
            latencies.append((time.monotonic_ns() - int(text[len(STAMP):])) / 1e6)
            await self.conn.ack([frame.envelope_id])
        return latencies


# -- the client roles (a: sends, b: receives) ------------------------------------------


class Role:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(args.home)
        self.url: str = args.url
        self.client: Client | None = None
        keys = json.loads(Path(args.floor).read_text())
        self.floor = FloorParty(self.home, keys, args.role)
        self.latencies: list[float] = []
        self.want = 0
        self.done = asyncio.Event()
        self.filled = 0
        self.seen: set[bytes] = set()

    # -- shared

    async def setup(self) -> None:
        path = self.home / self.args.role
        if path.exists():
            self.client = Client.open(path, PASSPHRASE)
        else:
            self.client = Client.create(path, USERS[self.args.role], self.url, PASSPHRASE, KDF)
        self.client.on_event(self._on_event)
        self.client.sealed_sending = not self.args.unsealed
        await self.client.connect()
        await asyncio.wait_for(self.client.queue_done.wait(), 60)
        await self.floor.connect(self.url)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, MessageEvent):
            return
        message = event.message
        if message.direction is not Direction.IN or message.state is not State.RECEIVED:
            return
        if message.message_id in self.seen:
            return
        self.seen.add(message.message_id)
        if message.text.startswith(STAMP) and self.want:
            self.latencies.append((time.monotonic_ns() - int(message.text[len(STAMP):])) / 1e6)
            if len(self.latencies) >= self.want:
                self.want = 0
                self.done.set()
        elif message.text.startswith(FILL):
            self.filled += 1

    def require(self) -> Client:
        assert self.client is not None
        return self.client

    # -- a

    async def warm(self, count: int) -> None:
        """First contact, capabilities and the first receipts: then A's messages are
        plain ratchet messages, sealed with B's capability."""
        client = self.require()
        for i in range(count):
            message = await client.send_text(USERS["b"], f"warm {i}")
            await _until(lambda m=message: _state(client, m) in (State.DELIVERED, State.READ),
                         30)
            await asyncio.sleep(0.01)

    async def send_paced(self, count: int, interval_ms: float, floor: bool) -> None:
        client = self.require()
        if floor:
            await self.floor.connect(self.url)
        step = int(interval_ms * 1e6)
        due = time.monotonic_ns()
        for _ in range(count):
            due += step
            delay = (due - time.monotonic_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = time.monotonic_ns()
            if floor:
                await self.floor.send(stamp)
            else:
                await client.send_text(USERS["b"], f"{STAMP}{stamp}")
        await asyncio.sleep(interval_ms / 1000 * 3)  # the last receipts come back

    async def fill(self, count: int) -> None:
        """Queues `count` messages for B in one transaction (as `send_text` would one
        by one), then sends them; returns once the outbox is empty."""
        client = self.require()
        await client.disconnect()
        with client.store.transaction():
            contact = client.trust.need(USERS["b"])
            record = client.sessions.load(USERS["b"])
            assert record.current is not None
            for i in range(count):
                message = Message(USERS["b"], Direction.OUT, f"{FILL}{i}", State.SENDING,
                                  message_id=os.urandom(16),
                                  sent_at_ms=int(client.clock() * 1000))
                plaintext = client.outbox.text(message.message_id, message.sent_at_ms,
                                               message.text)
                item = client.outbox.encrypt(contact, record.current, plaintext)
                item.message_row = client.messages.add(message).row_id
                client.outbox.queue(item)
            client.sessions.save(USERS["b"], record)
        await client.connect()
        await _until(lambda: not client.outbox.repo.items(), 600)

    # -- b

    async def collect(self, count: int, floor: bool) -> list[float]:
        if floor:
            await self.floor.connect(self.url)
            return await self.floor.receive(count)
        self.latencies, self.want = [], count
        self.done.clear()
        await self.done.wait()
        return self.latencies

    async def offline(self) -> None:
        await self.require().disconnect()

    async def drain(self, count: int) -> tuple[float, int]:
        """Seconds from connect until `count` envelopes were handled (committed and
        acknowledged); then how many a fresh login still gets."""
        client = self.require()
        self.filled = 0
        base = client.link.handled
        started = time.monotonic()
        await client.connect()
        await _until(lambda: client.link.handled - base >= count
                     and client.queue_done.is_set(), 900, 0.001)
        elapsed = time.monotonic() - started
        got = self.filled
        await client.disconnect()
        base = client.link.handled
        await client.connect()
        await asyncio.wait_for(client.queue_done.wait(), 60)
        await asyncio.sleep(0.5)
        again = client.link.handled - base
        if got != count:
            print(f"note {got} of {count} filled messages were shown", flush=True)
        return elapsed, again


def _state(client: Client, message: Message) -> State | None:
    found = client.message(message.row_id)
    return None if found is None else found.state


async def _until(predicate: object, timeout: float, step: float = 0.005) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met in time")
        await asyncio.sleep(step)


async def _stdin_line() -> str:
    line = str(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    if not line:
        raise SystemExit("benchmark went away")
    return line.strip()


async def role_main(args: argparse.Namespace) -> None:
    role = Role(args)
    while True:
        command, *rest = (await _stdin_line()).split()
        numbers = [float(x) for x in rest]
        if command == "setup":
            await role.setup()
            print("ok", flush=True)
        elif command == "warm":
            await role.warm(int(numbers[0]))
            print("ok", flush=True)
        elif command in ("ours", "floor") and args.role == "a":
            await role.send_paced(int(numbers[0]), numbers[1], command == "floor")
            print("ok", flush=True)
        elif command in ("ours", "floor"):
            task = asyncio.ensure_future(role.collect(int(numbers[0]), command == "floor"))
            print("armed", flush=True)
            print("lat " + ",".join(f"{x:.4f}" for x in await task), flush=True)
        elif command == "fill":
            await role.fill(int(numbers[0]))
            print("ok", flush=True)
        elif command == "offline":
            await role.offline()
            print("ok", flush=True)
        elif command == "drain":
            elapsed, again = await role.drain(int(numbers[0]))
            print(f"drain {elapsed:.4f} {again}", flush=True)
        elif command == "quit":
            if role.client is not None:
                await role.client.disconnect()
                role.client.close()
            return


# -- the benchmark -----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    p50: float
    p99: float

    @classmethod
    def of(cls, latencies: list[float]) -> Run:
        ordered = sorted(latencies)
        return cls(percentile(ordered, 0.5), percentile(ordered, 0.99))


def _spread(values: Sequence[float], fmt: str) -> str:
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-"
            f"{max(values):{fmt}})")


def pin_process(pid: int, cpu: int | None) -> None:
    """Every thread of `pid` on `cpu` (threads it starts later inherit it)."""
    if cpu is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), {cpu})


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    if args.no_pin or not hasattr(os, "sched_setaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def one_round(a: Child, b: Child, what: str, args: argparse.Namespace) -> Run:
    b.tell(f"{what} {args.messages}")
    b.expect("armed", 60)
    a.tell(f"{what} {args.messages} {args.interval}")
    latencies = [float(x) for x in b.expect("lat ", 300).split(",")]
    a.expect("ok", 300)
    return Run.of(latencies)


def main(args: argparse.Namespace) -> int:
    exit_on_sigterm()
    if args.quick:
        args.rounds, args.drain = min(args.rounds, 3), min(args.drain, 2000)
    relay_cpu, client_cpu = choose_cpus(args)
    print(f"blindrelay end-to-end benchmark: {args.rounds} paired rounds of {args.messages} "
          f"messages every {args.interval:g} ms (ours, floor), then a drain of {args.drain}")
    print(f"machine: {machine_note()}; Python {platform.python_version()}")
    if relay_cpu is not None:
        print(f"relay pinned to CPU {relay_cpu}, both client processes to CPU {client_cpu}")
    tmp = Path(tempfile.mkdtemp(prefix="blindrelay-e2e-"))
    started = time.monotonic()
    ours: list[Run] = []
    floor: list[Run] = []
    drained: tuple[float, int] | None = None
    try:
        make_floor_pair(tmp / "floor.json")
        with relay_server(tmp / "data", *SERVER_ARGS, log=tmp / "relay.log") as (srv, line):
            url = listening_url("listening on " + line)
            pin_process(srv.pid, relay_cpu)
            common = ("--url", url, "--home", str(tmp), "--floor", str(tmp / "floor.json"),
                      *(("--unsealed",) if args.unsealed else ()))
            with script_role(SCRIPT, "b", "--role", "b", *common, log=tmp / "b.log") as b, \
                    script_role(SCRIPT, "a", "--role", "a", *common, log=tmp / "a.log") as a:
                for proc in (a, b):
                    pin_process(proc.pid, client_cpu)
                b.tell("setup")
                b.expect("ok", 120)
                a.tell("setup")
                a.expect("ok", 120)
                a.tell(f"warm {args.warmup}")
                a.expect("ok", 300)
                for proc in (a, b):  # threads started since (executors) too
                    pin_process(proc.pid, client_cpu)
                for rnd in range(args.rounds):
                    order = ("ours", "floor") if rnd % 2 == 0 else ("floor", "ours")
                    for what in order:
                        run = one_round(a, b, what, args)
                        (ours if what == "ours" else floor).append(run)
                        print(f"  round {rnd + 1} {what:5}: p50 {run.p50:7.2f} ms  p99 "
                              f"{run.p99:7.2f} ms", flush=True)
                if args.drain:
                    b.tell("offline")
                    b.expect("ok", 60)
                    fill_started = time.monotonic()
                    a.tell(f"fill {args.drain}")
                    a.expect("ok", 900)
                    print(f"  {args.drain} envelopes queued for b in "
                          f"{time.monotonic() - fill_started:.1f} s", flush=True)
                    b.tell(f"drain {args.drain}")
                    took, left = b.expect("drain ", 1200).split()
                    drained = (float(took), int(left))
                for proc in (a, b):
                    proc.tell("quit")
                for proc in (a, b):  # (a profile is written as the role ends)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.proc.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    if ours:
        report_latency(ours, floor, args.rounds)
    if drained is not None:
        seconds, again = drained[0], drained[1]
        print(f"drain: {args.drain} envelopes in {seconds:.2f} s "
              f"({args.drain / seconds:.0f} msg/s); redelivered after: {again}")
        if args.drain == 10_000:
            print(f"aim drain < {AIM_DRAIN_S:g} s: "
                  f"{'met' if seconds < AIM_DRAIN_S else 'NOT met'}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


def report_latency(ours: list[Run], floor: list[Run], rounds: int) -> None:
    ratios = [o.p50 / f.p50 for o, f in zip(ours, floor, strict=True)]
    print(f"medians of {rounds} paired rounds (min-max); machine now: {machine_note()}")
    print(f"  ours  p50 {_spread([r.p50 for r in ours], '.2f')} ms   "
          f"p99 {_spread([r.p99 for r in ours], '.2f')} ms")
    print(f"  floor p50 {_spread([r.p50 for r in floor], '.2f')} ms   "
          f"p99 {_spread([r.p99 for r in floor], '.2f')} ms")
    print(f"  ours/floor (p50): {_spread(ratios, '.2f')}")
    p50 = statistics.median(r.p50 for r in ours)
    print(f"aim p50 <= {AIM_P50_MS:g} ms: {'met' if p50 <= AIM_P50_MS else 'NOT met'} "
          f"({p50:.2f} ms)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--messages", type=int, default=60, help="per run")
    p.add_argument("--interval", type=float, default=30.0, help="ms between sends")
    p.add_argument("--warmup", type=int, default=5, help="messages before timing")
    p.add_argument("--drain", type=int, default=10_000, help="0: no drain")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--unsealed", action="store_true",
                   help="clients send by SEND on their logged-in connection (sealed "
                        "sending off): what a fresh connection per flush costs")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--role", choices=("a", "b"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--floor", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    parsed = parse_args()
    if parsed.role and os.environ.get("E2E_PROFILE"):  # a cProfile of each client role
        import cProfile
        cProfile.run("asyncio.run(role_main(parsed))",
                     f"{os.environ['E2E_PROFILE']}.{parsed.role}")
    elif parsed.role:
        asyncio.run(role_main(parsed))
    else:
        sys.exit(main(parsed))
