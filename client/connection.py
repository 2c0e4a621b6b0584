"""An authenticated connection to a relay, speaking only the documented frames.

Used by the client library and the tests. The conversation's rules (what may be sent
when, which answer each request gets, which pushes may arrive) live in the sans-I/O
core protocol.wire.connection.ClientConnection; this is its asyncio shell. Requests
are matched to answers by request id; frames the server pushes (DELIVER,
PREKEYS_LOW, QUEUE_DONE) land in `pushes`. A relay that breaks the conversation
(a frame that does not decode, or one the core reports as a Violation) gets the
connection closed with 1002 and `error` set.

Nothing the relay sends can make the client hold unbounded memory (docs/CLIENT.md): a
frame may be at most HELLO_MAX_SIZE bytes until HELLO arrives, then what the relay's
announced limits allow plus FRAME_HEADROOM (never above FRAME_CEILING); and pushes not
yet taken are bounded (PushQueue): when they reach the bound the client stops reading,
so the relay's own bound slows or drops it, and its envelopes stay queued there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.connection import ClientConnection as ClientCore
from protocol.wire.connection import request_id_of
from protocol.wire.errors import RemoteProtocolError
from protocol.wire.events import Answered, HelloReceived, ServerEvent, Violation
from protocol.wire.frames import (
    Ack,
    Bundle,
    Certificate,
    CertKey,
    CertKeyAnswer,
    Deliver,
    Error,
    FetchBundle,
    Frame,
    GetCertificate,
    Hello,
    Identity,
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
    LookupIdentity,
    Ok,
    Outgoing,
    PrekeyCount,
    PrekeyCounts,
    SealedOutgoing,
    SealedSend,
    Send,
    Sent,
    SetCapability,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    encode_frame,
    error_name,
)
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

F = TypeVar("F", bound=Frame)

HELLO_MAX_SIZE = 4096
"""Largest first frame accepted: HELLO is 64 bytes."""
FRAME_HEADROOM = 16 * 1024
"""Above the largest frame the announced limits allow (a DELIVER of max_envelope)."""
FRAME_CEILING = 16 * 1024 * 1024
"""Whatever a relay announces, no frame above this is accepted."""
DELIVER_OVERHEAD = 6 + 16 + 8 + 4
"""A DELIVER's header, envelope id, received_at and body length."""
PUSH_FRAMES = 2048
PUSH_BYTES = 16 * 1024 * 1024
"""Pushes not yet taken at which the reader stops reading (unless an answer is awaited)."""
PACE_STALL = 0.25
"""Seconds a paused reader waits for the consumer to take a push while an answer is
awaited, before it reads on regardless (`RelayConnection._pace`)."""
PUSH_HARD_BYTES = 4 * PUSH_BYTES
"""Pushes not yet taken at which the connection is closed: reached only when a relay
keeps pushing ahead of an answer the client waits for."""


def frame_bound(limits: Limits) -> int:
    """The largest frame accepted from a relay that announced `limits`: its largest
    DELIVER or its max_frame, whichever is larger, plus headroom, capped."""
    largest = max(limits.max_frame, limits.max_envelope + DELIVER_OVERHEAD)
    return min(largest + FRAME_HEADROOM, FRAME_CEILING)


def _push_size(frame: Frame) -> int:
    return DELIVER_OVERHEAD + len(frame.body) if isinstance(frame, Deliver) else 64


