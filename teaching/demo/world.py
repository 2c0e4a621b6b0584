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

from client.client import Client
from client.store import KdfParams
from server.config import ServerConfig
from server.relay import Relay
from server.serve import running_relay

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
    config = ServerConfig(port=0, data_dir=base / "relay")
    clients: list[Client] = []
    try:
        async with running_relay(config, relay_factory) as running:
            url = running.url
            narrate(f"A relay is running at {url}, with a throw-away data directory.")
            try:
                for name in ("alice", "bob"):
                    client = Client.create(base / name, name, url, secrets.token_bytes(16),
                                           DEMO_KDF)
                    clients.append(client)
                    await client.connect()
                    await asyncio.wait_for(client.queue_done.wait(), 10)
                    narrate(f"{name.capitalize()} created an identity key, registered and "
                            f"uploaded {'her' if name == 'alice' else 'his'} prekeys.")
                yield World(url, running.relay, clients[0], clients[1], base, narrate)
            finally:
                for client in clients:
                    await client.disconnect()
                    client.close()
    finally:
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def hostile_factory(behaviour: str, narrate: Callable[[str], None]) -> Callable[..., Relay]:
    from teaching.hostile import HostileRelay
    from teaching.names import Scenario

    return functools.partial(HostileRelay, behaviour=Scenario(behaviour), narrate=narrate)
