"""The bus between relay processes that share one database (issue 14, docs/DEPLOY.md).

Several `blindrelay serve` processes behind one URL store into one database; a
recipient is online at one of them, a sender at another. The bus carries the few
facts that must reach every process at once, and nothing else (docs/DATA.md "What
crosses the bus between relay processes"):

- `NewEnvelopes(recipient)`: "something was queued for this name"; no body, no
  envelope id, no sender, no count. Each process that has the recipient online
  reads the queue from storage after the last seq it delivered on each connection
  (server/cluster.py), so the body never crosses the bus.
- `AccountDeleted(username)`: close that account's connections everywhere.
- `PrekeysTaken(username)`: someone took one of its one-time prekeys; a process
  where the owner is online reads the counts and sends PREKEYS_LOW if they are low.
- `DirectoryGrew(size)`: the key directory's log has this many entries; a process
  with fewer catches up from storage (server/cluster.py).

A bus is best effort: a lost message delays a push until the recipient's next store
or login, never loses an envelope (the queue in storage is the truth). `LocalBus` is
the default (one process: a hub of one, where publishing does nothing); joining two
LocalBuses to one `LocalHub` models two processes inside one test process.
`NatsBus` (nats-py, imported only when used) is the one for real processes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("blindrelay.server")


class BusError(Exception):
    """The bus cannot be reached or its URL is not one we know."""


@dataclass(frozen=True, slots=True)
class NewEnvelopes:
    recipient: str


@dataclass(frozen=True, slots=True)
class AccountDeleted:
    username: str


@dataclass(frozen=True, slots=True)
class PrekeysTaken:
    username: str


@dataclass(frozen=True, slots=True)
class DirectoryGrew:
    size: int


BusMessage = NewEnvelopes | AccountDeleted | PrekeysTaken | DirectoryGrew
Handler = Callable[[BusMessage], Awaitable[None]]

_KINDS: dict[str, type[BusMessage]] = {
    "env": NewEnvelopes, "del": AccountDeleted, "pre": PrekeysTaken, "kt": DirectoryGrew}
_NAMES = {kind: name for name, kind in _KINDS.items()}
CONNECT_TIMEOUT = 5.0
"""Seconds `serve --bus` waits for the bus at start before giving up."""
MAX_MESSAGE = 1024
"""Bytes a bus message may take; a longer one is dropped unread."""


def encode(message: BusMessage) -> bytes:
    """`{"k": kind, "v": the one field}` as compact JSON."""
    value = message.size if isinstance(message, DirectoryGrew) else (
        message.recipient if isinstance(message, NewEnvelopes) else message.username)
    return json.dumps({"k": _NAMES[type(message)], "v": value},
                      separators=(",", ":")).encode()


def decode(data: bytes) -> BusMessage | None:
    """The message, or None for anything else (a bus is not trusted to be tidy: a
    stray publisher on the subject must not crash a relay)."""
    if len(data) > MAX_MESSAGE:
        return None
    try:
        obj = json.loads(data)
        kind = _KINDS[obj["k"]]
        value = obj["v"]
    except (ValueError, KeyError, TypeError):
        return None
    if kind is DirectoryGrew:
        if type(value) is not int or value < 0:
            return None
        return DirectoryGrew(value)
    if not isinstance(value, str) or not value:
        return None
    if kind is NewEnvelopes:
        return NewEnvelopes(value)
    return AccountDeleted(value) if kind is AccountDeleted else PrekeysTaken(value)


class Bus(abc.ABC):
    """Publish to every other process; hand what they publish to `handler`. A process
    never receives its own messages (it acts on them directly)."""

    @abc.abstractmethod
    async def start(self, handler: Handler, reconnected: Callable[[], None]) -> None:
        """Subscribes; `reconnected` is called after the bus was lost and is back
        (messages may have been missed meanwhile)."""

    @abc.abstractmethod
    def publish(self, message: BusMessage) -> None:
        """Sends without waiting (best effort, in order)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class LocalHub:
    """Processes modelled inside one test process: every LocalBus joined to a hub
    hears the others, in publishing order, each message on its own task (as from a
    socket: never inside the publisher's call)."""

    def __init__(self) -> None:
        self.members: list[LocalBus] = []


