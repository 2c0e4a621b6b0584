"""The relay's behaviour, one connection at a time, independent of the transport.

A `Relay` owns the storage and the map of who is online. `Relay.handle` runs one
WebSocket connection: it sends HELLO with a fresh challenge, then answers each
frame in order. Every bad frame gets an ERROR frame with a stable code; none
closes the connection or touches another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.wire.errors import (
    BadSignature,
    DecodeError,
    InvalidUsername,
    UnknownFrameType,
    UnsupportedVersion,
)
from protocol.wire.frames import (
    Ack,
    Bundle,
    Deliver,
    Error,
    ErrorCode,
    FetchBundle,
    Frame,
    Hello,
    Identity,
    Limits,
    Login,
    LookupIdentity,
    Ok,
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
    login_statement,
    register_statement,
)
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from protocol.wire.publickeys import verify_signature
from server.limits import TokenBucket
from server.storage import (
    IdentityInUse,
    NoPrekeys,
    QueueFull,
    Storage,
    StorageError,
    StoredEnvelope,
    TooManyPrekeys,
    UnknownUser,
    UsernameTaken,
)

log = logging.getLogger("blindrelay.server")

OUTBOX_SIZE = 256
"""Frames waiting to be written to one connection. A recipient that falls this far
behind live pushes is disconnected (1013); its envelopes stay queued for its
next login."""

DRAIN_PAGE = 128

MAX_PIPELINED_SENDS = 32
"""SENDs one connection may have committing at once; reading waits beyond that."""

SEND_GRACE = 5.0
"""Seconds a closing connection waits for its SENDs in flight to commit."""

_STORAGE_CODES: dict[type[StorageError], ErrorCode] = {
    UsernameTaken: ErrorCode.USERNAME_TAKEN,
    IdentityInUse: ErrorCode.IDENTITY_IN_USE,
    UnknownUser: ErrorCode.UNKNOWN_USER,
    NoPrekeys: ErrorCode.NO_PREKEYS,
    TooManyPrekeys: ErrorCode.TOO_MANY_PREKEYS,
    QueueFull: ErrorCode.QUEUE_FULL,
}


class Transport(Protocol):
    """What the relay needs of a WebSocket connection."""

    def __aiter__(self) -> Any: ...

    async def send(self, message: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class RelayEvent:
    """What an observer (the teaching demo) is told: metadata only, the same the relay
    could log, plus the ciphertext only where the demo shows an excerpt of it."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


class RequestError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Connection:
    __slots__ = ("challenge", "close_task", "closing", "draining", "last_seq", "outbox",
                 "pending", "rate", "send_slots", "sends", "username", "ws")

    def __init__(self, ws: Transport, challenge: bytes, rate: TokenBucket) -> None:
        self.ws = ws
        self.challenge = challenge
        self.rate = rate
        self.username: str | None = None
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(OUTBOX_SIZE)
        self.draining = False
        self.pending: list[StoredEnvelope] = []
        self.last_seq = 0
        self.send_slots = asyncio.Semaphore(MAX_PIPELINED_SENDS)
        self.sends: set[asyncio.Task[None]] = set()
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None

    def send_done(self, task: asyncio.Task[None]) -> None:
        self.sends.discard(task)
        self.send_slots.release()

    async def writer(self) -> None:
        try:
            while (data := await self.outbox.get()) is not None:
                await self.ws.send(data)
            return
        except Exception:
            pass
        # The connection is gone. Keep taking frames off the outbox (dropping them)
        # so nothing waiting to put one blocks forever, and make sure the reader sees
        # the close; the handler's cleanup then ends this loop with None.
        self.closing = True
        closer = asyncio.get_running_loop().create_task(self.ws.close(1011, "write failed"))
        while await self.outbox.get() is not None:
            pass
        await asyncio.gather(closer, return_exceptions=True)

    def push(self, env: StoredEnvelope) -> None:
        """Live delivery of a freshly stored envelope, in seq order, at most once."""
        if self.closing:
            return
        if self.draining:
            self.pending.append(env)
            return
        if env.seq <= self.last_seq:
            return
        try:
            self.outbox.put_nowait(_deliver_frame(env))
        except asyncio.QueueFull:
            # too far behind: the envelopes stay queued for its next login
            self.closing = True
            self.close_task = asyncio.get_running_loop().create_task(
                self.ws.close(1013, "too far behind; log in again to fetch the queue"))
            return
        self.last_seq = env.seq


