"""The relay's budgets against one account or one address taking everyone's share
(docs/PROTOCOL.md 16.7, docs/DATA.md "Budgets").

The per-connection token bucket (16.3) bounds frames, not what they cost: one account
could take a victim's one-time prekeys in a fraction of a second, fill an offline
victim's queue so that its real contacts got QUEUE_FULL, or fill the disk; and anyone
could register accounts without end. Here, all in memory and none of it written to
disk:

- FETCH_BUNDLE: token buckets per requester and per (requester, target); RATE_LIMITED.
- SEND: token buckets on envelopes and on bytes per sender and per (sender, recipient),
  a sender's share of each recipient's queue and of the relay's storage; SENDER_BUDGET.
- REGISTER: token buckets per source address and for the whole relay;
  REGISTRATION_LIMITED.
- SEALED_SEND (PROTOCOL.md 16.10): a token bucket on envelopes per (recipient,
  capability hash), one per recipient for those sent under allow-anyone; RATE_LIMITED.
  A sealed send has no sender, so the SEND budgets above cannot apply: this bucket
  replaces them (the per-address connection cap still holds).

The global disk budget is checked by the storage inside the storing transaction
(StorageFull, STORAGE_FULL), since only it knows what is stored across restarts.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import sys
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from protocol.wire.connection import RequestRefused
from protocol.wire.frames import ErrorCode, Limits
from protocol.wire.ratelimit import TokenBucket
from server.storage import ENVELOPE_OVERHEAD, StoredEnvelope

K = TypeVar("K", bound=Hashable)

@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's refill per second and its size."""

    per_second: float
    burst: float


@dataclass(frozen=True)
class Budgets:
    """What one requester, sender or address may take. 0 or an infinite burst turns a
    budget off; the defaults let a person's clients (a group message to max_recipients,
    a burst of first messages, a queue drained and acknowledged) through untouched."""

    fetch_per_requester: Rate = Rate(2.0, 100)
    fetch_per_pair: Rate = Rate(1 / 60, 12)
    send_envelopes: Rate = Rate(50.0, 1000)
    send_bytes: Rate = Rate(1024 * 1024, 16 * 1024 * 1024)
    pair_envelopes: Rate = Rate(20.0, 500)
    pair_bytes: Rate = Rate(512 * 1024, 8 * 1024 * 1024)
    queue_share: float = 0.25
    """The fraction of a recipient's max_queue one sender's envelopes may fill."""
    storage_share: float = 0.05
    """The fraction of max_stored_bytes one sender's queued envelopes may fill."""
    max_stored_bytes: int = 1024 * 1024 * 1024
    """The global disk budget: stored envelope bodies plus ENVELOPE_OVERHEAD each."""
    max_stored_envelopes: int = 1_000_000
    """The global budget on queued envelopes, which also bounds the memory the shares
    take (a few hundred bytes per envelope queued since start-up)."""
    sealed_per_capability: Rate = Rate(2.0, 60)
    """Sealed envelopes per (recipient, capability), or per recipient under
    allow-anyone (PROTOCOL.md 16.10)."""
    register_per_address: Rate = Rate(0.2, 200)
    register_global: Rate = Rate(5.0, 1000)
    max_tracked: int = 100_000
    """Buckets kept per table; past that the full ones (which remember nothing) go,
    then the oldest."""


def envelope_cost(body: bytes | int) -> int:
    """What one envelope counts for against the byte budgets."""
    return (body if isinstance(body, int) else len(body)) + ENVELOPE_OVERHEAD


def source_key(remote: object) -> str:
    """The address a registration is counted against: the IP (an IPv6 address by its
    /64, which one machine usually holds whole), or "?" when the transport has none."""
    host = remote[0] if isinstance(remote, tuple) and remote else remote
    if not isinstance(host, str):
        return "?"
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class BucketTable(Generic[K]):
    """Token buckets by key, with bounded memory."""

    def __init__(self, rate: Rate, max_tracked: int) -> None:
        self.rate = rate
        self.max_tracked = max_tracked
        self.buckets: dict[K, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate.per_second > 0 and math.isfinite(self.rate.burst)

    def bucket(self, key: K, now: float) -> TokenBucket:
        found = self.buckets.get(key)
        if found is None:
            if len(self.buckets) >= self.max_tracked:
                self._prune(now)
            found = self.buckets[key] = TokenBucket(self.rate.per_second, self.rate.burst,
                                                    now)
        return found

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self.buckets.items() if b.full(now)]:
            del self.buckets[key]
        while len(self.buckets) >= self.max_tracked:  # forgets the oldest, leniently
            del self.buckets[next(iter(self.buckets))]


