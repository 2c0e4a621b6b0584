"""What bounds the relay's connections (PROTOCOL.md 16.8, docs/DATA.md "In memory").

- `ConnectionGate` caps open TCP connections in total and per source address. It acts
  when the kernel hands a socket over, before any byte is read, so idle sockets that
  never start a handshake count too; one over the cap is dropped at once.
- `Outbox` is one connection's queue of frames to write, bounded in frames and bytes:
  a connection that does not read cannot pin more than `max_outbox_bytes`. A frame
  goes straight into the transport's buffer instead (`inline_writer`) when nothing
  waits ahead of it and the transport is not paused (its buffer is below the
  high-water mark), so the common case costs no task switch; the outbox, and the
  writer task that empties it, come into play only for a peer that reads slowly.
- `FrameHookConnection` lets the relay take a whole binary message straight from the
  protocol's `data_received` callback (`frame_hook`) while its handler waits idle for
  the next one, instead of queueing it and waking the handler's task for it: the
  relay's pipelined SENDs and quiet ACKs cost no task switch per frame.
- `RateLimitedLog` turns a flood of refusals (or the event loop's "Too many open
  files") into one line per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.connection import Connection as WebSocketConnection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State as WebSocketState

from protocol.wire.connection import RequestRefused
from protocol.wire.frames import Error, ErrorCode, encode_frame

log = logging.getLogger("blindrelay.server")

MAX_OUTBOX_BYTES = 2 * 1024 * 1024

FD_RESERVE = 32
"""Descriptors kept free under RLIMIT_NOFILE for the database, the listening sockets
and the log, so the connection cap is reached before the kernel's limit."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The relay's connection limits; not announced in HELLO (the client is told by an
    ERROR or a close code when it meets one, PROTOCOL.md 16.8)."""

    login_timeout: float = 10.0
    """Seconds a connection may stay not logged in before it is closed (LOGIN_TIMEOUT)."""
    max_connections: int = 10_000
    """Open connections in total (lowered to RLIMIT_NOFILE minus FD_RESERVE)."""
    max_per_address: int = 64
    """Open connections from one source IP address."""
    max_per_account: int = 16
    """Logged-in connections of one account (TOO_MANY_CONNECTIONS at LOGIN)."""
    max_outbox_bytes: int = MAX_OUTBOX_BYTES
    """Bytes waiting to be written to one connection; a push beyond it closes the
    connection with 1013 (its envelopes stay queued). One frame always fits."""


class RateLimitedLog:
    """Logs `message` at most once per `interval` seconds, with how many were folded."""

    def __init__(self, message: str, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.message = message
        self.interval = interval
        self.clock = clock
        self.last = -interval
        self.folded = 0

    def hit(self, *detail: object) -> bool:
        now = self.clock()
        self.folded += 1
        if now - self.last < self.interval:
            return False
        log.warning(self.message + " (%d in the last %.0f s)", *detail, self.folded,
                    self.interval)
        self.last, self.folded = now, 0
        return True


class ConnectionGate:
    """Counts open connections in total and per source address (in memory only; an
    address is forgotten when its last connection closes, docs/DATA.md)."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self.per_address: dict[str, int] = {}
        self.refused = RateLimitedLog("refusing connections at the cap of %s")

    def admit(self, address: str | None) -> bool:
        if self.total >= self.max_total:
            self.refused.hit(f"{self.max_total} in total")
            return False
        if address is not None:
            count = self.per_address.get(address, 0)
            if count >= self.max_per_address:
                self.refused.hit(f"{self.max_per_address} per address")
                return False
            self.per_address[address] = count + 1
        self.total += 1
        return True

    def release(self, address: str | None) -> None:
        self.total -= 1
        if address is not None:
            count = self.per_address.get(address, 0) - 1
            if count > 0:
                self.per_address[address] = count
            else:
                self.per_address.pop(address, None)

    def connection_class(self) -> type[ServerConnection]:
        """A websockets ServerConnection (with the relay's frame hook) that asks this
        gate when its socket arrives."""
        gate = self

        class GatedConnection(FrameHookConnection):
            admitted_address: str | None = None
            admitted = False

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                peer: Any = transport.get_extra_info("peername")
                address = str(peer[0]) if isinstance(peer, tuple) and peer else None
                if gate.admit(address):
                    self.admitted, self.admitted_address = True, address
                else:
                    self.transport.abort()  # the handshake then fails quietly

            def connection_lost(self, exc: Exception | None) -> None:
                if self.admitted:
                    self.admitted = False
                    gate.release(self.admitted_address)
                super().connection_lost(exc)

        return GatedConnection


def connection_cap(limits: ConnectionLimits, open_files: int) -> int:
    """The total cap in force: the configured one, below the open-file limit."""
    if open_files <= 0:
        return limits.max_connections
    return max(1, min(limits.max_connections, open_files - FD_RESERVE))


class OutboxFull(Exception):
    """A push found the outbox over its bound."""


FrameHook = Callable[[bytes], bool]
"""Takes one whole binary message now (True), or leaves it to the handler (False)."""


