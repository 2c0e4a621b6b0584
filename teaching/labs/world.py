"""A relay built from a student's class, on a free loopback port, with real clients:
what every lab's check runs its exchange on. Like the demo's world, but owned by the
labs so a lab's grading does not move when the demo does."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from client.client import Client
from client.events import Event, KtAlert
from client.records import Direction, Message
from client.store import KdfParams
from server.config import ServerConfig
from server.relay import Relay
from server.serve import running_relay

LAB_KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
"""Lab profiles are thrown away after the check: the lightest Argon2id."""


@dataclass
class LabWorld:
    url: str
    relay: Relay
    data_dir: Path
    clients: dict[str, Client] = field(default_factory=dict)
    alerts: dict[str, list[KtAlert]] = field(default_factory=dict)

    def texts(self, who: str, peer: str) -> list[str]:
        return [m.text for m in self.clients[who].history(peer)
                if m.direction is Direction.IN and m.text]

    def history(self, who: str, peer: str) -> list[Message]:
        return self.clients[who].history(peer)


def arrived(world: LabWorld, recipient: str, sender: str, text: str) -> bool:
    """Whether `recipient`'s client has decrypted `text` from `sender`."""
    return text in world.texts(recipient, sender)


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """True once `predicate` holds, False if `timeout` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _watch(alerts: dict[str, list[KtAlert]], name: str, client: Client) -> None:
    found = alerts.setdefault(name, [])

    def collect(event: Event) -> None:
        if isinstance(event, KtAlert):
            found.append(event)

    client.on_event(collect)


@contextlib.asynccontextmanager
async def lab_world(workdir: Path, relay_factory: Callable[..., Relay],
                    names: tuple[str, ...] = ("alice", "bob")) -> AsyncIterator[LabWorld]:
    """The relay (data in workdir/relay) and one registered client per name; on exit
    the clients disconnect and the relay stops (its storage closed)."""
    config = ServerConfig(port=0, data_dir=workdir / "relay")
    async with running_relay(config, relay_factory) as running:
        world = LabWorld(running.url, running.relay, config.data_dir)
        try:
            for name in names:
                client = Client.create(workdir / name, name, running.url,
                                       secrets.token_bytes(16), LAB_KDF)
                world.clients[name] = client
                _watch(world.alerts, name, client)
                await client.connect()
                await asyncio.wait_for(client.queue_done.wait(), 15)
            yield world
        finally:
            for client in world.clients.values():
                await client.disconnect()
                client.close()
