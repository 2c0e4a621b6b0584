"""The conformance suite's client: one WebSocket connection, spoken frame by frame.

`client.connection.RelayConnection` is the client library's connection; a probe is
its suspicious sibling, another asyncio shell over the same sans-I/O core
(protocol.wire.connection.ClientConnection), which decides what the server may send
when. The probe keeps each received frame's raw bytes and request id, records what a
conformant server must never do (frames that do not decode, the core's Violations,
text messages, overlong error messages), can send bytes that are not a frame at all
(they bypass the core's state checks on purpose, but their answers are still
matched), paces its own frames below the server's announced rate, and bounds every
wait, so that a server that hangs makes a check fail instead of hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conformance.relay.cleanup import Ledger
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import codec
from protocol.wire.connection import PUSHES
from protocol.wire.connection import ClientConnection as ClientCore
from protocol.wire.connection import frame_name as frame_name
from protocol.wire.errors import DecodeError
from protocol.wire.events import HelloReceived, Refused, ServerEvent, Violation
from protocol.wire.frames import (
    FRAME_HEADER_LEN,
    Ack,
    Bundle,
    Deliver,
    Error,
    ErrorCode,
    FetchBundle,
    Frame,
    Hello,
    Limits,
    Login,
    Ok,
    Outgoing,
    PrekeyCount,
    PrekeyCounts,
    PrekeysLow,
    QueueDone,
    Register,
    Send,
    Sent,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    decode_client_frame,
    encode_frame,
    error_name,
)
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

F = TypeVar("F", bound=Frame)

PUSH_TYPES: tuple[type[Frame], ...] = tuple(PUSHES)
"""Frames a server sends unasked, with request id 0."""

MAX_ERROR_MESSAGE = 1000
ONE_TIME_RECORD_LEN = OneTimePreKey.SIZE
KEM_RECORD_LEN = KemPreKey.SIZE


class CheckFailed(Exception):
    """The server did not behave as the protocol says; the message says how."""


class SkipCheck(Exception):
    """The server's announced limits make this check impractical to run."""


class ServerRefused(CheckFailed):
    """A request that should have succeeded was answered with ERROR."""

    def __init__(self, what: str, error: Error) -> None:
        super().__init__(f"{what}: server answered {error_name(error.code)}: {error.message}")
        self.code = error.code


class _Lost(Exception):
    """The connection closed while a request was waiting."""


def describe_answer(rec: Received) -> str:
    if isinstance(rec.frame, Error):
        return f"ERROR {error_name(rec.frame.code)} ({rec.frame.message})"
    return frame_name(rec.frame)


def describe(data: bytes | str) -> str:
    """A short, printable description of what was sent."""
    if isinstance(data, str):
        return f"text message {data[:24]!r}"
    more = "..." if len(data) > 24 else ""
    return f"{len(data)}-byte frame {data[:24].hex()}{more}"


@dataclass(frozen=True, slots=True)
class Received:
    """A frame from the server: its request id, the parsed frame and the exact bytes."""

    request_id: int
    frame: Frame
    raw: bytes
    seq: int = 0
    """Arrival order on its connection (HELLO is 0)."""


