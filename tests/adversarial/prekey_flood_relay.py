"""A hostile relay for the prekey-flood attack (issue 9 item 13): it accepts any login,
always says the profile has no one-time prekeys left, pushes PREKEYS_LOW every
`interval` seconds, and, past `accept` uploaded keys of a kind, refuses uploads with
TOO_MANY_PREKEYS as a real relay at its limit does."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.wire.frames import (
    CertKey,
    Error,
    ErrorCode,
    GetCertificate,
    Hello,
    KtConsistency,
    KtEntries,
    KtInfo,
    KtLookup,
    KtOwn,
    Login,
    Ok,
    PrekeyCount,
    PrekeyCounts,
    PrekeysLow,
    QueueDone,
    Register,
    UploadOneTimePrekeys,
    decode_client_frame,
    encode_frame,
)
from tests.adversarial.hostile_relay import LIMITS


@dataclass
class FloodStats:
    uploads: int = 0
    refused: int = 0
    pushes: int = 0
    upload_times: list[float] = field(default_factory=list)
    uploaded_one_time: int = 0


async def _handle(ws: ServerConnection, stats: FloodStats, interval: float, accept: int
                  ) -> None:
    await ws.send(encode_frame(Hello(os.urandom(32), LIMITS)))
    flood: asyncio.Task[None] | None = None

    async def push() -> None:
        while True:
            await ws.send(encode_frame(PrekeysLow(0, 0)))
            stats.pushes += 1
            await asyncio.sleep(interval)

    try:
        async for data in ws:
            assert isinstance(data, bytes)
            request_id, frame = decode_client_frame(data)
            answer: Ok | Error | PrekeyCounts = Ok()
            if isinstance(frame, Register | Login):
                await ws.send(encode_frame(Ok(), request_id))
                await ws.send(encode_frame(QueueDone(0)))
                flood = flood or asyncio.get_running_loop().create_task(push())
                continue
            if isinstance(frame, KtInfo | KtConsistency | KtLookup | KtEntries | KtOwn):
                answer = Error(ErrorCode.INTERNAL_ERROR, "this relay keeps no key directory")
            elif isinstance(frame, CertKey | GetCertificate):
                answer = Error(ErrorCode.INTERNAL_ERROR, "this relay issues no certificates")
            elif isinstance(frame, PrekeyCount):
                answer = PrekeyCounts(0, 0)  # the lie
            elif isinstance(frame, UploadOneTimePrekeys):
                stats.uploads += 1
                stats.upload_times.append(asyncio.get_running_loop().time())
                if stats.uploaded_one_time + len(frame.one_time) > accept:
                    stats.refused += 1
                    answer = Error(ErrorCode.TOO_MANY_PREKEYS, "too many prekeys")
                else:
                    stats.uploaded_one_time += len(frame.one_time)
            await ws.send(encode_frame(answer, request_id))
    except ConnectionClosed:
        pass
    finally:
        if flood is not None:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await flood


@contextlib.asynccontextmanager
async def prekey_flood_relay(stats: FloodStats, interval: float = 0.02, accept: int = 300
                             ) -> AsyncIterator[str]:
    """Yields the relay's URL."""
    async with serve(lambda ws: _handle(ws, stats, interval, accept), "127.0.0.1", 0,
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
