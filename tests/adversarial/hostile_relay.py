"""A relay that answers every request with an ERROR whose text is hostile (see
`payloads.EVERYTHING`): what a relay operator can put on a user's screen through the
one free-text field the protocol gives it.

Run in-process (`hostile_relay()`) for the pilot tests, or as a process
(`python -m tests.adversarial.hostile_relay`) for the pseudo-terminal tests; the
process prints "listening on ws://..." once it accepts connections."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.wire.frames import Error, ErrorCode, Hello, Limits, encode_frame, read_header
from tests.adversarial.payloads import EVERYTHING

LIMITS = Limits(max_frame=1 << 20, max_envelope=1 << 16, max_recipients=16, max_queue=100,
                max_prekeys=100, rate_per_second=100, rate_burst=100, envelope_ttl=3600,
                prekey_low=20)


async def _handle(ws: ServerConnection, code: int, text: str) -> None:
    await ws.send(encode_frame(Hello(os.urandom(32), LIMITS)))
    with contextlib.suppress(ConnectionClosed):
        async for data in ws:
            if isinstance(data, bytes) and len(data) >= 6:
                _, request_id = read_header(data)
                await ws.send(encode_frame(Error(code, text), request_id))


@contextlib.asynccontextmanager
async def hostile_relay(code: int = ErrorCode.BAD_SIGNATURE,
                        text: str = EVERYTHING) -> AsyncIterator[str]:
    """Yields the relay's URL."""
    async with serve(lambda ws: _handle(ws, code, text), "127.0.0.1", 0,
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def _main() -> None:
    async with hostile_relay() as url:
        print(f"hostile relay listening on {url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
    sys.exit(0)
