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
from dataclasses import dataclass, field
from pathlib import Path

from client.client import Client
from client.events import Event, KtAlert
from client.store import KdfParams
from server.config import ServerConfig
from server.events import RelayEvent
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
    others: dict[str, Client] = field(default_factory=dict)
    """Clients a scenario adds (split-view's Carol); closed with the world."""
    alerts: dict[str, list[KtAlert]] = field(default_factory=dict)
    """Every key directory alert each client raised (client/directory.py)."""

    def clients(self) -> dict[str, Client]:
        return {"alice": self.alice, "bob": self.bob, **self.others}

    def watch(self, name: str, client: Client) -> None:
        """Collects `client`'s key directory alerts in `alerts`."""
        _watch(self.alerts, name, client)

    async def add_client(self, name: str) -> Client:
        """A third person joins: a real client that registers on this relay."""
        client = Client.create(self.workdir / name, name, self.url, secrets.token_bytes(16),
                               DEMO_KDF)
        self.others[name] = client
        self.watch(name, client)
        await client.connect()
        await asyncio.wait_for(client.queue_done.wait(), 10)
        return client

    def evidence_files(self) -> list[Path]:
        """Every key directory evidence file any client wrote (client/paths.py)."""
        return sorted(self.workdir.glob("*/kt-evidence-*.json"))


def _watch(alerts: dict[str, list[KtAlert]], name: str, client: Client) -> None:
    found = alerts.setdefault(name, [])

    def collect(event: Event) -> None:
        if isinstance(event, KtAlert):
            found.append(event)

    client.on_event(collect)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the demo waited too long for something to happen")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def demo_world(narrate: Callable[[str], None] = print,
                     relay_factory: Callable[..., Relay] = Relay,
                     workdir: Path | None = None,
                     observe: Callable[[RelayEvent], None] | None = None
                     ) -> AsyncIterator[World]:
    """Starts everything; on exit stops it and deletes every file it made. `observe`
    sees every relay event from the start (the registrations' checkpoints too)."""
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="blindrelay-demo-")) if workdir is None else workdir
    config = ServerConfig(port=0, data_dir=base / "relay")
    clients: list[Client] = []
    world: World | None = None
    alerts: dict[str, list[KtAlert]] = {}
    try:
        async with running_relay(config, relay_factory) as running:
            url = running.url
            if observe is not None:
                running.relay.observers.append(observe)
            narrate(f"A relay is running at {url}, with a throw-away data directory.")
            try:
                for name in ("alice", "bob"):
                    client = Client.create(base / name, name, url, secrets.token_bytes(16),
                                           DEMO_KDF)
                    clients.append(client)
                    _watch(alerts, name, client)
                    await client.connect()
                    await asyncio.wait_for(client.queue_done.wait(), 10)
                    narrate(f"{name.capitalize()} created an identity key, registered and "
                            f"uploaded {'her' if name == 'alice' else 'his'} prekeys.")
                world = World(url, running.relay, clients[0], clients[1], base, narrate,
                              alerts=alerts)
                yield world
            finally:
                for client in clients + list(world.others.values() if world else ()):
                    await client.disconnect()
                    client.close()
    finally:
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def hostile_factory(behaviour: str, narrate: Callable[[str], None],
                    cover_up: bool = True, witnessed: bool = False) -> Callable[..., Relay]:
    """A HostileRelay playing `behaviour`; `cover_up` False: it does not log its fake
    keys in the key directory (teaching.names.COVER_UP); `witnessed`: the victim's
    client requires a witness's cosignature (teaching.names.WITNESSED)."""
    from teaching.hostile import HostileRelay
    from teaching.names import Scenario

    if behaviour == Scenario.METADATA_HARVEST:  # the honest relay's code, recording
        from teaching.harvest import HarvestingRelay

        return functools.partial(HarvestingRelay, narrate=narrate)
    return functools.partial(HostileRelay, behaviour=Scenario(behaviour), narrate=narrate,
                             cover_up=cover_up, witnessed=witnessed)