def _take_all(charges: Sequence[tuple[TokenBucket, float]], now: float) -> bool:
    """Spends every charge or none."""
    if all(bucket.can_take(now, cost) for bucket, cost in charges):
        for bucket, cost in charges:
            bucket.spend(cost)
        return True
    return False


@dataclass(slots=True)
class _Queued:
    recipient: str
    sender: str
    cost: int
    received_at: int


@dataclass
class QueueShares:
    """Which sender each envelope queued since start-up came from, while it is queued:
    enough to bound a sender's share of a recipient's queue and of the storage. Never
    written to disk; after a restart the shares count from zero."""

    by_id: dict[bytes, _Queued] = field(default_factory=dict)
    pair_count: dict[tuple[str, str], int] = field(default_factory=dict)
    sender_bytes: dict[str, int] = field(default_factory=dict)

    def add(self, sender: str, recipient: str, count: int, cost: int) -> None:
        key = (sender, recipient)
        self.pair_count[key] = self.pair_count.get(key, 0) + count
        self.sender_bytes[sender] = self.sender_bytes.get(sender, 0) + cost

    def remove(self, sender: str, recipient: str, count: int, cost: int) -> None:
        key = (sender, recipient)
        left = self.pair_count.get(key, 0) - count
        if left > 0:
            self.pair_count[key] = left
        else:
            self.pair_count.pop(key, None)
        bytes_left = self.sender_bytes.get(sender, 0) - cost
        if bytes_left > 0:
            self.sender_bytes[sender] = bytes_left
        else:
            self.sender_bytes.pop(sender, None)

    def stored(self, sender: str, env: StoredEnvelope) -> None:
        """A reserved envelope was stored: remember its sender until it leaves."""
        # interned: the names of a flood's many envelopes are held once each
        self.by_id[env.envelope_id] = _Queued(sys.intern(env.recipient), sys.intern(sender),
                                              envelope_cost(env.body), env.received_at)

    def left(self, recipient: str, envelope_ids: Iterable[bytes]) -> None:
        """Envelopes acknowledged by their recipient."""
        for envelope_id in envelope_ids:
            queued = self.by_id.get(envelope_id)
            if queued is not None and queued.recipient == recipient:
                del self.by_id[envelope_id]
                self.remove(queued.sender, recipient, 1, queued.cost)

    def expired(self, before: int) -> None:
        for envelope_id in [i for i, q in self.by_id.items() if q.received_at < before]:
            queued = self.by_id.pop(envelope_id)
            self.remove(queued.sender, queued.recipient, 1, queued.cost)


class Reservation:
    """A SEND's share of the queues, held while it is stored: `commit` with what was
    stored, or `cancel` if storing failed."""

    def __init__(self, shares: QueueShares, sender: str,
                 per_recipient: dict[str, tuple[int, int]]) -> None:
        self.shares = shares
        self.sender = sender
        self.per_recipient = per_recipient
        for recipient, (count, cost) in per_recipient.items():
            shares.add(sender, recipient, count, cost)

    def cancel(self) -> None:
        for recipient, (count, cost) in self.per_recipient.items():
            self.shares.remove(self.sender, recipient, count, cost)
        self.per_recipient = {}

    def commit(self, stored: Iterable[StoredEnvelope]) -> None:
        for env in stored:
            self.shares.stored(self.sender, env)
        self.per_recipient = {}


