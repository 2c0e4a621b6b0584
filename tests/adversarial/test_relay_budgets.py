"""Issue 9, section C items 13 and 14, scripted against a real relay on loopback: a
prekey drain, a queue flood, a disk flood and a registration flood each end in their
refusal code, and under all of them at once an honest pair keeps p99 delivery under one
second while the stored bytes stay under the disk budget (docs/PROTOCOL.md 16.7)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from client.connection import RelayConnection, RelayError
from conformance.relay.registry import make_prekeys
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Deliver, ErrorCode, QueueDone
from server import serve
from server.budgets import Budgets, Rate
from server.config import ServerConfig, default_limits
from server.relay import Relay
from server.storage import ENVELOPE_OVERHEAD

UNLIMITED = Rate(0, float("inf"))


@contextlib.asynccontextmanager
async def relay_with(data: Path, budgets: Budgets, **limits: int
                     ) -> AsyncIterator[tuple[str, Relay]]:
    config = ServerConfig(port=0, data_dir=data, limits=replace(default_limits(), **limits),
                          budgets=budgets)
    async with serve.running_relay(config) as running:
        yield running.url, running.relay


async def user(url: str, name: str | None = None, prekeys: tuple[int, int] | None = None
               ) -> tuple[RelayConnection, str]:
    name = name or "u" + secrets.token_hex(6)
    identity = IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    if prekeys is not None:
        keys = make_prekeys(identity, one_time=prekeys[0], kem=prekeys[1])
        await conn.upload_signed_prekeys(keys.signed, keys.last_resort)
        await conn.upload_one_time_prekeys(keys.one_time, keys.kem)
    return conn, name


async def offline_user(url: str) -> str:
    conn, name = await user(url)
    await conn.close()
    return name


async def refused(awaitable: object) -> int:
    try:
        await awaitable  # type: ignore[misc]
    except RelayError as exc:
        return exc.code
    raise AssertionError("the request was not refused")


# ---- item 13: prekey drain -----------------------------------------------------------


async def test_one_account_cannot_drain_a_victims_one_time_prekeys(tmp_path: Path) -> None:
    """Before: one account took all 100 + 100 one-time prekeys in 0.15 s."""
    async with relay_with(tmp_path, Budgets()) as (url, _):
        victim, victim_name = await user(url, prekeys=(100, 100))
        drainer, _ = await user(url)
        taken = 0
        code = 0
        for _ in range(100):
            try:
                await drainer.fetch_bundle(victim_name)
                taken += 1
            except RelayError as exc:
                code = exc.code
                assert "FETCH_BUNDLE" in exc.message
                break
        assert code == ErrorCode.RATE_LIMITED
        assert taken == Budgets().fetch_per_pair.burst
        assert await victim.prekey_counts() == (100 - taken, 100 - taken)
        # a real contact still gets a bundle with one-time prekeys
        friend, _ = await user(url)
        bundle = await friend.fetch_bundle(victim_name)
        assert bundle.one_time_prekey is not None
        for conn in (victim, drainer, friend):
            await conn.close()


async def test_fetches_per_requester_are_budgeted_across_targets(tmp_path: Path) -> None:
    budgets = Budgets(fetch_per_requester=Rate(0.01, 5))
    async with relay_with(tmp_path, budgets) as (url, _):
        targets = [(await user(url, prekeys=(1, 1)))[1] for _ in range(6)]
        fetcher, _ = await user(url)
        for name in targets[:5]:
            await fetcher.fetch_bundle(name)
        assert await refused(fetcher.fetch_bundle(targets[5])) == ErrorCode.RATE_LIMITED
        other, _ = await user(url)
        await other.fetch_bundle(targets[5])
        await fetcher.close()
        await other.close()


# ---- item 14: queue flood, disk, registration ---------------------------------------


async def test_a_flood_takes_only_its_share_of_a_queue(tmp_path: Path) -> None:
    """Before: one account filled an offline victim's 10,000-envelope queue and the
    victim's real contacts then got QUEUE_FULL."""
    budgets = Budgets(send_envelopes=UNLIMITED, pair_envelopes=UNLIMITED)
    async with relay_with(tmp_path, budgets, max_queue=1000) as (url, relay):
        victim = await offline_user(url)
        flooder, _ = await user(url)
        sent = 0
        with contextlib.suppress(RelayError):
            while sent < 1000:
                sent += len(await flooder.send([(victim, b"junk")] * 50))
        assert sent == relay.budgets.queue_share == 250
        error = await refused(flooder.send([(victim, b"junk")]))
        assert error == ErrorCode.SENDER_BUDGET
        friend, _ = await user(url)
        await friend.send([(victim, b"hello from a real contact")])
        await flooder.close()
        await friend.close()
        expected = sent * (4 + ENVELOPE_OVERHEAD) + 25 + ENVELOPE_OVERHEAD
        assert await relay.storage.stored_bytes() == expected


