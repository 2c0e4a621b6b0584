"""The check registry and what every check gets: a Context that opens probes, makes
fresh accounts, and closes every connection when the check ends."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.relay.cleanup import NAME_PREFIX, Ledger
from conformance.relay.probe import CheckFailed, Probe, Received
from conformance.report import FAIL as FAIL
from conformance.report import PASS as PASS
from conformance.report import SKIP as SKIP
from conformance.report import Outcome
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.wire.frames import Deliver, Limits
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, SignedPreKey
from protocol.wire.usernames import check_username

if TYPE_CHECKING:
    from conformance.relay.options import RunOptions

CheckFunc = Callable[["Context"], Awaitable[None]]
Timeout = float | Callable[[Limits], float]
When = Callable[["RunOptions"], bool]

DEFAULT_CHECK_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Check:
    """One named check. `background` checks (mostly waiting) start when the run starts
    and are reported in their place in the order."""

    name: str
    func: CheckFunc
    doc: str
    timeout: Timeout = DEFAULT_CHECK_TIMEOUT
    background: bool = False
    when: When | None = None
    """Runs only when this says so of the run's options (a bar the tester set, --data);
    None: always."""

    def timeout_for(self, limits: Limits) -> float:
        return self.timeout(limits) if callable(self.timeout) else self.timeout

    def runs_with(self, options: RunOptions) -> bool:
        return self.when is None or self.when(options)


CheckResult = Outcome
"""A check's result: conformance.report's Outcome (PASS, FAIL or SKIP and why)."""


CHECKS: dict[str, Check] = {}
"""Every check, by name, in the order they were registered (see `ordered`)."""

GROUPS = ("hello", "bars", "register", "login", "delete_account", "prekeys", "messages",
          "sealed", "directory", "certificates", "limits", "malformed", "storage")
"""The order the groups of checks (the part of a name before the dot) run in. The
malformed-frame checks come late, so that their final check shows the server still
serving clients after everything before it; the storage audit (--data) comes last,
after every other check has cleaned up."""


def ordered() -> list[Check]:
    """Every check in run order: by group, then in the order registered."""
    position = {name: i for i, name in enumerate(CHECKS)}

    def key(c: Check) -> tuple[int, int]:
        group = c.name.split(".", 1)[0]
        rank = GROUPS.index(group) if group in GROUPS else len(GROUPS)
        return rank, position[c.name]

    return sorted(CHECKS.values(), key=key)


def check(name: str, *, timeout: Timeout = DEFAULT_CHECK_TIMEOUT,
          background: bool = False, when: When | None = None
          ) -> Callable[[CheckFunc], CheckFunc]:
    """Registers an async function taking a Context as the check `name`; its
    docstring's first sentence is its `--list` description."""

    def register(func: CheckFunc) -> CheckFunc:
        if name in CHECKS:
            raise ValueError(f"duplicate check name {name}")
        doc = " ".join((func.__doc__ or "").split())
        CHECKS[name] = Check(name, func, doc, timeout, background, when)
        return func

    return register


@dataclass(frozen=True, slots=True)
class User:
    name: str
    identity: IdentityKeyPair


@dataclass(slots=True)
class PrekeySet:
    """Public prekey records an owner uploads (the private halves are not needed)."""

    signed: SignedPreKey
    last_resort: KemPreKey
    one_time: list[OneTimePreKey] = field(default_factory=list)
    kem: list[KemPreKey] = field(default_factory=list)


def make_prekeys(identity: IdentityKeyPair, one_time: int = 0, kem: int = 0,
                 first_id: int = 1000) -> PrekeySet:
    """Signed prekey id 1, last-resort KEM prekey id 2, one-time X25519 prekeys from
    `first_id`, one-time KEM prekeys from `first_id + 500000`."""
    return PrekeySet(
        make_signed_prekey(identity, 1)[1],
        make_kem_prekey(identity, 2)[1],
        [make_one_time_prekey(first_id + i)[1] for i in range(one_time)],
        [make_kem_prekey(identity, first_id + 500_000 + i)[1] for i in range(kem)],
    )