class PushQueue(asyncio.Queue[Frame]):
    """The pushes the relay sent that no one has taken yet, counted in frames and bytes.
    `put_nowait` always succeeds (the reader decides when to stop reading); `get` wakes
    a paused reader."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.received = 0
        """Pushes read so far (a drain's progress before they are handled)."""
        self.taken = asyncio.Event()

    def _put(self, item: Frame) -> None:
        self.bytes += _push_size(item)
        self.received += 1
        super()._put(item)

    def _get(self) -> Frame:
        item: Frame = super()._get()
        self.bytes -= _push_size(item)
        self.taken.set()
        return item

    def over_bound(self) -> bool:
        return self.qsize() >= PUSH_FRAMES or self.bytes >= PUSH_BYTES

    def overflowing(self) -> bool:
        return self.qsize() >= 4 * PUSH_FRAMES or self.bytes >= PUSH_HARD_BYTES


class Overwhelmed(Exception):
    """The relay kept pushing far beyond what the client had taken."""


class RelayError(Exception):
    """The relay answered a request with an ERROR frame."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{error_name(code)}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection closed before an answer arrived."""


class RelayConnection:
    """An asyncio/websockets shell over protocol.wire.connection.ClientConnection: the
    core says what each frame from the relay means; this class waits for answers and
    queues pushes."""

    def __init__(self, ws: ClientConnection, url: str, hello: Hello,
                 core: ClientCore | None = None) -> None:
        if core is None:
            core = ClientCore(url)
            core.receive_data(encode_frame(hello))
        self.ws = ws
        self.core = core
        self.url = core.url
        self.challenge = hello.challenge
        self.limits: Limits = hello.limits
        self.pushes = PushQueue()
        self._waiting: dict[int, asyncio.Future[Frame]] = {}
        self._requested = asyncio.Event()
        self.consumer: asyncio.Task[Any] | None = None
        """The task taking pushes (the client's pump), once there is one: see `_pace`."""
        self._consumer_asked: set[int] = set()
        """Request ids the consumer itself awaits an answer to."""
        self._read_on = False
        with contextlib.suppress(AttributeError):  # a real websockets connection
            ws.protocol.max_message_size = frame_bound(self.limits)
        self.closed = asyncio.Event()
        self.error: Exception | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def username(self) -> str | None:
        """Who this connection is logged in as (set once REGISTER or LOGIN succeeded)."""
        return self.core.username

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RelayConnection:
        ws = await connect(url, compression=None, max_size=HELLO_MAX_SIZE, **kwargs)
        core = ClientCore(url)
        try:
            first = await ws.recv()
            if not isinstance(first, bytes):
                raise ConnectionLost("server sent text instead of HELLO")
            (event,) = core.receive_data(first)
            if not isinstance(event, HelloReceived):
                raise ConnectionLost("server did not start with HELLO")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, url, event.frame, core)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if not isinstance(message, bytes):
                    continue
                for event in self.core.receive_data(message):
                    self._on_event(event)
                await self._pace()
        except ConnectionClosed:
            pass
        except Overwhelmed as exc:
            self.error = exc
            with contextlib.suppress(Exception):
                await self.ws.close(1008, "too many pushes ahead of an answer")
        except Exception as exc:  # a relay that breaks the protocol: drop the connection
            self.error = exc
            with contextlib.suppress(Exception):
                await self.ws.close(1002, "protocol error")
        finally:
            self.closed.set()
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionLost("connection closed"))
            self._waiting.clear()

    async def _pace(self) -> None:
        """Stops reading while the pushes not yet taken are over their bound; closes if
        they grow far beyond. While an answer is awaited (it may be behind them) it
        reads on, unless a consumer is taking pushes and does not itself wait for an
        answer: then taking them makes room, and the relay, which pushes a whole
        queue before it reads the next request (after LOGIN), gets to the request
        without the client holding the queue in memory. A consumer that takes nothing
        for PACE_STALL seconds meanwhile (it may wait for that answer indirectly) ends
        the pause until no answer is awaited."""
        if self.pushes.overflowing():
            raise Overwhelmed(f"{self.pushes.qsize()} pushes ({self.pushes.bytes} bytes) "
                              "not taken yet")
        if not self._waiting:
            self._read_on = False
        while self.pushes.over_bound():
            if self._waiting and (self._read_on or not self._consumer_takes()):
                return
            self.pushes.taken.clear()
            self._requested.clear()
            taken = asyncio.ensure_future(self.pushes.taken.wait())
            requested = asyncio.ensure_future(self._requested.wait())
            try:
                done, _ = await asyncio.wait(
                    {taken, requested}, return_when=asyncio.FIRST_COMPLETED,
                    timeout=PACE_STALL if self._waiting else None)
            finally:
                taken.cancel()
                requested.cancel()
            if not done:
                self._read_on = True

    def _consumer_takes(self) -> bool:
        consumer = self.consumer
        return consumer is not None and not consumer.done() and not any(
            request_id in self._consumer_asked for request_id in self._waiting)

    def _on_event(self, event: ServerEvent) -> None:
        if isinstance(event, Violation):
            raise RemoteProtocolError(event.reason)
        waiter = self._waiting.pop(event.request_id, None) if event.request_id else None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(event.frame)
        elif not isinstance(event, Answered | HelloReceived):
            # DELIVER, PREKEYS_LOW, QUEUE_DONE, and ERROR for a request no one waits for
            self.pushes.put_nowait(event.frame)

    async def send_raw(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            self.core.expect(data)
        await self.ws.send(data)

    async def request_raw(self, data: bytes) -> Frame:
        """Sends pre-encoded bytes and waits for the answer to their request id."""
        if self.closed.is_set():
            raise ConnectionLost("connection closed")
        request_id = self.core.expect(data)
        return await self._roundtrip(request_id, data)

    async def _roundtrip(self, request_id: int, data: bytes) -> Frame:
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        consumer = self.consumer is not None and asyncio.current_task() is self.consumer
        if consumer:
            self._consumer_asked.add(request_id)
        self._requested.set()  # a paused reader must read on to find the answer
        try:
            await self.ws.send(data)
            return await future
        except ConnectionClosed as exc:
            self._waiting.pop(request_id, None)
            raise ConnectionLost("connection closed") from exc
        finally:
            self._consumer_asked.discard(request_id)

    def next_id(self) -> int:
        return self.core.next_request_id()

    async def request(self, frame: Frame, expect: type[F]) -> F:
        """Sends a request the connection's state allows (LocalProtocolError if not)
        and returns its answer; ERROR raises RelayError."""
        if self.closed.is_set():
            raise ConnectionLost("connection closed")
        data = self.core.send(frame)
        answer = await self._roundtrip(request_id_of(data), data)
        if isinstance(answer, Error):
            raise RelayError(answer.code, answer.message)
        if not isinstance(answer, expect):
            raise ConnectionLost(f"expected {expect.__name__}, got {type(answer).__name__}")
        return answer

    # -- the requests

    async def register(self, username: str, identity: IdentityKeyPair) -> None:
        await self.request(self.core.register_frame(username, identity.public, identity.sign),
                           Ok)

    async def login(self, username: str, identity: IdentityKeyPair) -> None:
        await self.request(self.core.login_frame(username, identity.sign), Ok)

    async def delete_account(self, identity: IdentityKeyPair) -> None:
        """DELETE_ACCOUNT (PROTOCOL.md 16.4); the relay closes the connection after OK."""
        await self.request(self.core.delete_account_frame(identity.sign), Ok)

    async def upload_signed_prekeys(self, spk: SignedPreKey, last_resort: KemPreKey) -> None:
        await self.request(UploadSignedPrekeys(spk, last_resort), Ok)

    async def upload_one_time_prekeys(
        self, one_time: Sequence[OneTimePreKey], kem_one_time: Sequence[KemPreKey]
    ) -> None:
        await self.request(UploadOneTimePrekeys(tuple(one_time), tuple(kem_one_time)), Ok)

    async def fetch_bundle(self, username: str) -> PreKeyBundle:
        answer = await self.request(FetchBundle(username), Bundle)
        return PreKeyBundle.decode(answer.bundle)

    async def lookup_identity(self, username: str) -> bytes:
        """The identity key the relay has for `username` (raw Ed25519 public key). Our
        client no longer asks (it tells the relay who contacted whom): sender
        certificates say who wrote (PROTOCOL.md 10, 20); kept for tests and tools."""
        return (await self.request(LookupIdentity(username), Identity)).identity

    async def prekey_counts(self) -> tuple[int, int]:
        answer = await self.request(PrekeyCount(), PrekeyCounts)
        return answer.one_time, answer.kem_one_time

    async def send(self, envelopes: Sequence[tuple[str, bytes]]) -> tuple[bytes, ...]:
        frame = Send(tuple(Outgoing(r, b) for r, b in envelopes))
        return (await self.request(frame, Sent)).envelope_ids

    async def sealed_send(self, envelopes: Sequence[tuple[str, bytes, bytes]]
                          ) -> tuple[bytes, ...]:
        """SEALED_SEND (PROTOCOL.md 16.10) of (recipient, capability, envelope): only on
        a connection that never logs in, which it then stays."""
        frame = SealedSend(tuple(SealedOutgoing(r, c, b) for r, c, b in envelopes))
        return (await self.request(frame, Sent)).envelope_ids

    async def set_capability(self, allow_anyone: bool, capability_hash: bytes) -> None:
        """SET_CAPABILITY (logged in): SHA-256 of our delivery capability, and whether
        strangers may send to us sealed."""
        await self.request(SetCapability(allow_anyone, capability_hash), Ok)

    async def ack(self, envelope_ids: Sequence[bytes]) -> None:
        await self.request(Ack(tuple(envelope_ids)), Ok)

    async def ack_committed(self, envelope_ids: Sequence[bytes]) -> None:
        """Acknowledges envelopes the client committed (client/inbox.py): one quiet
        ACK (request id 0, PROTOCOL.md 16.5) for a committed page, which the relay does
        not answer; nothing waits for it. If it fails the relay says so with an ERROR
        under request id 0 (a push, logged) and delivers the envelopes again, which
        the client recognises by their stored ids."""
        if self.closed.is_set():
            raise ConnectionLost("connection closed")
        try:
            await self.ws.send(self.core.send_quiet(Ack(tuple(envelope_ids))))
        except ConnectionClosed as exc:
            raise ConnectionLost("connection closed") from exc

    # -- sender certificates (PROTOCOL.md 20): client/certificates.py verifies them

    async def cert_key(self) -> bytes:
        """CERT_KEY: the relay's certificate public key (before login too)."""
        return (await self.request(CertKey(), CertKeyAnswer)).public_key

    async def get_certificate(self) -> bytes:
        """GET_CERTIFICATE: a sender certificate for the logged-in user."""
        return (await self.request(GetCertificate(), Certificate)).certificate

    # -- the key directory (PROTOCOL.md 19.10): answers are returned as they came;
    # client/directory.py verifies them before anything is believed

    async def kt_info(self) -> KtInfoAnswer:
        """KT_INFO: the directory's keys and newest signed checkpoint (before login too)."""
        return await self.request(KtInfo(), KtInfoAnswer)

    async def kt_consistency(self, old_size: int, new_size: int) -> KtConsistencyProof:
        """KT_CONSISTENCY: the old root and RFC 9162 proof from old_size to new_size."""
        return await self.request(KtConsistency(old_size, new_size), KtConsistencyProof)

    async def kt_lookup(self, username: str) -> KtLookupAnswer:
        """KT_LOOKUP: the newest checkpoint and a proof of the name's latest binding."""
        return await self.request(KtLookup(username), KtLookupAnswer)

    async def kt_entries(self, start: int, count: int) -> KtEntryRange:
        """KT_ENTRIES: log leaves start .. start+count-1 and the frontier of size start."""
        return await self.request(KtEntries(start, count), KtEntryRange)

    async def kt_own(self) -> KtOwnEntries:
        """KT_OWN: the VRF proof of our own name and the openings of its updates."""
        return await self.request(KtOwn(), KtOwnEntries)

    async def next_push(self, timeout: float | None = None) -> Frame:
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if not self._reader.done() and self.pushes.over_bound():
            self._reader.cancel()  # paused for a taker that is gone (_pace)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