class RelayBudgets:
    """The budgets of one relay: each `admit_*` returns, or raises RequestRefused with
    the code and a message that says which budget and when to try again."""

    def __init__(self, budgets: Budgets, limits: Limits,
                 monotonic: Callable[[], float]) -> None:
        self.budgets = budgets
        self.max_queue = limits.max_queue
        self.max_recipients = limits.max_recipients
        self.monotonic = monotonic
        n = budgets.max_tracked
        self.fetch_requester: BucketTable[str] = BucketTable(budgets.fetch_per_requester, n)
        self.fetch_pair: BucketTable[tuple[str, str]] = BucketTable(budgets.fetch_per_pair, n)
        self.send_envelopes: BucketTable[str] = BucketTable(budgets.send_envelopes, n)
        self.send_bytes: BucketTable[str] = BucketTable(budgets.send_bytes, n)
        self.pair_envelopes: BucketTable[tuple[str, str]] = BucketTable(
            budgets.pair_envelopes, n)
        self.pair_bytes: BucketTable[tuple[str, str]] = BucketTable(budgets.pair_bytes, n)
        self.register_address: BucketTable[str] = BucketTable(budgets.register_per_address, n)
        self.register_global: BucketTable[None] = BucketTable(budgets.register_global, 1)
        self.sealed: BucketTable[tuple[str, bytes | None]] = BucketTable(
            budgets.sealed_per_capability, n)
        self.shares = QueueShares()

    @property
    def max_stored_bytes(self) -> int:
        return self.budgets.max_stored_bytes

    @property
    def max_stored_envelopes(self) -> int:
        return self.budgets.max_stored_envelopes

    @property
    def queue_share(self) -> int:
        """Envelopes one sender may have in one recipient's queue: the configured
        fraction of max_queue, but never less than one whole SEND (max_recipients),
        so that every SEND the limits allow can succeed."""
        if self.budgets.queue_share >= 1:
            return self.max_queue
        share = math.floor(self.budgets.queue_share * self.max_queue)
        return min(self.max_queue, max(1, share, self.max_recipients))

    @property
    def storage_share(self) -> int:
        """Bytes one sender's queued envelopes may count for, 0 for no limit."""
        if not self.max_stored_bytes or self.budgets.storage_share >= 1:
            return 0
        return max(1, math.floor(self.budgets.storage_share * self.max_stored_bytes))

    # -- REGISTER

    def admit_register(self, remote: object) -> None:
        now = self.monotonic()
        charges = []
        address = source_key(remote)
        if self.register_address.enabled:
            charges.append((self.register_address.bucket(address, now), 1.0))
        if self.register_global.enabled:
            charges.append((self.register_global.bucket(None, now), 1.0))
        if not _take_all(charges, now):
            raise RequestRefused(ErrorCode.REGISTRATION_LIMITED,
                                 "too many registrations from this address or on this "
                                 "relay; try again later")

    # -- FETCH_BUNDLE

    def admit_fetch(self, requester: str, target: str) -> None:
        now = self.monotonic()
        charges = []
        if self.fetch_requester.enabled:
            charges.append((self.fetch_requester.bucket(requester, now), 1.0))
        if self.fetch_pair.enabled:
            charges.append((self.fetch_pair.bucket((requester, target), now), 1.0))
        if not _take_all(charges, now):
            rate = self.budgets.fetch_per_pair
            raise RequestRefused(ErrorCode.RATE_LIMITED,
                                 f"too many FETCH_BUNDLE: at most {rate.burst:g} bundles of "
                                 f"one account per requester, then one every "
                                 f"{1 / rate.per_second:.0f} s, and "
                                 f"{self.budgets.fetch_per_requester.per_second:g}/s in all")

    # -- SEND

    def admit_send(self, sender: str, items: Sequence[tuple[str, bytes]]) -> Reservation:
        """Charges a SEND to its sender's budgets and reserves its share of each queue;
        all or nothing."""
        per_recipient: dict[str, tuple[int, int]] = {}
        for recipient, body in items:
            count, cost = per_recipient.get(recipient, (0, 0))
            per_recipient[recipient] = (count + 1, cost + envelope_cost(body))
        shares = self.shares
        share = self.queue_share
        for recipient, (count, _) in per_recipient.items():
            if shares.pair_count.get((sender, recipient), 0) + count > share:
                raise RequestRefused(ErrorCode.SENDER_BUDGET,
                                     f"you already have {share} envelopes queued for "
                                     f"{recipient!r}, your share of its queue; wait until "
                                     "it fetches them")
        total_cost = sum(cost for _, cost in per_recipient.values())
        limit = self.storage_share
        if limit and shares.sender_bytes.get(sender, 0) + total_cost > limit:
            raise RequestRefused(ErrorCode.SENDER_BUDGET,
                                 f"your queued envelopes would exceed your share of the "
                                 f"relay's storage ({limit} bytes); wait until they are "
                                 "fetched")
        now = self.monotonic()
        charges: list[tuple[TokenBucket, float]] = []
        if self.send_envelopes.enabled:
            charges.append((self.send_envelopes.bucket(sender, now), float(len(items))))
        if self.send_bytes.enabled:
            charges.append((self.send_bytes.bucket(sender, now), float(total_cost)))
        for recipient, (count, cost) in per_recipient.items():
            if self.pair_envelopes.enabled:
                charges.append((self.pair_envelopes.bucket((sender, recipient), now),
                                float(count)))
            if self.pair_bytes.enabled:
                charges.append((self.pair_bytes.bucket((sender, recipient), now), float(cost)))
        if not _take_all(charges, now):
            b = self.budgets
            raise RequestRefused(ErrorCode.SENDER_BUDGET,
                                 f"sending too fast: at most {b.send_envelopes.per_second:g} "
                                 f"envelopes and {b.send_bytes.per_second:.0f} bytes per "
                                 f"second ({b.pair_envelopes.per_second:g} and "
                                 f"{b.pair_bytes.per_second:.0f} to one recipient); "
                                 "try again shortly")
        return Reservation(shares, sender, per_recipient)

    # -- SEALED_SEND

    def admit_sealed(self, keys: Sequence[tuple[str, bytes | None]]) -> None:
        """One envelope each against its (recipient, capability hash) bucket (None: the
        recipient's one allow-anyone bucket); all or nothing."""
        if not self.sealed.enabled:
            return
        now = self.monotonic()
        counts: dict[tuple[str, bytes | None], int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        if not _take_all([(self.sealed.bucket(k, now), float(c)) for k, c in counts.items()],
                         now):
            rate = self.budgets.sealed_per_capability
            raise RequestRefused(ErrorCode.RATE_LIMITED,
                                 f"too many sealed envelopes under one capability: at most "
                                 f"{rate.burst:g}, then {rate.per_second:g} per second")

    def acked(self, recipient: str, envelope_ids: Iterable[bytes]) -> None:
        self.shares.left(recipient, envelope_ids)

    def expired(self, before: int) -> None:
        self.shares.expired(before)


# -- `blindrelay serve` options

_RATE_OPTIONS = (
    ("fetch_per_requester", "--fetch-budget", "FETCH_BUNDLEs per requester"),
    ("fetch_per_pair", "--fetch-pair-budget", "FETCH_BUNDLEs of one account per requester"),
    ("send_envelopes", "--send-budget", "envelopes per sender"),
    ("send_bytes", "--send-bytes-budget", "bytes per sender"),
    ("pair_envelopes", "--pair-budget", "envelopes per (sender, recipient)"),
    ("pair_bytes", "--pair-bytes-budget", "bytes per (sender, recipient)"),
    ("sealed_per_capability", "--sealed-budget",
     "sealed envelopes per (recipient, capability)"),
    ("register_per_address", "--register-budget", "registrations per source address"),
    ("register_global", "--register-global-budget", "registrations in all"),
)


def parse_rate(text: str) -> Rate:
    """BURST:PER_SECOND (for example 12:0.0167), or "off"."""
    if text.strip().lower() == "off":
        return Rate(0, math.inf)
    burst, _, per_second = text.partition(":")
    try:
        rate = Rate(float(per_second), float(burst))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not BURST:PER_SECOND or off") from None
    if rate.per_second <= 0 or rate.burst < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the burst must be at least 1 and the "
                                         "rate above 0 (or say off)")
    return rate


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 1]")
    return value


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:.4g}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The budget options of `blindrelay serve` (docs/PROTOCOL.md 16.7, "Budgets")."""
    defaults = Budgets()
    group = parser.add_argument_group(
        "budgets", "what one account or address may take (BURST:PER_SECOND, or off)")
    for name, option, what in _RATE_OPTIONS:
        rate: Rate = getattr(defaults, name)
        group.add_argument(option, type=parse_rate, default=rate, metavar="BURST:RATE",
                           help=f"{what} (default {_number(rate.burst)}:"
                           f"{_number(rate.per_second)})")
    group.add_argument("--queue-share", type=_fraction, default=defaults.queue_share,
                       help="fraction of a recipient's queue one sender may fill "
                       f"(default {defaults.queue_share})")
    group.add_argument("--storage-share", type=_fraction, default=defaults.storage_share,
                       help="fraction of --max-stored-bytes one sender may fill "
                       f"(default {defaults.storage_share})")
    group.add_argument("--max-stored-bytes", type=int, default=defaults.max_stored_bytes,
                       help="disk budget for queued envelopes, 0 for none "
                       f"(default {defaults.max_stored_bytes})")
    group.add_argument("--max-stored-envelopes", type=int,
                       default=defaults.max_stored_envelopes,
                       help="most queued envelopes in all, 0 for no limit "
                       f"(default {defaults.max_stored_envelopes})")


def from_arguments(args: argparse.Namespace) -> Budgets:
    rates = {name: getattr(args, option[2:].replace("-", "_"))
             for name, option, _ in _RATE_OPTIONS}
    return Budgets(**rates, queue_share=args.queue_share, storage_share=args.storage_share,
                   max_stored_bytes=args.max_stored_bytes,
                   max_stored_envelopes=args.max_stored_envelopes)
