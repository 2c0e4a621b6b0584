"""A receiving client as its own process, for the crash tests:

    python -m tests.client.receiver_process HOME PASSPHRASE [exit-before-ack]

opens the profile, connects and waits for incoming messages. With `exit-before-ack`
it hands the library a `before_ack` hook that ends the process (exit code 75) right
after the first received envelope is committed and before it is acknowledged. Exits
3 if nothing arrived within the timeout."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from client.client import Client
from protocol.wire.frames import Deliver

TIMEOUT = 20.0


def _exit_before_ack(deliver: Deliver) -> None:
    os._exit(75)


async def main(home: Path, passphrase: bytes, fault: str = "") -> int:
    hook = _exit_before_ack if fault == "exit-before-ack" else None
    client = Client.open(home, passphrase, before_ack=hook)
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
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2].encode(), *sys.argv[3:4])))
