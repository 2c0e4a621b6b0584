"""One relay process among several that share one database and one bus (issue 14,
docs/DEPLOY.md "Several processes").

What each process keeps in memory, and whether it must hold cluster-wide:

- Who is online (`Relay.online`): per process, by nature; a store anywhere is
  announced on the bus (server/bus.py NewEnvelopes) and each process delivers to its
  own connections by reading the queue from storage after the last seq it delivered
  on each (`_pull`), so the body never crosses the bus, none is delivered twice on a
  connection (the core drops seqs at or below its last) and none is missed, provided
  the storage gives each recipient's envelopes seqs in commit order (SQLite: one
  writer; PostgreSQL: the recipient's row is locked while its seq is taken). In a
  cluster even envelopes stored by this process are delivered this way, so that one
  stored here cannot overtake, and hide, an older one stored by another process.
- Account deletion closes the account's connections in every process (AccountDeleted).
- PREKEYS_LOW reaches the owner wherever it is online (PrekeysTaken).
- The key directory is a log that every process holds in memory: updates are
  appended under the storage's directory lock after catching up from storage
  (Relay._locked_update), and every directory read first catches up (so a name
  registered through one process is served by all at once); DirectoryGrew makes idle
  processes catch up early.
- Budgets (server/budgets.py), the lookup budget (server/lookups.py) and the
  per-account connection cap stay per process: a client's connection lives on one
  process, so they bound each connection as before, and across N processes an
  account that opens connections to all of them gets at most N times the share. The
  hard limits (queue length, stored bytes, single-use prekeys, one commit per group
  epoch) are enforced by the storage inside its transactions, so they hold
  cluster-wide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from server.bus import AccountDeleted, Bus, BusMessage, DirectoryGrew, NewEnvelopes, PrekeysTaken

if TYPE_CHECKING:
    from server.relay import Relay

log = logging.getLogger("blindrelay.server")

PULL_PAGE = 128
"""Envelopes read per query when delivering what was stored for an online user."""


class Cluster:
    """The hooks a Relay calls when it runs as one of several processes."""

    def __init__(self, relay: Relay, bus: Bus) -> None:
        self.relay = relay
        self.bus = bus
        self.pulling: dict[str, asyncio.Task[None]] = {}
        self.again: set[str] = set()
        self.known_size = 0
        """The directory size the bus last announced."""
        self.background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.relay.cluster = self
        await self.bus.start(self._on_message, self._reconnected)

    async def close(self) -> None:
        await self.bus.close()
        tasks = [*self.pulling.values(), *self.background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.relay.cluster is self:
            self.relay.cluster = None

    # -- what this process did: tell the others

    def stored(self, recipients: Iterable[str]) -> None:
        """Envelopes for these names committed here."""
        for name in dict.fromkeys(recipients):
            self.bus.publish(NewEnvelopes(name))
            self.pull(name)

    def account_deleted(self, username: str) -> None:
        self.bus.publish(AccountDeleted(username))

    def prekeys_taken(self, username: str) -> None:
        self.bus.publish(PrekeysTaken(username))

    def directory_grew(self, size: int) -> None:
        self.bus.publish(DirectoryGrew(size))

    # -- what another process did

    async def _on_message(self, message: BusMessage) -> None:
        """Never waits: anything that reads storage or takes the directory's lock runs
        on its own task, so that one slow answer holds up no delivery behind it."""
        relay = self.relay
        if isinstance(message, NewEnvelopes):
            self.pull(message.recipient)
        elif isinstance(message, AccountDeleted):
            relay.close_account(message.username, None)
        elif isinstance(message, PrekeysTaken):
            if message.username in relay.online:
                self._spawn(self._tell_prekeys(message.username))
        elif message.size > max(relay.directory.size, self.known_size):
            self.known_size = message.size
            self._spawn(relay.catch_up_directory())

    async def _tell_prekeys(self, username: str) -> None:
        self.relay.tell_prekeys(username, *await self.relay.storage.prekey_counts(username))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("handling a bus message failed: %s", type(exc).__name__)

    def _reconnected(self) -> None:
        """Messages may have been lost while the bus was away: deliver what is queued
        for everyone online here, and catch the directory up."""
        for name in list(self.relay.online):
            self.pull(name)
        self._spawn(self.relay.catch_up_directory())

    # -- delivery

    def pull(self, username: str) -> None:
        """Delivers to this process's connections of `username` what is queued beyond
        what each already has; one reader per name at a time, and a request that comes
        while it reads makes it read once more."""
        if username not in self.relay.online:
            return
        if username in self.pulling:
            self.again.add(username)
            return
        task = asyncio.get_running_loop().create_task(self._pull(username))
        self.pulling[username] = task

    async def _pull(self, username: str) -> None:
        """Connections still in their login sequence are left out: their drain reads
        the queue itself, and the relay calls `pull` again when it ends, so what
        was stored meanwhile follows its QUEUE_DONE."""
        relay = self.relay
        try:
            while True:
                self.again.discard(username)
                conns = [c for c in relay.online.get(username, ())
                         if not c.closing and not c.core.draining]
                if not conns:
                    return
                # each push moves its connection's last seq on, so this advances
                after = min(c.core.last_seq for c in conns)
                not_before = int(relay.clock()) - relay.limits.envelope_ttl
                batch = await relay.storage.queued(username, after, PULL_PAGE, not_before)
                relay.push_local(batch)
                if len(batch) == PULL_PAGE:
                    self.again.add(username)
                if username not in self.again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivering stored envelopes failed")
        finally:
            self.pulling.pop(username, None)
