"""The link to the relay: one connection at a time, logged in, its pushed frames
handled, and reconnected with exponential backoff and full jitter (docs/CLIENT.md).
What logging in and each pushed frame mean is the client's business (`LinkHooks`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from client.connection import RelayConnection
from client.errors import NotConnected, RelayRefused
from client.events import Events, Status, StatusEvent
from protocol.wire.frames import Deliver, Error, Frame, PrekeysLow, QueueDone, error_name

log = logging.getLogger("blindrelay.client")

PAGE = 256
"""Most DELIVERs handled as one page (one transaction, one ACK): those already waiting
when the first is taken, so a lone message is never held back to fill a page."""

REPLENISH_INTERVAL = 60.0
"""PREKEYS_LOW is answered at most once per this many seconds; pushes in between
are coalesced into one, run when the interval is over (issue 9 item 13: a relay must
not make the client generate keys as fast as it can push)."""


class LinkHooks(Protocol):
    async def login(self, conn: RelayConnection, receiving: Callable[[], None]) -> None:
        """Registers or logs in; raises RelayRefused or NotConnected. Calls `receiving`
        once what the relay pushes may be handled (after a LOGIN: the relay pushes the
        queue before it reads another request, so requests made after LOGIN are
        answered only once the pushes before them are taken)."""

    async def ready(self) -> None:
        """Logged in and receiving; runs before the link reports ONLINE."""

    async def online(self) -> None:
        """Runs once the link reported ONLINE."""

    async def receive_page(self, delivers: list[Deliver]) -> Any:
        """Envelopes the relay delivered, in order (those waiting when the first was
        taken, at most PAGE): handled, committed and acknowledged together."""

    async def ensure_prekeys(self) -> None:
        """The relay said PREKEYS_LOW."""


class RelayLink:
    def __init__(self, events: Events, hooks: LinkHooks) -> None:
        self.events = events
        self.hooks = hooks
        self.conn: RelayConnection | None = None
        self.status = Status.OFFLINE
        self.queue_done = asyncio.Event()
        self.handled = 0
        """How many DELIVERs this link has handled (a drain's progress, for the CLI)."""
        self._pump_task: asyncio.Task[None] | None = None
        self._replenish_task: asyncio.Task[None] | None = None
        self._last_replenish: float | None = None
        self.connect_kwargs: dict[str, Any] = {}
        """What the last connect() passed to the WebSocket (TLS settings, say): sending
        connections (open_sending) are opened the same way."""

    def _set_status(self, status: Status, detail: str = "") -> None:
        self.status = status
        self.events.emit(StatusEvent(status, detail))

    def require(self) -> RelayConnection:
        if self.conn is None or self.conn.closed.is_set():
            raise NotConnected("not connected to the relay")
        return self.conn

    async def connect(self, server: str, **kwargs: Any) -> None:
        """Opens a connection, logs in and starts handling what the relay pushes. A
        connection still held (say one the relay closed) is closed and replaced, not
        leaked with its handler task."""
        if self.conn is not None or self._pump_task is not None:
            await self.disconnect()
        self._set_status(Status.CONNECTING)
        self.queue_done.clear()
        self.connect_kwargs = dict(kwargs)
        try:
            conn = await RelayConnection.open(server, **kwargs)
        except Exception as exc:
            self._set_status(Status.OFFLINE, str(exc))
            raise NotConnected(f"cannot reach {server}: {exc}") from exc
        def receiving() -> None:
            self.conn = conn
            if self._pump_task is None:
                self._pump_task = asyncio.get_running_loop().create_task(self._pump(conn))

        try:
            await self.hooks.login(conn, receiving)
        except BaseException:
            task, self._pump_task, self.conn = self._pump_task, None, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await conn.close()
            self._set_status(Status.OFFLINE, "login failed")
            raise
        receiving()
        await self.hooks.ready()
        self._set_status(Status.ONLINE)
        await self.hooks.online()

    async def open_sending(self, server: str) -> RelayConnection:
        """A new connection to the relay that will never log in: for SEALED_SEND
        (PROTOCOL.md 16.10). Not the link's: its caller closes it."""
        return await RelayConnection.open(server, **self.connect_kwargs)

    async def disconnect(self) -> None:
        """Stops handling pushes first, then closes: closing waits for the relay's
        close frame, and what it sent before that is not handled any more (it stays
        queued on the relay, unacknowledged), so Ctrl+C stops a long drain at once."""
        conn, self.conn = self.conn, None
        for task in (self._pump_task, self._replenish_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._pump_task = None
        self._replenish_task = None
        if conn is not None:
            await conn.close()
        self._set_status(Status.OFFLINE)

    async def run(self, server: str, stop: asyncio.Event, max_backoff: float = 30.0) -> None:
        """Stays connected until `stop` is set, resuming from the relay's queue each
        time. Raises RelayRefused when the relay refuses this profile for good."""
        attempt = 0
        while not stop.is_set():
            try:
                await self.connect(server)
                attempt = 0
                assert self.conn is not None
                closed = asyncio.create_task(self.conn.closed.wait())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait([closed, stopped], return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                stopped.cancel()
            except (NotConnected, OSError) as exc:
                log.info("connection failed: %s", exc)
            except RelayRefused as exc:
                self._set_status(Status.OFFLINE, str(exc))
                if exc.fatal:
                    raise
            await self.disconnect()
            if stop.is_set():
                break
            delay = random.uniform(0, min(max_backoff, 0.5 * 2 ** attempt))
            attempt += 1
            self._set_status(Status.OFFLINE, f"reconnecting in {delay:.1f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _pump(self, conn: RelayConnection) -> None:
        held: Frame | None = None
        conn.consumer = asyncio.current_task()  # (its reader paces itself by this task)
        try:
            while True:
                frame, held = (held, None) if held is not None else (
                    await conn.pushes.get(), None)
                if isinstance(frame, Deliver):
                    page = [frame]
                    while len(page) < PAGE and not conn.pushes.empty():
                        more = conn.pushes.get_nowait()
                        if not isinstance(more, Deliver):
                            held = more  # QUEUE_DONE and the like keep their place
                            break
                        page.append(more)
                    await self.hooks.receive_page(page)
                    self.handled += len(page)
                elif isinstance(frame, QueueDone):
                    self.queue_done.set()
                elif isinstance(frame, PrekeysLow):
                    self._schedule_replenish()
                elif isinstance(frame, Error):  # a quiet ACK that failed (16.5)
                    log.info("the relay refused an acknowledgement (%s): what it named "
                             "is delivered again", error_name(frame.code))
        except (NotConnected, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("handling a pushed frame failed")
            await conn.close()

    def _schedule_replenish(self) -> None:
        if self._replenish_task is None or self._replenish_task.done():
            self._replenish_task = asyncio.get_running_loop().create_task(
                self._replenish_quietly())

    async def _replenish_quietly(self) -> None:
        loop = asyncio.get_running_loop()
        if self._last_replenish is not None:
            wait = self._last_replenish + REPLENISH_INTERVAL - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_replenish = loop.time()
        try:
            await self.hooks.ensure_prekeys()
        except NotConnected:
            pass  # done again at the next login
        except RelayRefused as exc:
            log.warning("prekey upload failed: %s", exc)
