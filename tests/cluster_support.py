"""Several relays over one storage in this event loop: the in-process model of a cluster
(server/cluster.py). Each relay has its own WebSocket server on its own loopback port,
its own in-memory state (who is online, budgets, its copy of the key directory) and
its own bus. On SQLite they share the storage object, as processes share the
database; what that leaves out is the directory lock between processes (one storage
object's lock stands in for PostgreSQL's advisory lock). On PostgreSQL
(`storage_url`) each relay opens its own PgStorage (its own pool), as processes do."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from protocol.wire.frames import normalize_url, url_origin
from protocol.wire.kt.note import Signer
from server.budgets import Budgets, Rate
from server.bus import Bus, LocalBus, LocalHub
from server.cluster import Cluster
from server.config import default_limits
from server.kt import open_directory
from server.relay import Relay
from server.sqlite_store import SqliteStorage
from server.storage import Storage

GENEROUS = Budgets(fetch_per_requester=Rate(1000.0, 1000), fetch_per_pair=Rate(1000.0, 1000),
                   register_per_address=Rate(1000.0, 1000),
                   sealed_per_capability=Rate(10_000.0, 10_000))


@dataclass
class ModelCluster:
    urls: list[str]
    relays: list[Relay]
    clusters: list[Cluster]
    storages: list[Storage]

    @property
    def storage(self) -> Storage:
        return self.storages[0]


def local_buses(count: int) -> list[Bus]:
    hub = LocalHub()
    return [LocalBus(hub) for _ in range(count)]


@contextlib.asynccontextmanager
async def model_cluster(data_dir: Path, buses: Sequence[Bus],
                        budgets: Budgets = GENEROUS, storage_url: str | None = None,
                        **limits: Any) -> AsyncIterator[ModelCluster]:
    """len(buses) relays sharing one SqliteStorage in data_dir, or each with its own
    PgStorage on the database at `storage_url`."""
    storages: list[Storage] = []
    if storage_url is None:
        storages = [await SqliteStorage.open(data_dir)] * len(buses)
    else:
        from server.pg_store import PgStorage

        for _ in buses:
            storages.append(await PgStorage.open(storage_url, max_size=4))
    boxes: list[list[Relay]] = []
    servers: list[Server] = []
    clusters: list[Cluster] = []

    def handler_for(box: list[Relay]) -> Callable[[ServerConnection], Any]:
        async def handler(ws: ServerConnection) -> None:
            await box[0].handle(ws)
        return handler

    try:
        for _ in buses:
            box: list[Relay] = []
            boxes.append(box)
            servers.append(await serve(handler_for(box), "127.0.0.1", 0, compression=None))
        urls = [f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers]
        accepted = frozenset(normalize_url(u) for u in urls)
        signer, vrf = Signer.generate(url_origin(urls[0])), os.urandom(32)
        limit_values = replace(default_limits(), **limits)
        for box, bus, storage in zip(boxes, buses, storages, strict=True):
            relay = Relay(storage, limit_values, accepted, budgets=budgets,
                          directory=await open_directory(storage, signer, vrf))
            box.append(relay)
            cluster = Cluster(relay, bus)
            await cluster.start()
            clusters.append(cluster)
        yield ModelCluster(urls, [box[0] for box in boxes], clusters, storages)
    finally:
        for server in servers:
            server.close(close_connections=True)
            await server.wait_closed()
        for cluster in clusters:
            await cluster.close()
        for storage in dict.fromkeys(storages):
            await storage.close()
