"""Issue 9 item 13, the client's half: a hostile relay that always says "no one-time
prekeys left" and pushes PREKEYS_LOW every 20 ms made the client generate keys without
end (6,800 ML-KEM keys, a 7.5 MiB profile) and never delete the unused ones. Now the
client answers PREKEYS_LOW at most once a minute, keeps at most MAX_UNUSED_ONE_TIME
unused one-time private keys of each kind, and stops when an upload is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client.client import Client
from client.prekeys import MAX_UNUSED_ONE_TIME, PREKEY_TARGET
from client.records import PrekeyKind
from tests.adversarial.prekey_flood_relay import FloodStats, prekey_flood_relay
from tests.client.helpers import make_client, shut


def _stored(client: Client, kind: PrekeyKind) -> int:
    return len(client.prekeys.repo.ids(kind))


async def test_prekeys_low_every_20_ms_does_not_make_keys_without_end(tmp_path: Path) -> None:
    stats = FloodStats()
    async with prekey_flood_relay(stats, interval=0.02, accept=10_000) as url:
        client = await make_client(tmp_path, "victim", url)
        await asyncio.sleep(3)
        assert stats.pushes > 50  # the flood ran
        one_time, kem = _stored(client, PrekeyKind.ONE_TIME), _stored(client,
                                                                        PrekeyKind.KEM_ONE_TIME)
        made = client.profile.next_one_time_id - 1
        await shut(client)
    # the login's top-up and one answer to PREKEYS_LOW, no more
    assert made <= 2 * PREKEY_TARGET, made
    assert stats.uploads <= 4, stats.uploads
    assert one_time <= MAX_UNUSED_ONE_TIME and kem <= MAX_UNUSED_ONE_TIME


async def test_a_refused_upload_stops_replenishing_and_drops_its_keys(tmp_path: Path) -> None:
    stats = FloodStats()
    async with prekey_flood_relay(stats, interval=0.02, accept=50) as url:
        client = await make_client(tmp_path, "victim", url)
        await asyncio.sleep(2)
        stored = _stored(client, PrekeyKind.ONE_TIME), _stored(client, PrekeyKind.KEM_ONE_TIME)
        await shut(client)
    assert stats.refused == 1, stats.refused  # no retrying against a full relay
    # only what the relay took is kept: the refused batch is nowhere
    assert stored == (stats.uploaded_one_time, stats.uploaded_one_time)


async def test_the_oldest_unused_one_time_keys_go_beyond_the_cap(tmp_path: Path) -> None:
    stats = FloodStats()
    async with prekey_flood_relay(stats, interval=3600, accept=10_000) as url:
        client = await make_client(tmp_path, "victim", url)
        for _ in range(6):  # top-ups, each believing the relay has none
            await client.ensure_prekeys()
        ids = [i for i, _ in client.prekeys.repo.ids(PrekeyKind.ONE_TIME)]
        made = client.profile.next_one_time_id - 1
        await shut(client)
    assert made > MAX_UNUSED_ONE_TIME
    assert ids == list(range(made - MAX_UNUSED_ONE_TIME + 1, made + 1))  # the newest