class Pacer:
    """A client-side token bucket a little below the announced rate and half the burst,
    so that the suite's own frames never trip RATE_LIMITED."""

    def __init__(self, limits: Limits) -> None:
        self.rate = max(1.0, limits.rate_per_second * 0.8)
        self.burst = max(1.0, float(limits.rate_burst // 2))
        self.tokens = self.burst
        self.stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class ProbeShell:
    """The asyncio shell of a probe: one WebSocket, its reader, request/answer matching
    with bounded waits. What the frames mean comes from the core (`self.core`)."""

    def __init__(self, ws: ClientConnection, url: str, hello: Received, timeout: float,
                 core: ClientCore | None = None) -> None:
        assert isinstance(hello.frame, Hello)
        if core is None:
            core = ClientCore(url)
            core.receive_data(hello.raw)
        self.ws = ws
        self.core = core
        self.url = core.url
        self.hello = hello
        self.challenge = hello.frame.challenge
        self.limits = hello.frame.limits
        self.timeout = timeout
        self.pushes: asyncio.Queue[Received] = asyncio.Queue()
        self.skipped: list[Received] = []
        self.violations: list[str] = []
        self.pacer = Pacer(self.limits)
        self.ledger = Ledger()
        """Where this probe notes the accounts it may have registered (the check's
        Context shares one ledger among its probes and deletes them at the end)."""
        self.closed = asyncio.Event()
        self._waiting: dict[int, asyncio.Future[Received]] = {}
        self._zero_waiters: list[asyncio.Future[Received]] = []
        self._arrivals = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def username(self) -> str | None:
        """Who the server logged this connection in as (after an OK to REGISTER or LOGIN)."""
        return self.core.username

    @classmethod
    async def open(cls, url: str, timeout: float = 5.0) -> Self:
        """Connects and reads HELLO, which must be the first frame."""
        core = ClientCore(url)
        try:
            ws = await asyncio.wait_for(
                connect(url, compression=None, max_size=None, open_timeout=timeout,
                        close_timeout=2, ping_interval=None),
                timeout + 1)
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            raise CheckFailed(f"cannot connect to {url}: {exc or type(exc).__name__}") from None
        except Exception as exc:  # websockets' handshake errors
            raise CheckFailed(f"cannot connect to {url}: {type(exc).__name__}: {exc}") from None
        try:
            try:
                first = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                raise CheckFailed(f"no HELLO within {timeout:g} s of connecting") from None
            except ConnectionClosed:
                raise CheckFailed("server closed the connection before HELLO") from None
            if not isinstance(first, bytes):
                raise CheckFailed("server's first message is text, not a HELLO frame")
            try:
                (event,) = core.receive_data(first)
            except DecodeError as exc:
                raise CheckFailed(f"server's first frame does not decode: {exc}") from None
            if isinstance(event, Violation):
                raise CheckFailed(f"server's first frame breaks the protocol: {event.reason}")
            if not isinstance(event, HelloReceived):  # pragma: no cover - the core says so
                raise CheckFailed(f"server's first frame is {frame_name(event.frame)}")
        except BaseException:
            await _close_ws(ws)
            raise
        return cls(ws, url, Received(0, event.frame, first), timeout, core)

    # -- reading

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    self.violations.append(f"server sent a text message {message[:40]!r}")
                    continue
                try:
                    events = self.core.receive_data(message)
                except DecodeError as exc:
                    self.violations.append(
                        f"server sent a frame that does not decode ({exc}): {describe(message)}")
                    continue
                for event in events:
                    self._on_event(event, message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for waiter in [*self._waiting.values(), *self._zero_waiters]:
                if not waiter.done():
                    waiter.set_exception(_Lost())
            self._waiting.clear()
            self._zero_waiters.clear()

    def _on_event(self, event: ServerEvent, raw: bytes) -> None:
        rec = Received(event.request_id, event.frame, raw, next(self._arrivals))
        frame = event.frame
        if isinstance(frame, Error) and len(frame.message.encode()) > MAX_ERROR_MESSAGE:
            self.violations.append(f"ERROR message of {len(frame.message.encode())} "
                                   f"bytes (at most {MAX_ERROR_MESSAGE})")
        if isinstance(event, Violation):
            self.violations.append(f"server sent {event.reason}")
        if rec.request_id:
            waiter = self._waiting.pop(rec.request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(rec)  # a wrong answer too: the check says what it wanted
            return
        if isinstance(event, Refused) and self._zero_waiters:
            waiter = self._zero_waiters.pop(0)
            if not waiter.done():
                waiter.set_result(rec)
            return
        self.pushes.put_nowait(rec)

    def close_description(self) -> str:
        code = self.ws.close_code
        reason = self.ws.close_reason
        if code is None:
            return "the connection was lost"
        return f"the server closed the connection ({code}{': ' + reason if reason else ''})"

    # -- sending

    def next_id(self) -> int:
        return self.core.next_request_id()

    def encode(self, frame: Frame) -> bytes:
        """The frame's bytes with a fresh request id."""
        return encode_frame(frame, self.next_id())

    async def send_raw(self, data: bytes | str, paced: bool = True) -> None:
        if paced:
            await self.pacer.take()
        if self.closed.is_set():
            raise CheckFailed(f"{self.close_description()} before {describe(data)} was sent")
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            raise CheckFailed(
                f"{self.close_description()} before {describe(data)} was sent") from None

    async def roundtrip(self, data: bytes | str, *, zero_ok: bool = False, paced: bool = True,
                        timeout: float | None = None, what: str | None = None) -> Received:
        """Sends `data` and returns the answer: the frame carrying its request id, or for
        data too short to have one (or with `zero_ok`) an ERROR with request id 0."""
        has_id = isinstance(data, bytes) and len(data) >= FRAME_HEADER_LEN
        request_id = int.from_bytes(data[2:6], "big") if isinstance(data, bytes) and has_id else 0
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Received]] = []
        by_id: asyncio.Future[Received] | None = None
        zero: asyncio.Future[Received] | None = None
        if request_id:
            if request_id in self._waiting:
                raise RuntimeError(f"request id {request_id} is already in flight")
            assert isinstance(data, bytes)
            self.core.expect(data)  # its answer is matched like any other
            by_id = loop.create_future()
            self._waiting[request_id] = by_id
            waiters.append(by_id)
        if not request_id or zero_ok:
            zero = loop.create_future()
            self._zero_waiters.append(zero)
            waiters.append(zero)
        what = what or describe(data)
        limit = self.timeout if timeout is None else timeout
        registering = _register_in(data)
        refused = False
        try:
            await self.send_raw(data, paced)
            done, _ = await asyncio.wait(waiters, timeout=limit,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                if self.closed.is_set():
                    raise CheckFailed(f"{self.close_description()} instead of answering {what}")
                raise CheckFailed(f"no answer within {limit:g} s to {what}")
            try:
                answer = done.pop().result()
            except _Lost:
                raise CheckFailed(
                    f"{self.close_description()} instead of answering {what}") from None
            refused = isinstance(answer.frame, Error)
            return answer
        finally:
            if registering is not None and not refused:
                # OK, or no answer: the account may exist, so it is deleted at the end
                self.ledger.maybe_registered(registering.username, registering.identity)
            if by_id is not None and self._waiting.get(request_id) is by_id:
                del self._waiting[request_id]
                self.core.forget(request_id)  # an answer arriving later is a violation
            if zero is not None and zero in self._zero_waiters:
                self._zero_waiters.remove(zero)
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()

    async def close(self) -> None:
        await _close_ws(self.ws)
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class Probe(ProbeShell):
    """One connection to the server under test, with the suite's vocabulary: requests
    that must succeed, errors that must come, pushes to wait for. Create with
    `await Probe.open(url)`."""

    async def request(self, frame: Frame, expect: type[F], what: str | None = None) -> F:
        """Sends a frame that should succeed; returns the typed answer."""
        what = what or frame_name(frame)
        rec = await self.roundtrip(self.encode(frame), what=what)
        if isinstance(rec.frame, Error):
            raise ServerRefused(what, rec.frame)
        if not isinstance(rec.frame, expect):
            raise CheckFailed(f"{what}: expected {frame_name(expect)}, got {frame_name(rec.frame)}")
        return rec.frame

    async def expect_error(self, data: Frame | bytes | str,
                           codes: ErrorCode | Iterable[ErrorCode], what: str,
                           *, zero_ok: bool = False) -> Error:
        """Sends a frame (or raw bytes) that must be answered with ERROR of one of `codes`."""
        allowed = (codes,) if isinstance(codes, ErrorCode) else tuple(codes)
        names = " or ".join(c.name for c in allowed)
        raw = self.encode(data) if isinstance(data, Frame) else data
        rec = await self.roundtrip(raw, zero_ok=zero_ok, what=what)
        if not isinstance(rec.frame, Error):
            raise CheckFailed(f"{what}: expected ERROR {names}, got {frame_name(rec.frame)}")
        if rec.frame.code not in allowed:
            raise CheckFailed(f"{what}: expected ERROR {names}, got "
                              f"{error_name(rec.frame.code)} ({rec.frame.message})")
        return rec.frame

    async def alive(self, what: str) -> None:
        """The connection still answers: PREKEY_COUNT gets PREKEY_COUNTS (logged in) or
        NOT_AUTHENTICATED (not logged in)."""
        rec = await self.roundtrip(self.encode(PrekeyCount()),
                                   what=f"PREKEY_COUNT after {what}")
        frame = rec.frame
        if isinstance(frame, PrekeyCounts):
            return
        if isinstance(frame, Error) and frame.code == ErrorCode.NOT_AUTHENTICATED:
            return
        raise CheckFailed(f"after {what}, PREKEY_COUNT got {describe_answer(rec)}")

    # -- pushes

    async def next_push(self, what: str, timeout: float | None = None) -> Received:
        limit = self.timeout if timeout is None else timeout
        if self.pushes.empty() and self.closed.is_set():
            raise CheckFailed(f"{self.close_description()} while waiting for {what}")
        try:
            return await asyncio.wait_for(self.pushes.get(), limit)
        except TimeoutError:
            if self.closed.is_set():
                raise CheckFailed(f"{self.close_description()} while waiting for {what}") from None
            raise CheckFailed(f"no {what} within {limit:g} s") from None

    async def wait_push(self, kind: type[F], what: str, timeout: float | None = None
                        ) -> tuple[F, Received]:
        """The next push of this kind; pushes of other kinds are set aside in `skipped`."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            rec = await self.next_push(what, max(0.0, deadline - time.monotonic()))
            if isinstance(rec.frame, kind):
                return rec.frame, rec
            self.skipped.append(rec)

    def pending_pushes(self) -> list[Received]:
        """Everything pushed so far and not yet taken, without waiting."""
        out: list[Received] = []
        while not self.pushes.empty():
            out.append(self.pushes.get_nowait())
        return out

    async def drain_queue(self, what: str) -> tuple[list[Received], int]:
        """After LOGIN: the DELIVER pushes up to QUEUE_DONE, and QUEUE_DONE's count.
        PREKEYS_LOW on the way is set aside in `skipped`."""
        delivered: list[Received] = []
        while True:
            rec = await self.next_push(f"QUEUE_DONE after {what}")
            if isinstance(rec.frame, Deliver):
                delivered.append(rec)
            elif isinstance(rec.frame, QueueDone):
                return delivered, rec.frame.delivered
            elif isinstance(rec.frame, PrekeysLow):
                self.skipped.append(rec)
            else:
                raise CheckFailed(f"after {what}, got {describe_answer(rec)} before QUEUE_DONE")

    # -- the requests

    def register_frame(self, username: str, identity: IdentityKeyPair) -> Register:
        self.ledger.remember(identity)
        return self.core.register_frame(username, identity.public, identity.sign)

    def login_frame(self, username: str, identity: IdentityKeyPair) -> Login:
        self.ledger.remember(identity)
        return self.core.login_frame(username, identity.sign)

    async def register(self, username: str, identity: IdentityKeyPair) -> None:
        await self.request(self.register_frame(username, identity), Ok,
                           f"REGISTER {username}")

    async def login(self, username: str, identity: IdentityKeyPair) -> None:
        await self.request(self.login_frame(username, identity), Ok, f"LOGIN {username}")

    async def upload_signed(self, spk: SignedPreKey, last_resort: KemPreKey) -> None:
        await self.request(UploadSignedPrekeys(spk, last_resort), Ok, "UPLOAD_SIGNED_PREKEYS")

    async def upload_one_time(self, one_time: Sequence[OneTimePreKey],
                              kem: Sequence[KemPreKey]) -> None:
        """Uploads in as many frames as max_frame requires."""
        for chunk_one, chunk_kem in chunk_prekeys(self.limits.max_frame, one_time, kem):
            await self.request(UploadOneTimePrekeys(chunk_one, chunk_kem), Ok,
                               f"UPLOAD_ONE_TIME_PREKEYS ({len(chunk_one)} X25519, "
                               f"{len(chunk_kem)} ML-KEM)")

    async def fetch_bundle(self, username: str) -> PreKeyBundle:
        answer = await self.request(FetchBundle(username), Bundle, f"FETCH_BUNDLE {username}")
        try:
            return PreKeyBundle.decode(answer.bundle)
        except DecodeError as exc:
            raise CheckFailed(f"BUNDLE for {username} does not decode: {exc}") from None

    async def counts(self) -> tuple[int, int]:
        answer = await self.request(PrekeyCount(), PrekeyCounts)
        return answer.one_time, answer.kem_one_time

    async def send(self, envelopes: Sequence[tuple[str, bytes]]) -> tuple[bytes, ...]:
        frame = Send(tuple(Outgoing(r, b) for r, b in envelopes))
        sent = await self.request(frame, Sent, f"SEND of {len(envelopes)} envelope(s)")
        if len(sent.envelope_ids) != len(envelopes):
            raise CheckFailed(f"SENT lists {len(sent.envelope_ids)} ids for a SEND of "
                              f"{len(envelopes)} envelopes")
        if len(set(sent.envelope_ids)) != len(sent.envelope_ids):
            raise CheckFailed("SENT lists the same envelope id twice")
        return sent.envelope_ids

    async def ack(self, envelope_ids: Sequence[bytes]) -> None:
        per_frame = max(1, min(1000, (self.limits.max_frame - FRAME_HEADER_LEN - 2) // 16))
        for start in range(0, len(envelope_ids), per_frame):
            chunk = tuple(envelope_ids[start:start + per_frame])
            await self.request(Ack(chunk), Ok, f"ACK of {len(chunk)} envelope(s)")


def _register_in(data: bytes | str) -> Register | None:
    """The REGISTER these bytes carry, if they are one (however they were made)."""
    if isinstance(data, str) or len(data) < FRAME_HEADER_LEN or data[1] != Register.TYPE:
        return None
    try:
        _, frame = decode_client_frame(data)
    except DecodeError:
        return None
    return frame if isinstance(frame, Register) else None


async def _close_ws(ws: ClientConnection) -> None:
    """Closes politely; a server that does not finish the closing handshake in time
    gets its TCP connection dropped."""
    try:
        await asyncio.wait_for(ws.close(), 3)
    except asyncio.CancelledError:
        ws.transport.abort()
        raise
    except Exception:
        ws.transport.abort()


def chunk_prekeys(max_frame: int, one_time: Sequence[OneTimePreKey], kem: Sequence[KemPreKey]
                  ) -> list[tuple[tuple[OneTimePreKey, ...], tuple[KemPreKey, ...]]]:
    """Splits one-time prekeys into UPLOAD_ONE_TIME_PREKEYS payloads that fit max_frame."""
    budget = max_frame - FRAME_HEADER_LEN - 4
    chunks: list[tuple[tuple[OneTimePreKey, ...], tuple[KemPreKey, ...]]] = []
    one_left, kem_left = list(one_time), list(kem)
    while one_left or kem_left or not chunks:
        room = budget
        take_one = min(len(one_left), max(0, room // ONE_TIME_RECORD_LEN))
        room -= take_one * ONE_TIME_RECORD_LEN
        take_kem = min(len(kem_left), max(0, room // KEM_RECORD_LEN))
        if not take_one and not take_kem and (one_left or kem_left):
            raise SkipCheck(f"max_frame {max_frame} cannot hold a single prekey upload")
        chunks.append((tuple(one_left[:take_one]), tuple(kem_left[:take_kem])))
        one_left, kem_left = one_left[take_one:], kem_left[take_kem:]
    return chunks


def deliver_payload(envelope_id: bytes, received_at: int, body: bytes) -> bytes:
    """DELIVER's exact payload: what the recipient may learn, and nothing else."""
    return envelope_id + codec.u64(received_at) + codec.var32(body)