async def test_acknowledging_frees_the_senders_share(tmp_path: Path) -> None:
    budgets = Budgets(send_envelopes=UNLIMITED, pair_envelopes=UNLIMITED)
    async with relay_with(tmp_path, budgets, max_queue=200) as (url, relay):
        identity = IdentityKeyPair.generate()
        conn = await RelayConnection.open(url)
        await conn.register("victim", identity)
        await conn.next_push(5)
        await conn.close()
        flooder, _ = await user(url)
        share = relay.budgets.queue_share
        await flooder.send([("victim", b"x")] * share)
        assert await refused(flooder.send([("victim", b"x")])) == ErrorCode.SENDER_BUDGET
        victim = await RelayConnection.open(url)
        await victim.login("victim", identity)
        ids = []
        while not isinstance(frame := await victim.next_push(5), QueueDone):
            assert isinstance(frame, Deliver)
            ids.append(frame.envelope_id)
        assert len(ids) == share
        await victim.ack(ids)
        await flooder.send([("victim", b"x")])
        await victim.close()
        await flooder.close()


async def test_one_connection_cannot_fill_the_disk(tmp_path: Path) -> None:
    """Before: one connection filled the disk at 17-37 MiB/s."""
    budgets = Budgets(send_bytes=Rate(64 * 1024, 1024 * 1024))
    async with relay_with(tmp_path, budgets) as (url, relay):
        victims = [await offline_user(url) for _ in range(4)]
        flooder, _ = await user(url)
        big = b"\xa5" * (60 * 1024)
        accepted = 0
        start = time.monotonic()
        code = 0
        while time.monotonic() - start < 5:
            try:
                await flooder.send([(victims[accepted % 4], big)])
                accepted += 1
            except RelayError as exc:
                code = exc.code
                break
        assert code == ErrorCode.SENDER_BUDGET
        stored = await relay.storage.stored_bytes()
        assert stored <= 1024 * 1024
        assert accepted == 1024 * 1024 // (len(big) + ENVELOPE_OVERHEAD)
        await flooder.close()


async def test_a_sender_takes_only_its_share_of_the_storage(tmp_path: Path) -> None:
    budgets = Budgets(max_stored_bytes=4 * 1024 * 1024, storage_share=0.25)
    async with relay_with(tmp_path, budgets) as (url, relay):
        victims = [await offline_user(url) for _ in range(8)]
        flooder, _ = await user(url)
        big = b"\x11" * (32 * 1024)
        with contextlib.suppress(RelayError):
            for i in range(200):
                await flooder.send([(victims[i % 8], big)])
        assert await refused(flooder.send([(victims[0], big)])) == ErrorCode.SENDER_BUDGET
        assert await relay.storage.stored_bytes() <= 1024 * 1024
        friend, _ = await user(url)
        await friend.send([(victims[0], big)])
        await flooder.close()
        await friend.close()


async def test_the_disk_budget_refuses_with_storage_full_and_survives_a_restart(
        tmp_path: Path) -> None:
    budgets = Budgets(max_stored_bytes=512 * 1024, storage_share=1.0)
    big = b"\x22" * (40 * 1024)
    async with relay_with(tmp_path, budgets) as (url, relay):
        victims = [await offline_user(url) for _ in range(4)]
        senders = [(await user(url))[0] for _ in range(4)]
        stored = 0
        code = 0
        for i in range(40):
            try:
                await senders[i % 4].send([(victims[i % 4], big)])
                stored += 1
            except RelayError as exc:
                code = exc.code
                break
        assert code == ErrorCode.STORAGE_FULL
        assert stored == 512 * 1024 // (len(big) + ENVELOPE_OVERHEAD)
        used = await relay.storage.stored_bytes()
        assert used == stored * (len(big) + ENVELOPE_OVERHEAD) <= 512 * 1024
        for conn in senders:
            await conn.close()
    async with relay_with(tmp_path, budgets) as (url, relay):
        assert await relay.storage.stored_bytes() == used  # counted across the restart
        sender, _ = await user(url)
        assert await refused(sender.send([(victims[0], big)])) == ErrorCode.STORAGE_FULL
        await sender.send([(victims[0], b"small still fits")])
        await sender.close()


