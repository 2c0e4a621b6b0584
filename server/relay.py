"""The relay: an asyncio and storage shell over protocol.wire.connection.ServerConnection.

A `Relay` owns the storage and the map of who is online. `Relay.handle` runs one
WebSocket connection: it sends HELLO with a fresh challenge, then answers each frame
in order. What a frame means, whether the connection's state allows it, which answer
it gets and in which order envelopes go out are decided by the sans-I/O core; this
module only stores, looks up and moves bytes. Every bad frame gets an ERROR frame with
a stable code; none closes the connection or touches another one (PROTOCOL.md 16.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from protocol.wire.certificates import DEFAULT_LIFETIME, issue, signer_from_seed
from protocol.wire.connection import (
    RequestRefused,
    ServerConnection,
    check_prekeys,
    check_send,
    is_quiet,
)
from protocol.wire.errors import LocalProtocolError
from protocol.wire.events import Refusal, Request
from protocol.wire.frames import (
    Ack,
    Bundle,
    Certificate,
    CertKey,
    CertKeyAnswer,
    DeleteAccount,
    Deliver,
    ErrorCode,
    FetchBundle,
    FetchKeyPackage,
    Frame,
    GetCertificate,
    GroupDeliver,
    GroupSend,
    Identity,
    KeyPackageAnswer,
    KtConsistency,
    KtConsistencyProof,
    KtEntries,
    KtEntryRange,
    KtInfo,
    KtInfoAnswer,
    KtLookup,
    KtLookupAnswer,
    KtOwn,
    KtOwnEntries,
    Limits,
    Login,
    LookupIdentity,
    Ok,
    OwnEntry,
    PrekeyCount,
    PrekeyCounts,
    Register,
    SealedSend,
    Send,
    Sent,
    SetCapability,
    UploadKeyPackages,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    encode_frame,
    url_origin,
)
from protocol.wire.kt.directory import Directory
from protocol.wire.kt.note import Signer
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from server.budgets import Budgets, RelayBudgets
from server.connections import (
    MAX_OUTBOX_BYTES,
    ConnectionLimits,
    FrameHookConnection,
    Outbox,
    OutboxFull,
    check_account_cap,
    close_for_login_timeout,
    inline_writer,
)
from server.events import (
    Acked,
    BundleTaken,
    CheckpointPublished,
    DirectoryLookup,
    Expired,
    FrameIn,
    LoggedIn,
    Registered,
    RelayEvent,
    Stored,
)
from server.kt import catch_up, new_update
from server.lookups import LookupBudget
from server.storage import (
    CommitConflict,
    DirectoryUpdate,
    IdentityInUse,
    NoKeyPackages,
    NoPrekeys,
    QueueFull,
    Storage,
    StorageError,
    StorageFull,
    StoredEnvelope,
    TooManyPrekeys,
    UnknownUser,
    UsernameTaken,
    coarse_time,
    received_at_granularity,
)
from server.witnessing import Witnesses

if TYPE_CHECKING:
    from server.cluster import Cluster

log = logging.getLogger("blindrelay.server")

T = TypeVar("T")

OUTBOX_SIZE = 256
"""Frames waiting to be written to one connection. A recipient that falls this far
(or ConnectionLimits.max_outbox_bytes) behind live pushes is disconnected (1013); its
envelopes stay queued for its next login."""

DRAIN_PAGE = 128

MAX_PIPELINED_SENDS = 32
"""SENDs (and quiet ACKs) one connection may have committing at once; reading waits
beyond that."""

SEND_GRACE = 5.0
"""Seconds a closing connection waits for its SENDs in flight to commit."""

_STORAGE_CODES: dict[type[StorageError], ErrorCode] = {
    UsernameTaken: ErrorCode.USERNAME_TAKEN,
    IdentityInUse: ErrorCode.IDENTITY_IN_USE,
    UnknownUser: ErrorCode.UNKNOWN_USER,
    NoPrekeys: ErrorCode.NO_PREKEYS,
    TooManyPrekeys: ErrorCode.TOO_MANY_PREKEYS,
    QueueFull: ErrorCode.QUEUE_FULL,
    StorageFull: ErrorCode.STORAGE_FULL,
    CommitConflict: ErrorCode.COMMIT_CONFLICT,
    NoKeyPackages: ErrorCode.NO_KEY_PACKAGES,
}

__all__ = ["OUTBOX_SIZE", "Connection", "Relay", "RelayEvent", "Transport"]


class Transport(Protocol):
    """What the relay needs of a WebSocket connection."""

    def __aiter__(self) -> Any: ...

    async def send(self, message: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def _refusal(core: ServerConnection, request_id: int, exc: Exception) -> bytes:
    """The ERROR answering a request that failed with `exc`."""
    if isinstance(exc, RequestRefused):
        return core.refuse(request_id, exc.code, exc.message)
    if isinstance(exc, StorageError):
        return core.refuse(request_id, _STORAGE_CODES.get(type(exc), ErrorCode.INTERNAL_ERROR),
                           str(exc))
    log.error("internal error handling a frame", exc_info=exc)
    return core.refuse(request_id, ErrorCode.INTERNAL_ERROR, "internal error")


def _deliver(env: StoredEnvelope) -> Deliver:
    """DELIVER for a sealed envelope, GROUP_DELIVER for a group message (21.3)."""
    push = GroupDeliver if env.group else Deliver
    return push(env.envelope_id, env.received_at, env.body)


class Connection:
    """One WebSocket: the core that decides, the outbox (frames are written at once
    when the transport takes them; a writer task empties the outbox for a peer that
    reads slowly), and the SENDs committing on its behalf."""

    __slots__ = ("_late", "_writes_waiter", "close_task", "closing", "core", "finished",
                 "outbox", "send_slots", "sends", "writer_task", "writes", "ws")

    def __init__(self, ws: Transport, core: ServerConnection,
                 max_outbox_bytes: int = MAX_OUTBOX_BYTES) -> None:
        self.ws = ws
        self.core = core
        self.writer_task: asyncio.Task[None] | None = None
        self.outbox = Outbox(OUTBOX_SIZE, max_outbox_bytes, inline_writer(ws),
                             self._start_writer)
        self.send_slots = asyncio.Semaphore(MAX_PIPELINED_SENDS)
        self.sends: set[asyncio.Task[None]] = set()
        self.writes = 0
        """SENDs and quiet ACKs given to the storage and not yet committed (no task
        each: the storage calls back once their group commits)."""
        self._writes_waiter: asyncio.Future[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        self.finished = False
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None

    def _start_writer(self) -> None:
        self.writer_task = asyncio.get_running_loop().create_task(self.writer())

    def write_started(self) -> None:
        self.writes += 1

    def write_done(self) -> None:
        self.writes -= 1
        waiter, self._writes_waiter = self._writes_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def writes_below(self, limit: int) -> None:
        """Waits until fewer than `limit` writes are committing (1: all committed).
        Only the connection's own handler waits here."""
        while self.writes >= limit:
            self._writes_waiter = asyncio.get_running_loop().create_future()
            await self._writes_waiter

    def answer_soon(self, data: bytes) -> None:
        """An answer from a storage callback: written or queued now, in the order the
        callbacks come; if the outbox is full, it waits its turn in a task."""
        if self.finished:
            return
        try:
            self.outbox.put_nowait(data)
        except OutboxFull:
            task = asyncio.get_running_loop().create_task(self.outbox.put(data))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    @property
    def username(self) -> str | None:
        return self.core.username

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

    def push(self, env: StoredEnvelope, encoded: bytes) -> None:
        """Live delivery of a freshly stored envelope (`encoded`: its DELIVER, one bytes
        object shared by all the recipient's connections); the core holds it back during
        the login sequence and drops it if this connection already delivered it."""
        if self.closing:
            return
        data = self.core.push(env.seq, encoded)
        if data is None:
            return
        try:
            self.outbox.put_nowait(data)
        except OutboxFull:
            # too far behind: the envelopes stay queued for its next login
            self.closing = True
            self.close_task = asyncio.get_running_loop().create_task(
                self.ws.close(1013, "too far behind; log in again to fetch the queue"))


