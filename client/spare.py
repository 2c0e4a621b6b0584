"""A sending connection opened ahead of the next flush (docs/CLIENT.md, "Sealed
sending").

Each flush sends its SEALED_SENDs on a connection of its own that never logs in
(PROTOCOL.md 16.10), so the relay cannot link one flush's envelopes to another's by
their connection. Opening one (TCP, the WebSocket upgrade, HELLO) takes about 2 ms on
loopback, which would be most of a message's way from one client to the other: so once
a flush is over, the next flush's connection is opened in the background, still one
per flush and still never logged in. A spare not used within SPARE_LIFETIME seconds is
closed (relays close connections that do not log in after their login timeout, ours
10 s), and the next flush opens its own when it needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from client.connection import RelayConnection

log = logging.getLogger("blindrelay.client")

SPARE_LIFETIME = 5.0
"""Seconds a spare sending connection waits for a flush before it is closed."""

Opener = Callable[[], Awaitable[RelayConnection]]


class SpareConnection:
    def __init__(self, open_new: Opener, clock: Callable[[], float] | None = None,
                 lifetime: float = SPARE_LIFETIME) -> None:
        self.open_new = open_new
        self.lifetime = lifetime
        self._clock = clock
        self._spare: asyncio.Task[RelayConnection] | None = None
        self._opened_at = 0.0
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else \
            asyncio.get_running_loop().time()

    def prepare(self) -> None:
        """Opens the next flush's connection in the background (if none is waiting)."""
        if self._spare is not None:
            return
        loop = asyncio.get_running_loop()
        self._spare = loop.create_task(self._open())
        self._opened_at = self._now()
        self._expiry = loop.call_later(self.lifetime, self._expire)

    async def take(self) -> RelayConnection:
        """The spare if it opened, is still open and young enough; else a new one."""
        task, self._spare = self._spare, None
        self._cancel_expiry()
        if task is not None:
            fresh = self._now() - self._opened_at < self.lifetime
            try:
                conn = await task if fresh or task.done() else None
            except Exception as exc:  # it did not open: open one now
                log.info("the spare sending connection did not open: %s", exc)
                conn = None
            if conn is not None and fresh and not conn.closed.is_set():
                return conn
            self._discard(task)
        return await self.open_new()

    async def _open(self) -> RelayConnection:
        return await self.open_new()

    def _expire(self) -> None:
        self._expiry = None
        task, self._spare = self._spare, None
        if task is not None:
            self._discard(task)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _discard(self, task: asyncio.Task[RelayConnection]) -> None:
        """Closes a spare no one will use, in the background."""
        closing = asyncio.get_running_loop().create_task(_close(task))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Closes the spare (when the client disconnects)."""
        task, self._spare = self._spare, None
        self._cancel_expiry()
        if task is not None:
            await _close(task)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close(task: asyncio.Task[RelayConnection]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        conn = await task
        await conn.close()
