"""metadata-harvest: what a relay that records everything it can see live can still
reconstruct of who talks to whom (issue 12, item 4). For the teaching demo, the tests
and bench/metadata.py ONLY; `blindrelay serve` never loads it.

Three parts:

- `HarvestingRelay`: the real relay (server/relay.py, through HostileRelay, which
  changes nothing here) with a tap on every connection. It records, with exact
  monotonic times, what the relay's own code paths see: each connection opening and
  closing with its peer address and port, each login, each frame it reads (type,
  recipients, envelope sizes, the SHA-256 of a SEALED_SEND's capability, the target
  of FETCH_BUNDLE, LOOKUP_IDENTITY and KT_LOOKUP), each frame it writes (a DELIVER:
  to which connection, logged in as whom, its size), and the account each connection
  is logged in as at that moment (the relay holds that in memory). Nothing is modelled:
  the figures come from the real client and relay code.
- `reconstruct`: an analyst that turns a recording into an undirected contact graph,
  with a confidence and the reasons for each edge (`Edge`), and `score` against the
  true graph.
- A scripted group (`play_group`, `harvest`): users, a seeded contact graph, contacts
  set up in a phase recorded apart ("setup"), then chat phases under the three
  configurations of `CONFIGS`, each recorded and analysed on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import math
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.client import Client
from client.records import Direction, State
from client.sanitize import one_line
from client.store import KdfParams
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import (
    Ack,
    Deliver,
    FetchBundle,
    GroupSend,
    KtLookup,
    LookupIdentity,
    SealedSend,
    Send,
    Sent,
    decode_client_frame,
    decode_server_frame,
)
from server.config import ServerConfig
from server.relay import Connection, Relay, Transport
from server.serve import running_relay
from teaching.hostile import HostileRelay
from teaching.names import Scenario

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
EDGES = 10
"""The scripted group: 8 users, 10 contact pairs (a seeded random graph)."""

HARVEST_KDF = KdfParams(opslimit=2, memlimit=16 * 1024 * 1024)
"""Real encrypted profiles, with a light Argon2id (as the demo's), deleted at the end."""

REACTION = 0.25
"""Seconds the analyst allows between what a client was pushed (a DELIVER) or
acknowledged and the sealed connection it opens because of it: a receipt, or an answer
sent at once. On the 2-core test machine a client's receipt left 2-10 ms after its ACK;
the margin is for a loaded machine."""

RECEIPT_DELAY = 5.0
"""D of the third configuration: each automatic receipt waits a uniformly random 0..D
seconds. 5 s fits a run of a few tens of seconds in which someone sends every 0.4 s on
average, so ~12 other events fall in one receipt's window; a deployment with real
traffic rates would use minutes."""

SHARPNESS = 0.05
"""Seconds: how fast a candidate's weight falls off past the receipt delay."""

NONE_WEIGHT = 0.1
"""The weight of "no candidate explains this send" (it was a text sent at a random
time): a lone candidate 0.25 s back gets little evidence, one 3 ms back nearly 1."""

LOOKUP = "of the other's name"
"""The reason given for an edge from a FETCH_BUNDLE, LOOKUP_IDENTITY or KT_LOOKUP."""

MIN_EVIDENCE = 1.5
"""A timing-only edge is guessed when its evidence (below) reaches this much, i.e. more
than one unambiguous coincidence, and twice the median over all pairs (the noise floor:
most pairs of people are not contacts)."""


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    sealed: bool
    receipt_delay: float


AUTHENTICATED = Config("authenticated", sealed=False, receipt_delay=0.0)
SEALED = Config("sealed", sealed=True, receipt_delay=0.0)
SEALED_DELAYED = Config("sealed + receipt delay", sealed=True, receipt_delay=RECEIPT_DELAY)
CONFIGS = (AUTHENTICATED, SEALED, SEALED_DELAYED)


# -- the recorder


@dataclass(frozen=True, slots=True)
class Observation:
    """One thing the relay saw. `at`: seconds since the recording started. `account`:
    who the connection was logged in as at that moment (None: not logged in)."""

    at: float
    what: str
    """OPEN, CLOSE, LOGIN, IN (a frame read) or OUT (a frame written)."""
    conn: int
    address: str | None
    port: int | None
    account: str | None
    phase: str
    frame: str = ""
    recipients: tuple[str, ...] = ()
    target: str | None = None
    sizes: tuple[int, ...] = ()
    capabilities: tuple[str, ...] = ()
    """A SEALED_SEND's SHA-256(capability) per envelope, first 16 hex digits each (what
    the relay checks against the recipient's)."""
    envelopes: tuple[bytes, ...] = ()
    """Envelope ids: those a DELIVER pushes or an ACK names."""


class Recording:
    """Every observation, in order, each tagged with the phase it was made in."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.phase = "setup"
        self.observations: list[Observation] = []

    def begin(self, phase: str) -> None:
        self.phase = phase

    def add(self, what: str, tap: _Tap, **details: Any) -> None:
        self.observations.append(Observation(self.clock() - self.start, what, tap.number,
                                             tap.address, tap.port, tap.account,
                                             self.phase, **details))

    def of(self, phase: str) -> list[Observation]:
        return [o for o in self.observations if o.phase == phase]


class _Tap:
    """The relay's view of one WebSocket: passes everything through unchanged, and
    records each frame the relay writes to it."""

    def __init__(self, ws: Any, recording: Recording, number: int) -> None:
        self.ws = ws
        self.recording = recording
        self.number = number
        peer = getattr(ws, "remote_address", None)
        self.remote_address = peer
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.port = int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else None
        self.conn: Connection | None = None

    @property
    def account(self) -> str | None:
        return None if self.conn is None else self.conn.username

    def __aiter__(self) -> Any:
        return self.ws.__aiter__()

    async def send(self, message: bytes) -> None:
        try:
            _, frame = decode_server_frame(message)
        except ProtocolError:
            frame = None
        if isinstance(frame, Deliver):  # GROUP_DELIVER too
            self.recording.add("OUT", self, frame=type(frame).__name__,
                               sizes=(len(message),), envelopes=(frame.envelope_id,))
        elif frame is not None:
            self.recording.add("OUT", self, frame=type(frame).__name__,
                               sizes=(len(message),))
        await self.ws.send(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


class HarvestingRelay(HostileRelay):
    """The honest relay's code, tapped: `recording` holds everything it observed."""

    def __init__(self, *args: Any, behaviour: Scenario = Scenario.METADATA_HARVEST,
                 **kwargs: Any) -> None:
        super().__init__(*args, behaviour=behaviour, **kwargs)
        self.recording = Recording(self.monotonic)
        self._numbers = itertools.count(1)

    async def _send(self, frame: Send, sender: str) -> Sent:
        """The honest relay's SEND, not HostileRelay's (which stores one by one)."""
        return await Relay._send(self, frame, sender)

    async def handle(self, ws: Transport) -> None:
        tap = _Tap(ws, self.recording, next(self._numbers))
        self.recording.add("OPEN", tap)
        try:
            await super().handle(tap)
        finally:
            self.recording.add("CLOSE", tap)

    async def _on_message(self, conn: Connection, message: bytes | str) -> None:
        tap = conn.ws
        assert isinstance(tap, _Tap)
        tap.conn = conn
        if isinstance(message, bytes):
            self._record_in(tap, message)
        before = conn.username
        await super()._on_message(conn, message)
        if before is None and conn.username is not None:
            self.recording.add("LOGIN", tap)

    def _record_in(self, tap: _Tap, message: bytes) -> None:
        try:
            _, frame = decode_client_frame(message)
        except ProtocolError:
            self.recording.add("IN", tap, frame="undecodable", sizes=(len(message),))
            return
        details: dict[str, Any] = {"frame": type(frame).__name__, "sizes": (len(message),)}
        if isinstance(frame, Send):
            details.update(recipients=tuple(e.recipient for e in frame.envelopes),
                           sizes=tuple(len(e.body) for e in frame.envelopes))
        elif isinstance(frame, GroupSend):
            details.update(recipients=frame.recipients, sizes=(len(frame.message),))
        elif isinstance(frame, SealedSend):
            details.update(recipients=tuple(e.recipient for e in frame.envelopes),
                           sizes=tuple(len(e.body) for e in frame.envelopes),
                           capabilities=tuple(hashlib.sha256(e.capability).hexdigest()[:16]
                                              for e in frame.envelopes))
        elif isinstance(frame, FetchBundle | LookupIdentity | KtLookup):
            details.update(target=frame.username)
        elif isinstance(frame, Ack):
            details.update(envelopes=frame.envelope_ids)
        self.recording.add("IN", tap, **details)


# -- the analyst

SENDS = {"Send": "SEND", "GroupSend": "GROUP_SEND"}
"""Frames that carry envelopes on a logged-in connection: the sender is the account."""
PUSHES = ("Deliver", "GroupDeliver")

Pair = tuple[str, str]


def pair(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


@dataclass
class Edge:
    """A guessed contact. `confidence` 1.0: the relay knows it (it saw the sender's
    account, or a lookup by one of the name of the other); below 1: timing."""

    pair: Pair
    confidence: float
    reasons: list[str] = field(default_factory=list)

    @property
    def certain(self) -> bool:
        return self.confidence >= 1.0


@dataclass
class Reconstruction:
    edges: dict[Pair, Edge]
    accounts: set[str]
    evidence: dict[Pair, float]
    """Timing evidence per pair, guessed or not."""

    def guessed(self, certain_only: bool = False) -> set[Pair]:
        return {p for p, e in self.edges.items() if e.certain or not certain_only}


def reconstruct(observations: Sequence[Observation], delay: float = 0.0,
                use_addresses: bool = False) -> Reconstruction:
    """The contact graph a relay can infer from `observations`.

    Certain (confidence 1): a SEND or GROUP_SEND on a connection logged in as A to B;
    a FETCH_BUNDLE, LOOKUP_IDENTITY or KT_LOOKUP of B by A. With `use_addresses`: a
    SEALED_SEND from an address that only A's logged-in connections came from, to B.

    Timing, for each SEALED_SEND to B left: the accounts (other than B) whose
    connections were pushed a DELIVER or sent an ACK within `delay` + REACTION seconds
    before the sending connection opened are the candidates. Each is weighted by how
    well its last such event explains the send: 1 within `delay` (the clients' receipt
    delay, which the analyst is assumed to know: the worst case), then falling off
    exponentially with time constant SHARPNESS; a candidate's share is its weight over
    the sum of the weights plus NONE_WEIGHT (for "none of them": a text, not a
    receipt). A pair's evidence is the sum both ways; it is guessed an edge when the evidence is
    at least MIN_EVIDENCE and twice the median over all pairs. Its confidence: its
    evidence over itself plus the average pair's (capped below 1)."""
    accounts = {o.account for o in observations if o.account is not None}
    edges: dict[Pair, Edge] = {}

    def know(a: str, b: str, reason: str) -> None:
        if a == b:
            return
        edge = edges.setdefault(pair(a, b), Edge(pair(a, b), 1.0))
        edge.confidence = 1.0
        if reason not in edge.reasons:
            edge.reasons.append(reason)

    opened: dict[int, float] = {}
    addresses: dict[str, set[str]] = {}
    for o in observations:
        if o.what == "OPEN":
            opened[o.conn] = o.at
        if o.account is not None and o.address is not None:
            addresses.setdefault(o.address, set()).add(o.account)
    activity: list[tuple[float, str]] = []  # (time, account) of pushes to it and its ACKs
    sealed: list[tuple[float, str, str | None]] = []  # (anchor, recipient, address)
    for o in observations:
        if o.what == "IN" and o.frame in ("Send", "GroupSend") and o.account is not None:
            for r in o.recipients:
                know(o.account, r, f"authenticated {SENDS[o.frame]}")
        elif o.what == "IN" and o.target is not None and o.account is not None:
            know(o.account, o.target, f"{o.frame} {LOOKUP}")
        elif o.what == "IN" and o.frame == "SealedSend":
            anchor = opened.get(o.conn, o.at)
            sealed += [(anchor, r, o.address) for r in o.recipients]
        if o.account is not None and ((o.what == "OUT" and o.frame in PUSHES)
                                      or (o.what == "IN" and o.frame == "Ack")):
            activity.append((o.at, o.account))
    evidence: dict[Pair, float] = {}
    for anchor, recipient, address in sealed:
        owners = addresses.get(address or "", set()) - {recipient}
        if use_addresses and len(owners) == 1:
            know(next(iter(owners)), recipient, "sealed SEND from that account's address")
            continue
        weights: dict[str, float] = {}
        for t, a in activity:
            gap = anchor - t
            if a != recipient and 0 <= gap <= delay + REACTION:
                weight = math.exp(-max(0.0, gap - delay) / SHARPNESS)
                weights[a] = max(weights.get(a, 0.0), weight)
        total = sum(weights.values()) + NONE_WEIGHT
        for a, weight in weights.items():
            p = pair(a, recipient)
            evidence[p] = evidence.get(p, 0.0) + weight / total
    every = [evidence.get(pair(a, b), 0.0) for a, b in itertools.combinations(accounts, 2)]
    floor = statistics.median(every) if every else 0.0
    mean = statistics.fmean(every) if every else 0.0
    for p, e in evidence.items():
        if p in edges or e < MIN_EVIDENCE or e < 2 * floor:
            continue
        edges[p] = Edge(p, min(0.99, e / (e + mean)),
                        [f"timing ({e:.1f} sealed envelopes' worth; an average pair "
                         f"{mean:.1f})"])
    return Reconstruction(edges, accounts, evidence)


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float
    guessed: int
    right: int
    true: int


def score(guessed: set[Pair], truth: set[Pair]) -> Score:
    """Precision (of the guessed edges, how many are true; 1.0 when none is guessed:
    nothing false was claimed) and recall (of the true edges, how many were guessed)."""
    right = len(guessed & truth)
    return Score(right / len(guessed) if guessed else 1.0,
                 right / len(truth) if truth else 1.0, len(guessed), right, len(truth))


# -- drawing it


def draw(users: Sequence[str], truth: set[Pair], found: Reconstruction) -> list[str]:
    """The reconstructed graph as plain text: an adjacency matrix (`#` a true edge the
    relay knows, `%` one it guessed by timing, `o` a true edge it missed, `x` a guessed
    edge that is false, `.` neither), then the guessed edges with their reasons. Names
    are sanitised (client/sanitize.py) and cut to 8 characters."""
    names = [one_line(u)[:8] for u in users]
    width = max(len(n) for n in names) + 1
    lines = [" " * width + " ".join(n[:3].ljust(3) for n in names)]
    for u, name in zip(users, names, strict=True):
        cells = []
        for v in users:
            p = pair(u, v)
            edge = found.edges.get(p)
            mark = "."
            if u == v:
                mark = " "
            elif edge is not None:
                mark = ("#" if edge.certain else "%") if p in truth else "x"
            elif p in truth:
                mark = "o"
            cells.append(mark.ljust(3))
        lines.append(name.ljust(width) + " ".join(cells).rstrip())
    lines.append("# known  % guessed by timing  o true, missed  x guessed, false")
    for p in sorted(found.edges):
        edge = found.edges[p]
        verdict = "true" if p in truth else "FALSE"
        lines.append(f"{one_line(p[0])} - {one_line(p[1])}: {verdict}, "
                     f"confidence {edge.confidence:.2f}, {'; '.join(edge.reasons)}")
    missed = sorted(truth - set(found.edges))
    if missed:
        lines.append("missed: " + ", ".join(f"{one_line(a)} - {one_line(b)}"
                                            for a, b in missed))
    return lines


def follow_ups(observations: Sequence[Observation]) -> tuple[int, int, float | None]:
    """How many sealed connections opened within REACTION seconds after another
    account's DELIVER or ACK, of how many; and the median of those gaps (seconds)."""
    activity = [o.at for o in observations if o.account is not None and (
        (o.what == "OUT" and o.frame in PUSHES) or (o.what == "IN" and o.frame == "Ack"))]
    sending = {o.conn for o in observations if o.frame == "SealedSend"}
    gaps = []
    for o in observations:
        if o.what == "OPEN" and o.conn in sending:
            before = [o.at - t for t in activity if 0 <= o.at - t <= REACTION]
            if before:
                gaps.append(min(before))
    return len(gaps), len(sending), statistics.median(gaps) if gaps else None


def explain(config: Config, observations: Sequence[Observation]) -> str:
    """Why the relay did as well as it did, in the recording's own numbers."""
    if not config.sealed:
        return ("Every text and every receipt came by SEND on its sender's logged-in "
                "connection: the relay does not guess, it reads the graph off its own "
                "request handler.")
    near, total, gap = follow_ups(observations)
    text = (f"No sealed SEND came on a logged-in connection: the relay knows no edge for "
            f"certain. But {near} of the {total} sealed connections opened within "
            f"{REACTION:g} s of a DELIVER to, or an ACK from, one of the users")
    if gap is not None:
        text += f" (median {gap * 1000:.0f} ms after it)"
    if config.receipt_delay:
        return (text + f": with receipts held a random 0-{config.receipt_delay:g} s, "
                "those are mostly other traffic, and the pairs the relay guesses from them "
                "are few and less sure.")
    return (text + ": the automatic DELIVERED receipt leaves as soon as the message is "
            "stored, so a push to one user followed at once by a sealed send to another "
            "pairs them.")


# -- the scripted group


def contact_graph(rng: random.Random, users: Sequence[str] = USERS,
                  edges: int = EDGES) -> set[Pair]:
    """A seeded random graph in which everyone has at least one contact."""
    order = list(users)
    rng.shuffle(order)
    graph = {pair(order[i], order[i + 1]) for i in range(0, len(order) - 1, 2)}
    if len(order) % 2:
        graph.add(pair(order[-1], order[0]))
    rest = [p for p in itertools.combinations(sorted(users), 2) if p not in graph]
    rng.shuffle(rest)
    for p in rest[: max(0, edges - len(graph))]:
        graph.add(p)
    return graph


def configure(client: Client, config: Config) -> None:
    """The client's own knobs (client/client.py): sealed sending and receipt delay."""
    client.sealed_sending = config.sealed
    client.receipt_delay = config.receipt_delay


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"metadata-harvest: waited too long for {what}")
        await asyncio.sleep(0.02)


def _got(client: Client, sender: str, text: str) -> bool:
    return any(m.direction is Direction.IN and m.text == text
               for m in client.history(sender, 1000))


async def introduce(clients: dict[str, Client], graph: set[Pair]) -> None:
    """First contact for every pair, one way and back: sessions, pinned keys and
    whatever the clients exchange at first contact."""
    for a, b in sorted(graph):
        for sender, recipient in ((a, b), (b, a)):
            text = f"hello {recipient}, it's {sender}"
            await clients[sender].send_text(recipient, text)
            arrived = functools.partial(_got, clients[recipient], sender, text)
            await _wait(arrived, 20, f"{sender}'s first message to {recipient}")


async def chat(clients: dict[str, Client], graph: set[Pair], rng: random.Random,
               messages: int, mean_gap: float, settle: float) -> None:
    """`messages` texts (at least one each way on every edge), at exponentially
    distributed gaps; then waits until each was received and its DELIVERED receipt came
    back (up to `settle` seconds beyond the usual)."""
    plan = [(a, b) for a, b in sorted(graph)] + [(b, a) for a, b in sorted(graph)]
    edges = sorted(graph)
    while len(plan) < messages:
        a, b = rng.choice(edges)
        plan.append((a, b) if rng.random() < 0.5 else (b, a))
    rng.shuffle(plan)
    sent = []
    for number, (sender, recipient) in enumerate(plan):
        message = await clients[sender].send_text(recipient, f"message {number}")
        sent.append((sender, message.row_id))
        await asyncio.sleep(rng.expovariate(1 / mean_gap))

    def delivered() -> bool:
        for sender, row_id in sent:
            message = clients[sender].message(row_id)
            if message is None or message.state not in (State.DELIVERED, State.READ):
                return False
        return True

    await _wait(delivered, 20 + settle, "every receipt")


@dataclass
class PhaseResult:
    config: Config
    shared: Score
    """Users share an address (proxy, Tor, NAT, or loopback): addresses not used."""
    shared_certain: Score
    """The same, counting only edges the relay knows (confidence 1)."""
    own: Score
    """Each user has an address of its own, which the analyst uses."""
    reconstruction: Reconstruction
    """What the relay reconstructs with users sharing an address."""
    own_reconstruction: Reconstruction
    observations: int
    seconds: float


@dataclass
class HarvestResult:
    users: tuple[str, ...]
    truth: set[Pair]
    first_contact: Score
    """What the setup phase's key fetches and lookups alone reveal."""
    first_contact_all: Score
    """Every edge the setup phase reveals for certain."""
    first_contact_reconstruction: Reconstruction
    phases: list[PhaseResult]


async def play_group(relay: HarvestingRelay, clients: dict[str, Client], truth: set[Pair],
                     rng: random.Random, configs: Iterable[Config] = CONFIGS,
                     messages: int = 30, mean_gap: float = 0.4,
                     say: Callable[[str], None] = lambda _s: None) -> HarvestResult:
    """The script on running clients: first contact (recorded as "setup"), then one chat
    phase per configuration, each recorded and analysed on its own."""
    recording = relay.recording
    recording.begin("setup")
    for client in clients.values():
        configure(client, SEALED)  # the default: first contact as a client makes it
    await introduce(clients, truth)
    setup = reconstruct(recording.of("setup"))
    first = score({p for p, e in setup.edges.items() if any(LOOKUP in r for r in e.reasons)},
                  truth)
    first_all = score(setup.guessed(certain_only=True), truth)
    say(f"First contact: the relay saw {len(recording.of('setup'))} things (the "
        "registrations too). The key bundle fetches and directory lookups alone name "
        f"{first.right} of the {first.true} pairs: who asked for whose keys. With the "
        f"first messages, it knows {first_all.right} for certain.")
    phases = []
    users = sorted(clients)
    for config in configs:
        for client in clients.values():
            configure(client, config)
        recording.begin(config.name)
        started = time.monotonic()
        await chat(clients, truth, rng, messages, mean_gap, config.receipt_delay)
        seen = recording.of(config.name)
        shared = reconstruct(seen, config.receipt_delay)
        own = reconstruct(seen, config.receipt_delay, use_addresses=True)
        result = PhaseResult(config, score(shared.guessed(), truth),
                             score(shared.guessed(certain_only=True), truth),
                             score(own.guessed(), truth), shared, own, len(seen),
                             time.monotonic() - started)
        phases.append(result)
        say(f"Configuration '{config.name}': {messages} texts and their receipts; the "
            f"relay recorded {len(seen)} observations. Reconstructed (users sharing an "
            f"address): precision {result.shared.precision:.2f}, recall "
            f"{result.shared.recall:.2f}; edges it knows for certain: "
            f"{result.shared_certain.right} of {len(truth)}.")
        for line in draw(users, truth, shared):
            say("  " + line)
        say(explain(config, seen))
    return HarvestResult(tuple(users), truth, first, first_all, setup, phases)


@contextlib.asynccontextmanager
async def group(users: Sequence[str], workdir: Path, own_addresses: bool = True
                ) -> AsyncIterator[tuple[HarvestingRelay, dict[str, Client]]]:
    """A HarvestingRelay on a free loopback port and one real client per user, each
    (with `own_addresses`) connecting from its own loopback address, 127.0.0.10 on."""
    config = ServerConfig(port=0, data_dir=workdir / "relay")
    clients: dict[str, Client] = {}
    factory = functools.partial(HarvestingRelay, behaviour=Scenario.METADATA_HARVEST)
    async with running_relay(config, factory) as running:
        relay = running.relay
        assert isinstance(relay, HarvestingRelay)
        try:
            for number, name in enumerate(users):
                client = Client.create(workdir / name, name, running.url,
                                       secrets.token_bytes(16), HARVEST_KDF)
                clients[name] = client
                options = {"local_addr": (f"127.0.0.{10 + number}", 0)} if own_addresses \
                    else {}
                await client.connect(**options)
                await asyncio.wait_for(client.queue_done.wait(), 20)
            yield relay, clients
        finally:
            for client in clients.values():
                await client.disconnect()
                client.close()


async def harvest(seed: int, configs: Iterable[Config] = CONFIGS, messages: int = 30,
                  mean_gap: float = 0.4, users: Sequence[str] = USERS, edges: int = EDGES,
                  workdir: Path | None = None, say: Callable[[str], None] = lambda _s: None
                  ) -> HarvestResult:
    """One seeded round: a fresh relay and group, first contact, then each config."""
    rng = random.Random(seed)
    truth = contact_graph(rng, users, edges)
    base = Path(tempfile.mkdtemp(prefix="blindrelay-harvest-")) if workdir is None \
        else workdir
    try:
        async with group(users, base) as (relay, clients):
            return await play_group(relay, clients, truth, rng, configs, messages,
                                    mean_gap, say)
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def spread(values: Sequence[float], digits: int = 2) -> str:
    """median (min-max), as the benchmarks print figures."""
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")