class Relay:
    connection_class: type[ServerConnection] = ServerConnection
    """The core each connection gets (a test swaps in a deliberately broken one)."""

    def __init__(
        self,
        storage: Storage,
        limits: Limits,
        accepted_urls: frozenset[str],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        budgets: Budgets | None = None,
        connection_limits: ConnectionLimits | None = None,
        directory: Directory | None = None,
        witnesses: Witnesses | None = None,
        cert_seed: bytes | None = None,
        certificate_lifetime: int = DEFAULT_LIFETIME,
    ) -> None:
        self.storage = storage
        self.connection_limits = connection_limits or ConnectionLimits()
        self.limits = limits
        self.accepted_urls = accepted_urls
        self.clock = clock
        self.monotonic = monotonic
        self.online: dict[str, set[Connection]] = {}
        self.observers: list[Callable[[RelayEvent], None]] = []
        self.connections = 0
        self.budgets = RelayBudgets(budgets or Budgets(), limits, monotonic)
        """What one requester, sender or address may take (server/budgets.py)."""
        self.lookups = LookupBudget()
        if directory is None:  # a bare Relay over a fresh storage (tests): fresh keys
            origin = url_origin(min(accepted_urls)) if accepted_urls else "localhost"
            directory = Directory(Signer.generate(origin), os.urandom(32))
        self.directory = directory
        """The key directory (PROTOCOL.md 19.10); run_server passes the one rebuilt
        from storage (server/kt.py). Changed only after a commit, under the lock."""
        self._directory_lock = asyncio.Lock()
        self.witnesses = witnesses or Witnesses()
        """Where each new head is sent for cosigning (server/witnessing.py, 19.11)."""
        self._cert_sign, self.cert_public_key = signer_from_seed(
            os.urandom(32) if cert_seed is None else cert_seed)
        """Sender certificates (PROTOCOL.md 20): run_server passes cert.key's seed."""
        self.certificate_lifetime = certificate_lifetime
        self.cluster: Cluster | None = None
        """Set when this relay is one of several processes sharing its storage
        (server/cluster.py): stores, deletions and directory updates are announced
        on the bus, and envelopes are delivered by reading the queue."""
        self.received_at_granularity = received_at_granularity(limits.envelope_ttl)
        self.pipelined_sends = (type(self)._send is Relay._send
                                and type(self).store_and_push is Relay.store_and_push)
        """SENDs go through `_send_soon` (no task each), unless a subclass changed
        `_send` or `store_and_push` (teaching's hostile relays and labs, the tests'
        cheats), which then carry them out as the documented hooks."""
        """Stored, and delivered, received_at times are multiples of this (300 s, less
        for a TTL under 20 minutes): PROTOCOL.md 16.5, docs/DATA.md."""

    def _emit(self, event: RelayEvent) -> None:
        for observer in self.observers:
            observer(event)

    # -- one connection

    async def handle(self, ws: Transport) -> None:
        core = self.connection_class(os.urandom(32), self.limits, self.accepted_urls,
                                     self.monotonic())
        conn = Connection(ws, core, self.connection_limits.max_outbox_bytes)
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.connection_limits.login_timeout,
                                   self._login_deadline, conn)
        self.connections += 1
        hooked = isinstance(ws, FrameHookConnection) and \
            type(self)._on_message is Relay._on_message
        if hooked:
            assert isinstance(ws, FrameHookConnection)
            ws.frame_hook = lambda message: self._take_now(conn, message)
        try:
            await conn.outbox.put(core.hello())
            async for message in ws:
                await self._on_message(conn, message)
                if core.deleted:  # its OK is in the outbox: the writer sends it, then
                    break  # returning closes the connection (PROTOCOL.md 16.8)
        except Exception as exc:
            if type(exc).__name__ not in ("ConnectionClosedOK", "ConnectionClosedError"):
                log.exception("connection handler failed")
        finally:
            if hooked:
                assert isinstance(ws, FrameHookConnection)
                ws.frame_hook = None
            deadline.cancel()
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
            if conn.writes:  # the same for the pipelined ones
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.writes_below(1), SEND_GRACE)
            if conn._late:
                await asyncio.wait(set(conn._late), timeout=SEND_GRACE)
            conn.finished = True
            conn.outbox.close()
            if conn.writer_task is not None:
                await asyncio.gather(conn.writer_task, return_exceptions=True)

    def _login_deadline(self, conn: Connection) -> None:
        if conn.username is None and not conn.closing:
            conn.closing = True
            conn.close_task = asyncio.get_running_loop().create_task(
                close_for_login_timeout(conn, self.connection_limits.login_timeout))

    def _take_now(self, conn: Connection, message: bytes) -> bool:
        """A SEND or quiet ACK (16.5) taken straight from the socket's callback while the
        handler waits idle (server/connections.py FrameHookConnection): what
        `_on_message` does for it, without waking the handler's task. Declined (False,
        the handler gets it) for any other frame, and whenever `_on_message` could have
        to wait: pipelined writes at their bound, frames waiting in the outbox."""
        if len(message) < 6 or conn.closing or conn.writes >= MAX_PIPELINED_SENDS \
                or len(conn.outbox):
            return False
        kind = message[1]
        if not ((kind == Send.TYPE and self.pipelined_sends)
                or (kind == Ack.TYPE and message[2:6] == b"\0\0\0\0")):
            return False
        event = conn.core.receive_data(message, self.monotonic())
        if event.frame is not None and self.observers:
            self._emit(FrameIn(type(event.frame).__name__, len(message), conn.username))
        frame = event.frame
        if isinstance(event, Refusal):
            conn.answer_soon(conn.core.refuse(event.request_id, event.code, event.message))
        elif isinstance(frame, Send):
            self._send_soon(conn, event, frame)
        elif isinstance(frame, Ack):  # request id 0: quiet
            self._ack_soon(conn, frame)
        else:  # pragma: no cover - the type byte decides the frame's class
            raise LocalProtocolError(f"frame type {kind:#x} decoded as {type(frame).__name__}")
        return True

    async def _on_message(self, conn: Connection, message: bytes | str) -> None:
        event = conn.core.receive_data(message, self.monotonic())
        if event.frame is not None and self.observers:
            self._emit(FrameIn(type(event.frame).__name__, len(message), conn.username))
        if isinstance(event, Refusal):
            await conn.outbox.put(conn.core.refuse(event.request_id, event.code,
                                                   event.message))
            return
        frame = event.frame
        if (isinstance(frame, Send) and self.pipelined_sends) or (
                isinstance(frame, Ack) and is_quiet(event.request_id, frame)):
            # Pipelined, without a task: the next frames are read while this SEND or
            # quiet ACK commits. Writes join the group commit in arrival order, and the
            # storage calls back in that order, so SENTs go out in that order too.
            await conn.writes_below(MAX_PIPELINED_SENDS)
            if isinstance(frame, Send):
                self._send_soon(conn, event, frame)
            else:
                self._ack_soon(conn, frame)
            return
        if conn.writes:  # anything else is answered after them (quiet ACK: 16.5)
            await conn.writes_below(1)
        if isinstance(frame, Send | SealedSend):
            # Pipelined: the next frames are read while this SEND commits. Stores join
            # the group commit in arrival order (tasks start in the order created), and
            # their SENTs go out in that order too.
            await conn.send_slots.acquire()
            task = asyncio.get_running_loop().create_task(self._answer(conn, event))
            conn.sends.add(task)
            task.add_done_callback(conn.send_done)
            return
        await self._answer(conn, event)

    async def _answer(self, conn: Connection, request: Request) -> None:
        core = conn.core
        data: bytes | None
        try:
            data = core.answer(request, await self._carry_out(conn, request.frame))
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            data = _refusal(core, request.request_id, exc)
        if data is not None:  # None: a quiet ACK carried out, answered by nothing (16.5)
            await conn.outbox.put(data)
        if isinstance(request.frame, Register | Login) and core.username is not None:
            try:
                await self._drain(conn, core.username)
            except Exception:
                log.exception("delivering the queue failed")

    async def _carry_out(self, conn: Connection, frame: Frame) -> Frame:
        """Does what a request the core accepted asks, and returns its answer."""
        core = conn.core
        if isinstance(frame, Register):
            core.check_register(frame)
            self.budgets.admit_register(getattr(conn.ws, "remote_address", None))
            await self._update_directory(
                frame.username, frame.identity,
                lambda update: self.storage.register(frame.username, frame.identity, update))
            self._emit(Registered(frame.username))
            self._published()
            core.log_in(frame.username)
            return Ok()
        if isinstance(frame, Login):
            core.check_login(frame, await self.storage.identity(frame.username))
            check_account_cap(self.online.get(frame.username, ()), self.connection_limits)
            core.log_in(frame.username)
            return Ok()
        if self.cluster is not None and isinstance(
                frame, KtInfo | KtConsistency | KtEntries | KtLookup | KtOwn):
            await self.catch_up_directory()  # another process may have appended
        if isinstance(frame, KtInfo | KtConsistency | KtEntries):
            return self._directory_read(frame)
        if isinstance(frame, SealedSend):  # the core allows it only on a connection
            return await self._sealed_send(frame)  # that never logs in: no sender
        if isinstance(frame, CertKey):
            return CertKeyAnswer(self.cert_public_key)
        user = core.username
        if user is None:  # pragma: no cover - the core refuses this before login
            raise LocalProtocolError("request before login")
        if isinstance(frame, Send):  # only where a subclass overrides _send
            return await self._send(frame, user)
        if isinstance(frame, GroupSend):
            return await self._group_send(frame, user)
        if isinstance(frame, UploadKeyPackages):
            await self.storage.add_key_packages(user, list(frame.key_packages),
                                                frame.last_resort, self.limits.max_prekeys)
            return Ok()
        if isinstance(frame, FetchKeyPackage):
            self.budgets.admit_fetch(user, frame.username)  # FETCH_BUNDLE's budgets
            return KeyPackageAnswer(await self.storage.take_key_package(frame.username))
        if isinstance(frame, DeleteAccount):
            return await self._delete_account(conn, frame, user)
        if isinstance(frame, Send):  # a subclass's _send (pipelined_sends)
            return await self._send(frame, user)
        if isinstance(frame, SetCapability):  # set_at: the day, no finer (docs/DATA.md)
            await self.storage.set_capability(user, frame.capability_hash, frame.allow_anyone,
                                              int(self.clock()) // 86400 * 86400)
            return Ok()
        if isinstance(frame, Ack):
            count = await self.storage.delete_envelopes(user, list(frame.envelope_ids))
            self.budgets.acked(user, frame.envelope_ids)
            self._emit(Acked(user, frame.envelope_ids, count))
            return Ok()
        if isinstance(frame, FetchBundle):
            return await self._fetch_bundle(frame.username, user)
        if isinstance(frame, UploadSignedPrekeys):
            check_prekeys((frame.signed_prekey, frame.last_resort_kem),
                          await self._identity(user))
            await self.storage.set_signed_prekeys(user, frame.signed_prekey.encode(),
                                                  frame.last_resort_kem.encode())
            return Ok()
        if isinstance(frame, UploadOneTimePrekeys):
            check_prekeys(frame.kem_one_time, await self._identity(user))
            await self.storage.add_one_time_prekeys(
                user,
                [(k.key_id, k.encode()) for k in frame.one_time],
                [(k.key_id, k.encode()) for k in frame.kem_one_time],
                self.limits.max_prekeys,
            )
            return Ok()
        if isinstance(frame, LookupIdentity):
            return Identity(await self._lookup_identity(frame.username, user))
        if isinstance(frame, PrekeyCount):
            return PrekeyCounts(*await self.storage.prekey_counts(user))
        if isinstance(frame, KtLookup):
            self._take_lookup(user)
            self._emit(DirectoryLookup(user, frame.username))
            # the checkpoint and the proof from one state: no await between them
            return KtLookupAnswer(self.head_note(),
                                  self.directory.lookup(frame.username).encode())
        if isinstance(frame, KtOwn):  # proofs against the checkpoint: no await between
            size = self.directory.size
            return KtOwnEntries(self.head_note(), self.directory.label(user)[1],
                                tuple(OwnEntry(index, opening, value, tuple(
                                    self.directory.log.inclusion_proof(index, size)))
                                    for index, opening, value in self.directory.owned(user)))
        if isinstance(frame, GetCertificate):  # issued, never recorded (docs/DATA.md)
            return Certificate(issue(self._cert_sign, user, await self._identity(user),
                                     int(self.clock()) + self.certificate_lifetime))
        raise LocalProtocolError(f"no handler for {type(frame).__name__}")  # pragma: no cover

    # -- accounts

    def _take_lookup(self, requester: str) -> None:
        """LOOKUP_IDENTITY and KT_LOOKUP share one budget per account (16.6, 19.10)."""
        if not self.lookups.take(requester, self.monotonic()):
            raise RequestRefused(ErrorCode.RATE_LIMITED,
                                 f"at most {self.lookups.burst} identity lookups at once, "
                                 f"{self.lookups.rate:g} per second after that")

    async def _lookup_identity(self, username: str, requester: str) -> bytes:
        self._take_lookup(requester)
        identity = await self.storage.identity(username)
        if identity is None:
            raise RequestRefused(ErrorCode.UNKNOWN_USER, f"no user {username!r}")
        return identity

    async def _identity(self, user: str) -> bytes:
        identity = await self.storage.identity(user)
        if identity is None:  # deleted on another connection
            raise RequestRefused(ErrorCode.UNKNOWN_USER, "account vanished")
        return identity

    async def _delete_account(self, conn: Connection, frame: DeleteAccount, user: str) -> Ok:
        """DELETE_ACCOUNT (16.4): the account's own signature over this connection's
        challenge; then the account, its prekeys and its queue go in one transaction,
        and every connection logged in as it is closed (this one after its OK)."""
        conn.core.check_delete_account(frame, await self.storage.identity(user))
        await self._update_directory(
            user, None, lambda update: self.storage.delete_account(user, update))
        self._published()
        conn.core.account_deleted()
        self.close_account(user, conn)
        if self.cluster is not None:
            self.cluster.account_deleted(user)
        return Ok()

    def close_account(self, user: str, conn: Connection | None) -> None:
        """Closes every connection logged in as a deleted account but `conn`."""
        for other in self.online.pop(user, set()):
            if other is not conn and not other.closing:
                other.closing = True
                other.close_task = asyncio.get_running_loop().create_task(
                    other.ws.close(1000, "account deleted"))

    # -- the key directory (PROTOCOL.md 19.10)

    async def _update_directory(self, username: str, identity: bytes | None,
                                write: Callable[[DirectoryUpdate], Awaitable[T]]) -> T:
        """Stores a registration or deletion together with its directory update (one
        transaction), then appends the update to the directory in memory and signs
        the new checkpoint. One at a time, so each update is computed from the state
        the one before left; shielded, so a connection that goes away mid-commit
        cannot leave the memory behind what committed. If the write fails, nothing
        changes."""
        return await asyncio.shield(self._locked_update(username, identity, write))

    async def _locked_update(self, username: str, identity: bytes | None,
                             write: Callable[[DirectoryUpdate], Awaitable[T]]) -> T:
        async with self._directory_lock, self.storage.directory_lock():
            await catch_up(self.directory, self.storage)  # what other processes appended
            binding, update = new_update(self.directory, username, identity)
            result = await write(update)
            self.directory.append(username, binding, update.opening)
            self.directory.checkpoint()
            await self.witnesses.publish(self.directory)
        if self.cluster is not None:
            self.cluster.directory_grew(self.directory.size)
        return result

    async def catch_up_directory(self) -> None:
        """Replays what other relay processes appended to the directory (they share
        the storage: server/cluster.py), and has the new head cosigned."""
        if not await self.storage.directory_updates_since(self.directory.size):
            return  # nothing new: no need to wait for an update in progress here
        async with self._directory_lock:
            if await catch_up(self.directory, self.storage):
                await self.witnesses.publish(self.directory)

    async def publish_head(self) -> None:
        """Has the current head cosigned (at start, before any update)."""
        async with self._directory_lock:
            await self.witnesses.publish(self.directory)

    def head_note(self) -> bytes:
        """The newest signed checkpoint as served: with its witnesses' cosignatures."""
        return self.witnesses.note(self.directory)

    def _published(self) -> None:
        self._emit(CheckpointPublished(self.directory.size,
                                       self.directory.log.root().hex()[:16]))

    def _directory_read(self, frame: KtInfo | KtConsistency | KtEntries) -> Frame:
        """The public reads, allowed before login too (witnesses, auditors)."""
        directory = self.directory
        size = directory.size
        if isinstance(frame, KtInfo):
            return KtInfoAnswer(directory.signer.verifier.encode(), directory.vrf_public_key,
                                self.head_note())
        if isinstance(frame, KtConsistency):
            old, new = frame.old_size, frame.new_size
            if old == 0 or old > new or new > size:
                raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                     f"no consistency proof from {old} to {new}: the sizes "
                                     f"must satisfy 0 < old <= new <= {size}")
            return KtConsistencyProof(directory.log.root(old),
                                      tuple(directory.consistency(old, new)))
        if frame.start > size:
            raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                 f"the log has {size} entries; none start at {frame.start}")
        end = min(size, frame.start + frame.count)
        return KtEntryRange(frame.start, tuple(directory.frontier(frame.start)),
                            tuple(e.encode() for e in directory.entries[frame.start:end]))

    async def _drain(self, conn: Connection, user: str) -> None:
        """After login: the queue in order, then live pushes; QUEUE_DONE in between."""
        core = conn.core
        core.start_drain()
        self.online.setdefault(user, set()).add(conn)
        try:
            not_before = int(self.clock()) - self.limits.envelope_ttl
            while batch := await self.storage.queued(user, core.last_seq, DRAIN_PAGE,
                                                     not_before):
                for env in batch:
                    if (data := core.deliver(env.seq, _deliver(env))) is not None:
                        await conn.outbox.put(data)
            # pushes that arrived meanwhile, still held so that none can overtake them
            while (data := core.next_held()) is not None:
                await conn.outbox.put(data)
        finally:
            done = core.end_drain()
        await conn.outbox.put(done)
        if self.cluster is not None:  # what was stored during the drain (cluster.py)
            self.cluster.pull(user)
        self._emit(LoggedIn(user, core.drained))
        low = core.prekeys_low(*await self.storage.prekey_counts(user))
        if low is not None:
            await conn.outbox.put(low)

    # -- prekeys

    async def _fetch_bundle(self, username: str, requester: str) -> Bundle:
        self.budgets.admit_fetch(requester, username)
        parts = await self.storage.take_bundle(username)
        bundle = PreKeyBundle(
            parts.identity,
            SignedPreKey.decode(parts.signed_prekey),
            parts.kem_kind,
            KemPreKey.decode(parts.kem_prekey),
            None if parts.one_time_prekey is None else OneTimePreKey.decode(parts.one_time_prekey),
        )
        opk = bundle.one_time_prekey
        self._emit(BundleTaken(username, requester, None if opk is None else opk.key_id,
                               bundle.kem_prekey.key_id, parts.kem_kind.name))
        self.tell_prekeys(username, parts.one_time_left, parts.kem_one_time_left)
        if self.cluster is not None:
            self.cluster.prekeys_taken(username)
        return Bundle(bundle.encode())

    def tell_prekeys(self, username: str, one_time: int, kem_one_time: int) -> None:
        """PREKEYS_LOW to the owner's connections here, if the counts are low."""
        for owner in self.online.get(username, ()):
            low = owner.core.prekeys_low(one_time, kem_one_time)
            if low is not None:
                with contextlib.suppress(OutboxFull):  # told again at next login
                    owner.outbox.put_nowait(low)

    # -- envelopes

    async def _group_send(self, frame: GroupSend, sender: str) -> Sent:
        """GROUP_SEND (PROTOCOL.md 21.3): one body for every recipient the sender
        names, stored once. The relay reads the message's cleartext header and nothing
        else; for a commit, it admits one per (group, epoch): the first. It keeps no
        list of who is in which group: the recipients come with each message."""
        check_send(frame, self.limits)
        header = frame.header
        items = [(r, frame.message) for r in frame.recipients]
        reservation = self.budgets.admit_send(sender, items)
        commit = None
        if header.is_commit:
            commit = (hashlib.sha256(header.group_id).digest(), header.epoch)
        now = coarse_time(self.clock(), self.received_at_granularity)
        try:
            stored = await self.storage.store_group_message(
                list(frame.recipients), frame.message, now, self.limits.max_queue,
                self.budgets.max_stored_bytes, self.budgets.max_stored_envelopes,
                commit, int(self.clock()) - self.limits.envelope_ttl)
        except BaseException:
            reservation.cancel()
            raise
        reservation.commit(stored)
        self._pushed(stored)
        return Sent(tuple(env.envelope_id for env in stored))

    async def _sealed_send(self, frame: SealedSend) -> Sent:
        """SEALED_SEND (PROTOCOL.md 16.10). It takes no sender, by design: the relay
        cannot store, log or budget one. Every envelope's capability must hash to its
        recipient's (or the recipient allows anyone), else BAD_CAPABILITY and nothing
        is stored; an unknown recipient has no capability, so it is refused the same
        way (no oracle of which names exist). Then one envelope each against its
        (recipient, capability) bucket, and the same store as SEND."""
        check_send(frame, self.limits)
        keys: list[tuple[str, bytes | None]] = []
        for env in frame.envelopes:
            stored = await self.storage.capability(env.recipient)
            digest = hashlib.sha256(env.capability).digest()
            if stored is not None and hmac.compare_digest(digest, stored[0]):
                keys.append((env.recipient, digest))
            elif stored is not None and stored[1]:
                keys.append((env.recipient, None))
            else:
                raise RequestRefused(ErrorCode.BAD_CAPABILITY,
                                     f"no valid capability for {env.recipient!r}")
        self.budgets.admit_sealed(keys)
        stored_envelopes = await self.store_and_push([(e.recipient, e.body)
                                                      for e in frame.envelopes])
        return Sent(tuple(env.envelope_id for env in stored_envelopes))

    async def _send(self, frame: Send, sender: str) -> Sent:
        """SEND carried out in a task of its own. The relay itself pipelines SENDs
        through _send_soon; this is the hook a subclass overrides to change what a SEND
        does (teaching's hostile relays), and is then used instead. `sender` is known
        from the login but never stored (docs/DATA.md)."""
        self._check_send(frame)
        items = [(out.recipient, out.body) for out in frame.envelopes]
        reservation = self.budgets.admit_send(sender, items)
        try:
            stored = await self.store_and_push(items)
        except BaseException:
            reservation.cancel()
            raise
        reservation.commit(stored)
        return Sent(tuple(env.envelope_id for env in stored))

    def _check_send(self, frame: Send) -> None:
        check_send(frame, self.limits)

    def _send_soon(self, conn: Connection, request: Request, frame: Send) -> None:
        """SEND, pipelined (_send without a task): the checks and the budget now, the
        store in the next group commit, and once it committed, from the storage's
        callback, the pushes (_pushed) and SENT; ERROR if refused. `sender` is known
        from the login but never stored (docs/DATA.md)."""
        core = conn.core
        sender = core.username
        if sender is None:  # pragma: no cover - the core refuses SEND before login
            raise LocalProtocolError("SEND before login")
        try:
            self._check_send(frame)
            items = [(e.recipient, e.body) for e in frame.envelopes]
            reservation = self.budgets.admit_send(sender, items)
        except Exception as exc:
            conn.answer_soon(_refusal(core, request.request_id, exc))
            return

        def done(stored: list[StoredEnvelope] | None, error: BaseException | None) -> None:
            conn.write_done()
            if stored is None:
                reservation.cancel()
                if isinstance(error, Exception):
                    conn.answer_soon(_refusal(core, request.request_id, error))
                return
            reservation.commit(stored)
            self._pushed(stored)
            answer = core.answer(request, Sent(tuple(env.envelope_id for env in stored)))
            if answer is not None:
                conn.answer_soon(answer)

        conn.write_started()
        self.storage.store_envelopes_then(
            items, coarse_time(self.clock(), self.received_at_granularity),
            self.limits.max_queue, self.budgets.max_stored_bytes,
            self.budgets.max_stored_envelopes, done)

    def _ack_soon(self, conn: Connection, frame: Ack) -> None:
        """A quiet ACK (16.5), pipelined: deleted in the next group commit, answered by
        nothing, or by ERROR with request id 0 if that fails."""
        core = conn.core
        user = core.username
        if user is None:  # pragma: no cover - the core refuses ACK before login
            raise LocalProtocolError("ACK before login")

        def done(count: int | None, error: BaseException | None) -> None:
            conn.write_done()
            if count is None:
                if isinstance(error, Exception):
                    conn.answer_soon(_refusal(core, 0, error))
                return
            self.budgets.acked(user, frame.envelope_ids)
            if self.observers:
                self._emit(Acked(user, frame.envelope_ids, count))

        conn.write_started()
        self.storage.delete_envelopes_then(user, list(frame.envelope_ids), done)

    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        """Stores envelopes (all or none), then pushes each to its online recipient.
        Their received_at is the coarse time, never the exact one."""
        now = coarse_time(self.clock(), self.received_at_granularity)
        stored = await self.storage.store_envelopes(items, now, self.limits.max_queue,
                                                    self.budgets.max_stored_bytes,
                                                    self.budgets.max_stored_envelopes)
        self._pushed(stored)
        return stored

    def _pushed(self, stored: list[StoredEnvelope]) -> None:
        """Tells the events, and pushes each stored envelope to its online recipient
        (in a cluster: has every process deliver them, server/cluster.py)."""
        if self.observers:
            for env in stored:
                self._emit(Stored(env.envelope_id, env.recipient, len(env.body),
                                  env.received_at, env.body))
        if self.cluster is not None:
            self.cluster.stored(env.recipient for env in stored)
        else:
            self.push_local(stored)

    def push_local(self, stored: list[StoredEnvelope]) -> None:
        """Pushes each envelope to its recipient's connections in this process."""
        for env in stored:
            if conns := self.online.get(env.recipient):
                encoded = encode_frame(_deliver(env))  # one copy for all of them
                for conn in conns:
                    conn.push(env, encoded)

    async def expire_once(self) -> int:
        before = int(self.clock()) - self.limits.envelope_ttl
        count = await self.storage.expire(before)
        self.budgets.expired(before)
        if count:
            self._emit(Expired(count))
        return count