class LocalBus(Bus):
    """The default bus: alone on its hub, publishing does nothing."""

    def __init__(self, hub: LocalHub | None = None) -> None:
        self.hub = hub or LocalHub()
        self.handler: Handler | None = None
        self.queue: asyncio.Queue[BusMessage] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self, handler: Handler, reconnected: Callable[[], None]) -> None:
        self.handler = handler
        self.hub.members.append(self)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            message = await self.queue.get()
            assert self.handler is not None
            try:
                await self.handler(message)
            except Exception:
                log.exception("handling a bus message failed")

    def publish(self, message: BusMessage) -> None:
        for member in self.hub.members:
            if member is not self:
                member.queue.put_nowait(message)

    async def close(self) -> None:
        if self in self.hub.members:
            self.hub.members.remove(self)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class NatsBus(Bus):
    """NATS core pub/sub on one subject: `nats://host:port[/name]` publishes on
    `blindrelay.<name>` (default `blindrelay.relay`), so clusters sharing a NATS
    server keep apart. `no_echo` keeps a process's own messages from coming back."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise BusError(f"not a NATS URL: {url!r} (nats://host:port)")
        name = parts.path.strip("/") or "relay"
        if not all(c.isalnum() or c in "-_" for c in name):
            raise BusError(f"the bus name in {url!r} may hold letters, digits, - and _")
        self.server = parts._replace(path="", query="", fragment="").geturl()
        self.subject = f"blindrelay.{name}"
        self.nc: Any = None
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.sender: asyncio.Task[None] | None = None

    async def start(self, handler: Handler, reconnected: Callable[[], None]) -> None:
        try:
            import nats
        except ImportError:
            raise BusError("--bus nats:// needs nats-py (pip install 'blindrelay[cluster]')"
                           ) from None

        async def on_message(msg: Any) -> None:
            message = decode(msg.data)
            if message is None:
                log.warning("dropped a malformed bus message (%d bytes)", len(msg.data))
                return
            try:
                await handler(message)
            except Exception:
                log.exception("handling a bus message failed")

        async def on_reconnect() -> None:
            log.warning("the bus is back; catching up")
            reconnected()

        async def on_error(exc: Exception) -> None:
            log.warning("bus: %s", exc)

        try:  # reconnects forever once up, but the first connection must come quickly
            self.nc = await asyncio.wait_for(nats.connect(
                self.server, no_echo=True, name="blindrelay", reconnected_cb=on_reconnect,
                error_cb=on_error, max_reconnect_attempts=-1, connect_timeout=2,
                allow_reconnect=True), CONNECT_TIMEOUT)
        except Exception as exc:
            raise BusError(f"cannot reach the bus at {self.server}: "
                           f"{str(exc) or 'no answer'}") from None
        await self.nc.subscribe(self.subject, cb=on_message)
        await self.nc.flush()
        self.sender = asyncio.get_running_loop().create_task(self._send_forever())

    def publish(self, message: BusMessage) -> None:
        if self.sender is not None:
            self.outgoing.put_nowait(encode(message))

    async def _send_forever(self) -> None:
        """One task publishes, in order; nats-py buffers and flushes on its own."""
        while True:
            data = await self.outgoing.get()
            try:
                await self.nc.publish(self.subject, data)
            except Exception as exc:  # best effort: the queue in storage is the truth
                log.warning("bus publish failed: %s", exc)

    async def close(self) -> None:
        if self.sender is not None:
            while not self.outgoing.empty() and self.nc is not None:  # the last few too
                with contextlib.suppress(Exception):
                    await self.nc.publish(self.subject, self.outgoing.get_nowait())
            self.sender.cancel()
            await asyncio.gather(self.sender, return_exceptions=True)
            self.sender = None
        if self.nc is not None:
            nc, self.nc = self.nc, None
            try:
                await nc.drain()
            except Exception:
                await nc.close()


def open_bus(url: str | None) -> Bus:
    """The bus named by `serve --bus`: None (one process) or nats://host:port[/name]."""
    if url is None:
        return LocalBus()
    return NatsBus(url)