class FrameHookConnection(ServerConnection):
    """A websockets server connection whose `frame_hook` (set by the relay's handler)
    sees each complete binary message as it is parsed, but only while nothing is queued
    ahead of it and the handler is waiting for the next message: then taking it now
    keeps the order the handler would have seen. Anything the hook declines (False),
    and every other frame, goes the usual way through the queue to the handler."""

    frame_hook: FrameHook | None = None

    def process_event(self, event: Any) -> None:
        hook = self.frame_hook
        if hook is not None and isinstance(event, Frame) and event.fin \
                and event.opcode is Opcode.BINARY and self._handler_idle():
            try:
                taken = hook(bytes(event.data))
            except Exception:  # the handler's `except` would have logged it and closed
                log.exception("connection handler failed")
                self.frame_hook = None
                self.transport.abort()
                return
            if taken:
                return
        super().process_event(event)

    def _handler_idle(self) -> bool:
        """The handler waits in `recv` with nothing queued (websockets 14-17's
        Assembler; anything else: never, so every frame goes through the queue)."""
        frames = getattr(self.recv_messages, "frames", None)
        waiter = getattr(frames, "get_waiter", None)
        return waiter is not None and not waiter.done() and not getattr(frames, "queue", True)


Write = Callable[[bytes], bool]
"""Writes one frame at once if it can (True), else leaves it to the outbox (False)."""


def inline_writer(ws: object) -> Write | None:
    """For a websockets asyncio connection: a function that writes a frame straight into
    the transport's buffer, as `send` would but without its awaits, when the connection
    is open and the transport is not paused (its buffer is below the high-water mark).
    None for anything else (a test's stand-in transport): everything goes through the
    outbox."""
    if not isinstance(ws, WebSocketConnection):
        return None
    protocol = ws.protocol
    # a fragmented send in progress (websockets 15+ calls it send_in_progress, 14
    # fragmented_send_waiter); the relay sends none, but a frame must not land inside one
    fragmenting = "send_in_progress" if hasattr(ws, "send_in_progress") \
        else "fragmented_send_waiter"

    def write(data: bytes) -> bool:
        if ws.paused or protocol.state is not WebSocketState.OPEN \
                or getattr(ws, fragmenting, None) is not None:
            return False
        try:
            protocol.send_binary(data)
            ws.send_data()
        except Exception:  # the transport broke: the writer's send finds out and closes
            return False
        return True

    return write


class Outbox:
    """Frames waiting for one connection's writer, in order, bounded in frames and bytes.

    `put` (answers, the queue at login) waits for room, putters in FIFO order, so the
    reader is paced by the writer; `put_nowait` (live pushes) raises OutboxFull instead.
    The end marker `close` always fits. A frame larger than the bound fits an empty
    outbox, so every answer can be sent.

    With `write` (inline_writer), a frame that finds the outbox empty is written at
    once if the transport takes it; only the frames behind a paused transport wait
    here, so the bounds hold for what the peer has not read (the transport's buffer
    up to its high-water mark, then this). `start` is called the first time a frame
    has to wait: the connection starts its writer task then, not before."""

    def __init__(self, max_frames: int, max_bytes: int, write: Write | None = None,
                 start: Callable[[], None] | None = None) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: deque[bytes | None] = deque()
        self._put_lock = asyncio.Lock()
        self._space = asyncio.Event()
        self._ready = asyncio.Event()
        self._write = write
        self._start = start

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, size: int) -> bool:
        return not self._items or (len(self._items) < self.max_frames
                                   and self.bytes + size <= self.max_bytes)

    def _append(self, data: bytes | None) -> None:
        self._items.append(data)
        if data is not None:
            self.bytes += len(data)
        self._ready.set()
        if self._start is not None and data is not None:
            start, self._start = self._start, None
            start()

    def _write_now(self, data: bytes) -> bool:
        """Nothing waits ahead of it (so the order holds): written at once if it can."""
        return (self._write is not None and not self._items and not self._put_lock.locked()
                and self._write(data))

    async def put(self, data: bytes) -> None:
        if self._write_now(data):
            return
        async with self._put_lock:
            while not self._fits(len(data)):
                self._space.clear()
                await self._space.wait()
            self._append(data)

    def put_nowait(self, data: bytes) -> None:
        if self._write_now(data):
            return
        if self._put_lock.locked() or not self._fits(len(data)):
            raise OutboxFull
        self._append(data)

    @property
    def started(self) -> bool:
        """Whether a frame ever had to wait here (so a writer task is emptying it)."""
        return self._start is None

    def close(self) -> None:
        """The end marker: `get` returns None after the frames before it."""
        self._write = None
        self._append(None)

    async def get(self) -> bytes | None:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        data = self._items.popleft()
        if data is not None:
            self.bytes -= len(data)
        self._space.set()
        return data


class _Closable(Protocol):
    """What `close_for_login_timeout` needs of server.relay.Connection."""

    outbox: Outbox

    @property
    def ws(self) -> Any: ...


def check_account_cap(online: Any, limits: ConnectionLimits) -> None:
    """At LOGIN, after the signature verified: refuse a connection beyond the account's
    cap (the connection stays not logged in)."""
    if len(online) >= limits.max_per_account:
        raise RequestRefused(ErrorCode.TOO_MANY_CONNECTIONS,
                             f"this account already has {limits.max_per_account} "
                             "connections open")


async def close_for_login_timeout(conn: _Closable, timeout: float) -> None:
    """ERROR LOGIN_TIMEOUT (request id 0), then close with 1008 (PROTOCOL.md 16.8)."""
    error = encode_frame(Error(ErrorCode.LOGIN_TIMEOUT, f"no login within {timeout:g} s"))
    try:
        conn.outbox.put_nowait(error)
    except OutboxFull:
        pass
    else:
        for _ in range(100):  # the writer takes it within a moment unless the peer stalls
            if not len(conn.outbox):
                break
            await asyncio.sleep(0.01)
    await conn.ws.close(1008, "no login in time")
