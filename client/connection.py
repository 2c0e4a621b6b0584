"""An authenticated connection to a relay, speaking only the documented frames.

Used by the client library, the conformance suite and the benchmarks. Requests
are matched to answers by request id; frames the server pushes (DELIVER,
PREKEYS_LOW, QUEUE_DONE) land in `pushes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import (
    Ack,
    Bundle,
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
    Outgoing,
    PrekeyCount,
    PrekeyCounts,
    Register,
    Send,
    Sent,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    decode_server_frame,
    encode_frame,
    login_statement,
    normalize_url,
    register_statement,
)
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

F = TypeVar("F", bound=Frame)


class RelayError(Exception):
    """The relay answered a request with an ERROR frame."""

    def __init__(self, code: int, message: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"{name}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection closed before an answer arrived."""


class RelayConnection:
    def __init__(self, ws: ClientConnection, url: str, hello: Hello) -> None:
        self.ws = ws
        self.url = url
        self.challenge = hello.challenge
        self.limits: Limits = hello.limits
        self.username: str | None = None
        self.pushes: asyncio.Queue[Frame] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[Frame]] = {}
        self._ids = itertools.count(1)
        self.closed = asyncio.Event()
        self.error: Exception | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RelayConnection:
        ws = await connect(url, compression=None, max_size=None, **kwargs)
        try:
            first = await ws.recv()
            if not isinstance(first, bytes):
                raise ConnectionLost("server sent text instead of HELLO")
            _, hello = decode_server_frame(first)
            if not isinstance(hello, Hello):
                raise ConnectionLost("server did not start with HELLO")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, normalize_url(url), hello)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if not isinstance(message, bytes):
                    continue
                request_id, frame = decode_server_frame(message)
                waiter = self._waiting.pop(request_id, None) if request_id else None
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(frame)
                else:
                    self.pushes.put_nowait(frame)
        except ConnectionClosed:
            pass
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

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def request_raw(self, data: bytes) -> Frame:
        """Sends pre-encoded bytes and waits for the answer to their request id."""
        request_id = int.from_bytes(data[2:6], "big")
        if self.closed.is_set():
            raise ConnectionLost("connection closed")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            self._waiting.pop(request_id, None)
            raise ConnectionLost("connection closed") from exc
        return await future

    def next_id(self) -> int:
        return next(self._ids)

    async def request(self, frame: Frame, expect: type[F]) -> F:
        answer = await self.request_raw(encode_frame(frame, self.next_id()))
        if isinstance(answer, Error):
            raise RelayError(answer.code, answer.message)
        if not isinstance(answer, expect):
            raise ConnectionLost(f"expected {expect.__name__}, got {type(answer).__name__}")
        return answer

    # -- the requests

    async def register(self, username: str, identity: IdentityKeyPair) -> None:
        sig = identity.sign(register_statement(self.url, self.challenge, username,
                                               identity.public))
        await self.request(Register(username, identity.public, sig), Ok)
        self.username = username

    async def login(self, username: str, identity: IdentityKeyPair) -> None:
        sig = identity.sign(login_statement(self.url, self.challenge, username))
        await self.request(Login(username, sig), Ok)
        self.username = username

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
        """The identity key the relay has for `username` (raw Ed25519 public key)."""
        return (await self.request(LookupIdentity(username), Identity)).identity

    async def prekey_counts(self) -> tuple[int, int]:
        answer = await self.request(PrekeyCount(), PrekeyCounts)
        return answer.one_time, answer.kem_one_time

    async def send(self, envelopes: Sequence[tuple[str, bytes]]) -> tuple[bytes, ...]:
        frame = Send(tuple(Outgoing(r, b) for r, b in envelopes))
        return (await self.request(frame, Sent)).envelope_ids

    async def ack(self, envelope_ids: Sequence[bytes]) -> None:
        await self.request(Ack(tuple(envelope_ids)), Ok)

    async def next_push(self, timeout: float | None = None) -> Frame:
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
