"""A receiving client as its own process, for the crash tests:

    python -m tests.client.receiver_process HOME PASSPHRASE

opens the profile, connects and waits for incoming messages. With
BLINDRELAY_FAULT=exit-before-ack in its environment the library ends the process
(exit code 75) right after the first received envelope is committed and before
it is acknowledged. Exits 3 if nothing arrived within the timeout."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from client.core import Client

TIMEOUT = 20.0


async def main(home: Path, passphrase: bytes) -> int:
    client = Client.open(home, passphrase)
    await client.connect()
    try:
        await asyncio.wait_for(asyncio.Event().wait(), TIMEOUT)
    except TimeoutError:
        return 3
    finally:
        await client.disconnect()
        client.close()
    return 0  # pragma: no cover - the wait above never ends normally


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2].encode())))
