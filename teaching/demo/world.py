"""A throw-away world for the demo: a relay on a free loopback port with a temporary
data directory, and two real clients with their own encrypted profiles."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.client import Client
from client.store import KdfParams
from server.config import ServerConfig
from server.relay import Relay
from server.serve import run_server

DEMO_KDF = KdfParams(opslimit=2, memlimit=16 * 1024 * 1024)
"""Demo profiles are real encrypted profiles, with a lighter Argon2id so the demo starts
quickly; they are deleted when it ends."""


@dataclass
class World:
    url: str
    relay: Relay
    alice: Client
    bob: Client
    workdir: Path
    narrate: Callable[[str], None]
    pace: float = 0.0
    """Seconds a scenario pauses after each step, so a class can follow it."""

    def clients(self) -> dict[str, Client]:
        return {"alice": self.alice, "bob": self.bob}


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the demo waited too long for something to happen")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def demo_world(narrate: Callable[[str], None] = print,
                     relay_factory: Callable[..., Relay] = Relay,
                     workdir: Path | None = None) -> AsyncIterator[World]:
    """Starts everything; on exit stops it and deletes every file it made."""
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="blindrelay-demo-")) if workdir is None else workdir
    stop = asyncio.Event()
    started: asyncio.Future[tuple[Relay, int]] = asyncio.get_running_loop().create_future()
    config = ServerConfig(port=0, data_dir=base / "relay")
    server = asyncio.create_task(run_server(
        config, stop=stop, ready=lambda r, p: started.set_result((r, p)),
        relay_factory=relay_factory))
    clients: list[Client] = []
    try:
        waiting: list[asyncio.Future[Any]] = [started, server]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            server.result()
        relay, port = started.result()
        url = f"ws://127.0.0.1:{port}"
        narrate(f"A relay is running at {url}, with a throw-away data directory.")
        for name in ("alice", "bob"):
            client = Client.create(base / name, name, url, secrets.token_bytes(16), DEMO_KDF)
            clients.append(client)
            await client.connect()
            await asyncio.wait_for(client.queue_done.wait(), 10)
            narrate(f"{name.capitalize()} created an identity key, registered and uploaded "
                    "her prekeys." if name == "alice" else
                    f"{name.capitalize()} created an identity key, registered and uploaded "
                    "his prekeys.")
        yield World(url, relay, clients[0], clients[1], base, narrate)
    finally:
        for client in clients:
            await client.disconnect()
            client.close()
        stop.set()
        await asyncio.gather(server, return_exceptions=True)
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def hostile_factory(behaviour: str, narrate: Callable[[str], None]) -> Callable[..., Relay]:
    from teaching.hostile import HostileRelay
    from teaching.names import Scenario

    return functools.partial(HostileRelay, behaviour=Scenario(behaviour), narrate=narrate)