def fresh_username(prefix: str = NAME_PREFIX) -> str:
    """'cf' and 12 random hex digits: valid under the username rule and, in practice,
    never seen by the server before, so the suite can run again and again (and its
    accounts are told from people's by the prefix)."""
    return check_username(prefix + secrets.token_hex(6))


def body(label: str, size: int = 0) -> bytes:
    """A recognisable envelope body: a label and random bytes (opaque to the server)."""
    head = f"cf:{label}:".encode()
    return head + os.urandom(max(8, size - len(head)))


class Context:
    """What a check uses to reach the server. Every probe it opens is closed when the
    check ends, whether it passed, failed or timed out."""

    def __init__(self, url: str, limits: Limits, request_timeout: float,
                 options: RunOptions | None = None) -> None:
        from conformance.relay.options import RunOptions

        self.url = url
        self.limits = limits
        self.request_timeout = request_timeout
        self.options = options if options is not None else RunOptions()
        self.probes: list[Probe] = []
        self.ledger = Ledger()
        """Accounts this check may have registered: deleted when it ends."""

    async def connect(self) -> Probe:
        probe = await Probe.open(self.url, self.request_timeout)
        probe.ledger = self.ledger
        self.probes.append(probe)
        if probe.limits != self.limits:
            raise CheckFailed("HELLO announced different limits on another connection")
        return probe

    def violations(self) -> list[str]:
        return [v for probe in self.probes for v in probe.violations]

    async def close_all(self) -> None:
        probes, self.probes = self.probes, []
        await asyncio.gather(*(p.close() for p in probes), return_exceptions=True)

    # -- accounts

    async def register(self) -> tuple[User, Probe]:
        """A fresh account, registered (and so logged in) on a new connection."""
        probe = await self.connect()
        user = User(fresh_username(), IdentityKeyPair.generate())
        await probe.register(user.name, user.identity)
        return user, probe

    async def offline_user(self, prekeys: PrekeySet | None = None) -> User:
        """A fresh account whose connection is closed again (so its envelopes queue)."""
        user, probe = await self.register()
        if prekeys is not None:
            await probe.upload_signed(prekeys.signed, prekeys.last_resort)
            if prekeys.one_time or prekeys.kem:
                await probe.upload_one_time(prekeys.one_time, prekeys.kem)
        await self.release(probe)
        return user

    async def login(self, user: User) -> tuple[Probe, list[Received], int]:
        """A new connection logged in as `user`: (probe, DELIVERs up to QUEUE_DONE, the
        count QUEUE_DONE announced)."""
        probe = await self.connect()
        await probe.login(user.name, user.identity)
        delivered, count = await probe.drain_queue(f"LOGIN {user.name}")
        if count != len(delivered):
            raise CheckFailed(f"QUEUE_DONE says {count} envelope(s) after {len(delivered)} "
                              "DELIVER frame(s)")
        return probe, delivered, count

    async def release(self, probe: Probe) -> None:
        """Closes one probe before the check ends."""
        if probe in self.probes:
            self.probes.remove(probe)
        await probe.close()
        if probe.violations:
            raise CheckFailed("; ".join(probe.violations))

    async def collect(self, user: User, expect: int) -> list[Deliver]:
        """Logs in as `user`, takes the queue (which must hold `expect` envelopes),
        acknowledges it and logs out again: leaves nothing behind."""
        probe, delivered, _ = await self.login(user)
        if len(delivered) != expect:
            raise CheckFailed(f"{user.name}'s queue held {len(delivered)} envelope(s), "
                              f"expected {expect}")
        frames = [_deliver(r) for r in delivered]
        if frames:
            await probe.ack([f.envelope_id for f in frames])
        await self.release(probe)
        return frames


def _deliver(rec: Received) -> Deliver:
    assert isinstance(rec.frame, Deliver)
    return rec.frame