async def test_the_envelope_count_budget_refuses_with_storage_full(tmp_path: Path) -> None:
    """Tiny envelopes are bounded by number too, and with them the relay's memory."""
    budgets = Budgets(max_stored_envelopes=100, queue_share=1.0)
    async with relay_with(tmp_path, budgets) as (url, relay):
        victim = await offline_user(url)
        sender, _ = await user(url)
        await sender.send([(victim, b".")] * 60)
        assert await refused(sender.send([(victim, b".")] * 41)) == ErrorCode.STORAGE_FULL
        await sender.send([(victim, b".")] * 40)
        assert await refused(sender.send([(victim, b".")])) == ErrorCode.STORAGE_FULL
        assert len(relay.budgets.shares.by_id) == 100
        await sender.close()


async def test_registration_is_rate_limited_per_address_and_in_all(tmp_path: Path) -> None:
    """Before: registration was free and unlimited."""
    budgets = Budgets(register_per_address=Rate(0.001, 5))
    async with relay_with(tmp_path, budgets) as (url, _):
        for _ in range(5):
            conn, _ = await user(url)
            await conn.close()
        conn = await RelayConnection.open(url)
        code = await refused(conn.register("one-too-many", IdentityKeyPair.generate()))
        assert code == ErrorCode.REGISTRATION_LIMITED
        await conn.close()
    budgets = Budgets(register_global=Rate(0.001, 3))
    async with relay_with(tmp_path / "global", budgets) as (url, _):
        for _ in range(3):
            conn, _ = await user(url)
            await conn.close()
        conn = await RelayConnection.open(url)
        code = await refused(conn.register("one-more", IdentityKeyPair.generate()))
        assert code == ErrorCode.REGISTRATION_LIMITED
        await conn.close()


# ---- all at once: the honest pair keeps being served ---------------------------------


async def _flood(url: str, stop: asyncio.Event, victims: list[str], prekey_owner: str,
                 refusals: dict[int, int]) -> None:
    conn, _ = await user(url)
    big = b"\x99" * (63 * 1024)
    small = b"junk" * 512  # the smallest size class (docs/PROTOCOL.md 10.1)
    i = 0

    async def attempt(coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except RelayError as exc:
            refusals[exc.code] = refusals.get(exc.code, 0) + 1

    try:
        while not stop.is_set():
            victim = victims[i % len(victims)]
            await asyncio.gather(
                attempt(conn.send([(victim, small)] * 64)),
                attempt(conn.send([(victim, big)] * 3)),
                attempt(conn.fetch_bundle(prekey_owner)),
            )
            i += 1
    finally:
        await conn.close()


async def test_an_honest_pair_is_served_under_every_flood_at_once(tmp_path: Path) -> None:
    budget = 24 * 1024 * 1024
    budgets = Budgets(max_stored_bytes=budget)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with relay_with(tmp_path, budgets) as (url, relay):
        alice, _ = await user(url, "alice", prekeys=(100, 100))
        bob, _ = await user(url, "bob", prekeys=(100, 100))
        victims = [await offline_user(url) for _ in range(6)]
        stop = asyncio.Event()
        refusals: dict[int, int] = {}
        attackers = [asyncio.create_task(_flood(url, stop, victims, "bob", refusals))
                     for _ in range(4)]
        await asyncio.sleep(0.5)  # let the floods get going
        latencies = []
        for n in range(150):
            body = n.to_bytes(4, "big") + b"\x00" * 2044
            start = time.monotonic()
            (envelope_id,) = await alice.send([("bob", body)])
            while True:
                frame = await bob.next_push(5)
                if isinstance(frame, Deliver) and frame.envelope_id == envelope_id:
                    break
            latencies.append(time.monotonic() - start)
            await bob.ack([envelope_id])
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*attackers)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        stored = await relay.storage.stored_bytes()
        print(f"\np50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
              f" max {latencies[-1] * 1000:.1f} ms; stored {stored} of {budget} bytes;"
              f" refusals {dict((ErrorCode(c).name, k) for c, k in refusals.items())};"
              f" tracked envelopes {len(relay.budgets.shares.by_id)}")
        assert p99 < 1.0
        assert stored <= budget
        # the storage shares bind first: four accounts take at most four shares
        assert stored <= 4 * budgets.storage_share * budget + 10 * 1024
        assert refusals.get(ErrorCode.SENDER_BUDGET, 0) > 0
        assert refusals.get(ErrorCode.RATE_LIMITED, 0) > 0
        # the drain took at most each attacker's pair budget of bob's prekeys
        counts = await bob.prekey_counts()
        assert min(counts) >= 100 - 4 * Budgets().fetch_per_pair.burst
        assert len(relay.budgets.shares.by_id) <= budgets.max_stored_envelopes
        await alice.close()
        await bob.close()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    print(f"peak RSS grew by {grown / 1024:.1f} MiB")
    assert grown < 256 * 1024  # KiB on Linux