def _deliver_frame(env: StoredEnvelope) -> bytes:
    return encode_frame(Deliver(env.envelope_id, env.received_at, env.body))


class Relay:
    def __init__(
        self,
        storage: Storage,
        limits: Limits,
        accepted_urls: frozenset[str],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.limits = limits
        self.accepted_urls = accepted_urls
        self.clock = clock
        self.monotonic = monotonic
        self.online: dict[str, set[Connection]] = {}
        self.observers: list[Callable[[RelayEvent], None]] = []
        self.connections = 0

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.observers:
            event = RelayEvent(kind, fields)
            for observer in self.observers:
                observer(event)

    # -- one connection

    async def handle(self, ws: Transport) -> None:
        conn = Connection(ws, os.urandom(32),
                          TokenBucket(self.limits.rate_per_second, self.limits.rate_burst,
                                      self.monotonic()))
        writer = asyncio.get_running_loop().create_task(conn.writer())
        self.connections += 1
        try:
            await conn.outbox.put(encode_frame(Hello(conn.challenge, self.limits)))
            async for message in ws:
                await self._on_message(conn, message)
        except Exception as exc:
            if type(exc).__name__ not in ("ConnectionClosedOK", "ConnectionClosedError"):
                log.exception("connection handler failed")
        finally:
            self.connections -= 1
            if conn.username is not None:
                peers = self.online.get(conn.username)
                if peers is not None:
                    peers.discard(conn)
                    if not peers:
                        del self.online[conn.username]
            if conn.sends:  # stores in flight commit; their answers go out if they can
                _, late = await asyncio.wait(set(conn.sends), timeout=SEND_GRACE)
                for task in late:
                    task.cancel()
            # put_nowait can fail on a full outbox; cancelling the writer is enough then
            try:
                conn.outbox.put_nowait(None)
            except asyncio.QueueFull:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _on_message(self, conn: Connection, message: bytes | str) -> None:
        request_id = 0
        try:
            if isinstance(message, str):
                raise RequestError(ErrorCode.MALFORMED_FRAME,
                                   "text messages are not part of the protocol; send binary")
            if len(message) >= 6:
                request_id = int.from_bytes(message[2:6], "big")
            if len(message) > self.limits.max_frame:
                raise RequestError(ErrorCode.FRAME_TOO_LARGE,
                                   f"frame of {len(message)} bytes; the limit is "
                                   f"{self.limits.max_frame}")
            if not conn.rate.take(self.monotonic()):
                raise RequestError(ErrorCode.RATE_LIMITED,
                                   f"more than {self.limits.rate_per_second} frames per second")
            try:
                request_id, frame = decode_client_frame(message)
            except UnsupportedVersion as exc:
                raise RequestError(ErrorCode.UNSUPPORTED_VERSION, str(exc)) from None
            except UnknownFrameType as exc:
                raise RequestError(ErrorCode.UNKNOWN_FRAME_TYPE, str(exc)) from None
            except InvalidUsername as exc:
                raise RequestError(ErrorCode.USERNAME_INVALID, str(exc)) from None
            except DecodeError as exc:
                raise RequestError(ErrorCode.MALFORMED_FRAME, str(exc)) from None
        except RequestError as exc:
            await self._reply(conn, request_id, Error(exc.code, exc.message))
            return
        self._emit("frame", type=type(frame).__name__, size=len(message), user=conn.username)
        if isinstance(frame, Send) and conn.username is not None:
            # Pipelined: the next frames are read while this SEND commits. Stores join
            # the group commit in arrival order (tasks start in the order created), and
            # their SENTs go out in that order too.
            await conn.send_slots.acquire()
            task = asyncio.get_running_loop().create_task(
                self._answer(conn, request_id, frame))
            conn.sends.add(task)
            task.add_done_callback(conn.send_done)
            return
        await self._answer(conn, request_id, frame)

    async def _answer(self, conn: Connection, request_id: int, frame: Frame) -> None:
        try:
            await self._dispatch(conn, request_id, frame)
        except RequestError as exc:
            await self._reply(conn, request_id, Error(exc.code, exc.message))
        except StorageError as exc:
            code = _STORAGE_CODES.get(type(exc), ErrorCode.INTERNAL_ERROR)
            await self._reply(conn, request_id, Error(code, str(exc)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            log.exception("internal error handling a frame")
            await self._reply(conn, request_id,
                              Error(ErrorCode.INTERNAL_ERROR, "internal error"))

    async def _reply(self, conn: Connection, request_id: int, frame: Frame) -> None:
        await conn.outbox.put(encode_frame(frame, request_id))

    async def _dispatch(self, conn: Connection, request_id: int, frame: Frame) -> None:
        if isinstance(frame, Register | Login):
            if conn.username is not None:
                raise RequestError(ErrorCode.ALREADY_AUTHENTICATED,
                                   f"already logged in as {conn.username}")
            if isinstance(frame, Register):
                await self._register(conn, frame)
            else:
                await self._login(conn, frame)
            await self._reply(conn, request_id, Ok())
            await self._drain(conn)
            return
        user = conn.username
        if user is None:
            raise RequestError(ErrorCode.NOT_AUTHENTICATED, "log in first")
        if isinstance(frame, Send):
            await self._reply(conn, request_id, await self._send(frame, user))
        elif isinstance(frame, Ack):
            count = await self.storage.delete_envelopes(user, list(frame.envelope_ids))
            self._emit("deleted", recipient=user, ids=frame.envelope_ids, count=count)
            await self._reply(conn, request_id, Ok())
        elif isinstance(frame, FetchBundle):
            await self._reply(conn, request_id,
                              await self._fetch_bundle(frame.username, user))
        elif isinstance(frame, UploadSignedPrekeys):
            identity = await self._identity(user)
            _verify(frame.signed_prekey, identity)
            _verify(frame.last_resort_kem, identity)
            await self.storage.set_signed_prekeys(user, frame.signed_prekey.encode(),
                                                  frame.last_resort_kem.encode())
            await self._reply(conn, request_id, Ok())
        elif isinstance(frame, UploadOneTimePrekeys):
            identity = await self._identity(user)
            for record in frame.kem_one_time:
                _verify(record, identity)
            await self.storage.add_one_time_prekeys(
                user,
                [(k.key_id, k.encode()) for k in frame.one_time],
                [(k.key_id, k.encode()) for k in frame.kem_one_time],
                self.limits.max_prekeys,
            )
            await self._reply(conn, request_id, Ok())
        elif isinstance(frame, LookupIdentity):
            await self._reply(conn, request_id,
                              Identity(await self._lookup_identity(frame.username, user)))
        elif isinstance(frame, PrekeyCount):
            one, kem = await self.storage.prekey_counts(user)
            await self._reply(conn, request_id, PrekeyCounts(one, kem))
        else:  # pragma: no cover - decode_client_frame only yields the types above
            raise RequestError(ErrorCode.UNKNOWN_FRAME_TYPE, "unexpected frame")

    # -- accounts and login

    def _check_statement(self, identity: bytes, signature: bytes,
                         statement: Callable[[str], bytes]) -> None:
        for url in self.accepted_urls:
            try:
                verify_signature(identity, signature, statement(url))
                return
            except BadSignature:
                continue
        raise RequestError(ErrorCode.BAD_SIGNATURE,
                           "signature does not verify for this server and challenge")

    async def _register(self, conn: Connection, frame: Register) -> None:
        challenge = conn.challenge
        self._check_statement(
            frame.identity, frame.signature,
            lambda url: register_statement(url, challenge, frame.username, frame.identity))
        await self.storage.register(frame.username, frame.identity)
        self._emit("registered", user=frame.username)
        conn.username = frame.username

    async def _login(self, conn: Connection, frame: Login) -> None:
        identity = await self.storage.identity(frame.username)
        if identity is None:
            raise RequestError(ErrorCode.UNKNOWN_USER, f"no user {frame.username!r}")
        challenge = conn.challenge
        self._check_statement(identity, frame.signature,
                              lambda url: login_statement(url, challenge, frame.username))
        conn.username = frame.username

    async def _lookup_identity(self, username: str, requester: str) -> bytes:
        identity = await self.storage.identity(username)
        if identity is None:
            raise RequestError(ErrorCode.UNKNOWN_USER, f"no user {username!r}")
        return identity

    async def _identity(self, user: str) -> bytes:
        identity = await self.storage.identity(user)
        if identity is None:  # pragma: no cover - accounts are never deleted
            raise RequestError(ErrorCode.UNKNOWN_USER, "account vanished")
        return identity

    async def _drain(self, conn: Connection) -> None:
        """After login: the queue in order, then live pushes; QUEUE_DONE in between."""
        user = conn.username
        assert user is not None
        conn.challenge = b""  # used up: a second login on this connection is refused anyway
        conn.draining = True
        self.online.setdefault(user, set()).add(conn)
        count = 0
        try:
            not_before = int(self.clock()) - self.limits.envelope_ttl
            while batch := await self.storage.queued(user, conn.last_seq, DRAIN_PAGE,
                                                     not_before):
                for env in batch:
                    await conn.outbox.put(_deliver_frame(env))
                    conn.last_seq = env.seq
                    count += 1
            # pushes that arrived meanwhile, still under `draining` so that none can
            # overtake them
            while conn.pending:
                env = conn.pending.pop(0)
                if env.seq > conn.last_seq:
                    await conn.outbox.put(_deliver_frame(env))
                    conn.last_seq = env.seq
                    count += 1  # delivered before QUEUE_DONE, so counted by it
        finally:
            conn.draining = False
            conn.pending = []
        await conn.outbox.put(encode_frame(QueueDone(count)))
        self._emit("login", user=user, delivered=count)
        one, kem = await self.storage.prekey_counts(user)
        if min(one, kem) < self.limits.prekey_low:
            await conn.outbox.put(encode_frame(PrekeysLow(one, kem)))

    # -- prekeys

    async def _fetch_bundle(self, username: str, requester: str) -> Bundle:
        parts = await self.storage.take_bundle(username)
        bundle = PreKeyBundle(
            parts.identity,
            SignedPreKey.decode(parts.signed_prekey),
            parts.kem_kind,
            KemPreKey.decode(parts.kem_prekey),
            None if parts.one_time_prekey is None else OneTimePreKey.decode(parts.one_time_prekey),
        )
        opk = bundle.one_time_prekey
        self._emit("bundle", user=username, requester=requester,
                   one_time_prekey=None if opk is None else opk.key_id,
                   kem_prekey=bundle.kem_prekey.key_id, kem_kind=parts.kem_kind.name)
        if min(parts.one_time_left, parts.kem_one_time_left) < self.limits.prekey_low:
            low = encode_frame(PrekeysLow(parts.one_time_left, parts.kem_one_time_left))
            for owner in self.online.get(username, ()):
                with contextlib.suppress(asyncio.QueueFull):  # told again at next login
                    owner.outbox.put_nowait(low)
        return Bundle(bundle.encode())

    # -- envelopes

    async def _send(self, frame: Send, sender: str) -> Sent:
        """`sender` is known from the login but never stored (docs/DATA.md)."""
        self._check_send(frame)
        stored = await self.store_and_push([(e.recipient, e.body) for e in frame.envelopes])
        return Sent(tuple(env.envelope_id for env in stored))

    def _check_send(self, frame: Send) -> None:
        if len(frame.envelopes) > self.limits.max_recipients:
            raise RequestError(ErrorCode.TOO_MANY_RECIPIENTS,
                               f"at most {self.limits.max_recipients} envelopes per SEND")
        for out in frame.envelopes:
            if len(out.body) > self.limits.max_envelope:
                raise RequestError(ErrorCode.ENVELOPE_TOO_LARGE,
                                   f"envelope of {len(out.body)} bytes; the limit is "
                                   f"{self.limits.max_envelope}")

    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        """Stores envelopes (all or none), then pushes each to its online recipient."""
        stored = await self.storage.store_envelopes(items, int(self.clock()),
                                                    self.limits.max_queue)
        for env in stored:
            self._emit("stored", id=env.envelope_id, recipient=env.recipient,
                       size=len(env.body), received_at=env.received_at, body=env.body)
            for conn in self.online.get(env.recipient, ()):
                conn.push(env)
        return stored

    async def expire_once(self) -> int:
        count = await self.storage.expire(int(self.clock()) - self.limits.envelope_ttl)
        if count:
            self._emit("expired", count=count)
        return count


def _verify(record: SignedPreKey | KemPreKey, identity: bytes) -> None:
    try:
        record.verify(identity)
    except BadSignature:
        raise RequestError(ErrorCode.BAD_SIGNATURE,
                           f"prekey {record.key_id}: signature does not verify against the "
                           "account's identity key") from None
