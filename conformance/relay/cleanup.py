"""Leaving nothing behind on the relay: every account a check may have registered is
deleted when the check ends, with the account's own DELETE_ACCOUNT (PROTOCOL.md
16.4), which also deletes its prekeys and every envelope queued for it.

The suite cannot list a relay's accounts (nobody can: LOGIN does not tell which names
are taken), so it keeps its own ledger instead. Every identity key a probe signs a
REGISTER or LOGIN with is remembered, and every REGISTER the relay did not refuse
(answered OK, or not answered at all: it may have been carried out) is a candidate.
At the end of the check each candidate gets a fresh connection, a LOGIN with its key
and, if that succeeds, DELETE_ACCOUNT. A LOGIN refused with BAD_SIGNATURE means the
name is not (or no longer) registered under that key: nothing to delete. Anything
that could not be deleted is named, so the check fails and the tester knows which
names the run left.

Every name the suite registers starts with `NAME_PREFIX` ('cf'), so an operator can
tell test accounts from people's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Error, ErrorCode, Ok, error_name

if TYPE_CHECKING:
    from conformance.relay.probe import Probe

NAME_PREFIX = "cf"
"""Every username the suite registers starts with this."""

PARALLEL_DELETES = 4
"""Connections the clean-up opens at once (each takes a LOGIN and a DELETE_ACCOUNT)."""


class Ledger:
    """What one check may have left on the relay: identity keys it signed with, and
    the (username, identity key) pairs of REGISTERs the relay did not refuse."""

    def __init__(self) -> None:
        self.keys: dict[bytes, IdentityKeyPair] = {}
        self.candidates: dict[tuple[str, bytes], None] = {}

    def remember(self, identity: IdentityKeyPair) -> None:
        self.keys[identity.public] = identity

    def maybe_registered(self, username: str, identity: bytes) -> None:
        self.candidates[(username, identity)] = None


@dataclass(slots=True)
class Tally:
    """The clean-up of a whole run: accounts deleted, and those left (with why)."""

    deleted: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.deleted += other.deleted
        self.left += other.left

    def to_json(self) -> dict[str, object]:
        return {"prefix": NAME_PREFIX, "deleted": len(self.deleted),
                "left": [{"username": n, "reason": r} for n, r in self.left]}

    def problem(self) -> str:
        """'' when nothing was left; else what was left, for a FAIL line."""
        if not self.left:
            return ""
        shown = "; ".join(f"{n} ({r})" for n, r in self.left[:3])
        more = f" and {len(self.left) - 3} more" if len(self.left) > 3 else ""
        return f"left {len(self.left)} test account(s) on the relay: {shown}{more}"


async def _delete_one(url: str, username: str, identity: IdentityKeyPair,
                      timeout: float) -> str | None:
    """None when the account is gone (deleted now, or not there); else why not."""
    from conformance.relay.probe import CheckFailed, Probe

    probe: Probe | None = None
    try:
        probe = await Probe.open(url, timeout)
        rec = await probe.roundtrip(probe.encode(probe.login_frame(username, identity)),
                                    what=f"LOGIN {username} to delete it")
        if isinstance(rec.frame, Error):
            if rec.frame.code == ErrorCode.BAD_SIGNATURE:
                return None  # not registered under this key (16.4: LOGIN does not say)
            return f"LOGIN got {error_name(rec.frame.code)}"
        if not isinstance(rec.frame, Ok):
            return f"LOGIN got {type(rec.frame).__name__}"
        await probe.request(probe.core.delete_account_frame(identity.sign), Ok,
                            f"DELETE_ACCOUNT {username}")
        return None
    except CheckFailed as exc:
        return str(exc)
    finally:
        if probe is not None:
            await probe.close()


async def delete_accounts(url: str, ledger: Ledger, timeout: float) -> Tally:
    """Deletes every candidate in `ledger` it holds the key of (see the module)."""
    tally = Tally()
    gate = asyncio.Semaphore(PARALLEL_DELETES)

    async def one(username: str, public: bytes) -> None:
        identity = ledger.keys.get(public)
        if identity is None:
            tally.left.append((username, "registered with a key the suite does not hold"))
            return
        async with gate:
            why = await _delete_one(url, username, identity, timeout)
        if why is None:
            tally.deleted.append(username)
        else:
            tally.left.append((username, why))

    await asyncio.gather(*(one(n, k) for n, k in ledger.candidates))
    ledger.candidates.clear()
    return tally
