"""The relay's budgets (server/budgets.py, docs/PROTOCOL.md 16.7): bounded memory, exact
accounting of what is stored, shares given back when a SEND fails, and the `serve`
options."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import ErrorCode, QueueDone
from server import serve
from server.budgets import BucketTable, Budgets, Rate, parse_rate, source_key
from server.config import ServerConfig, default_limits
from server.sqlite_store import SqliteStorage
from server.storage import ENVELOPE_OVERHEAD
from tests.support import relay_process


async def _user(url: str, name: str) -> RelayConnection:
    conn = await RelayConnection.open(url)
    await conn.register(name, IdentityKeyPair.generate())
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn


def test_bucket_tables_hold_at_most_max_tracked() -> None:
    table: BucketTable[int] = BucketTable(Rate(0.001, 2), max_tracked=100)
    for key in range(1000):
        assert table.bucket(key, 0.0).take(0.0)
    assert len(table.buckets) <= 100
    # a full bucket remembers nothing, so full ones go first and a spent one stays
    spent: BucketTable[str] = BucketTable(Rate(0.001, 2), max_tracked=3)
    assert spent.bucket("spent", 0.0).take(0.0, 2)
    spent.bucket("idle", 0.0)
    spent.bucket("idle too", 0.0)
    spent.bucket("fourth", 1.0)
    assert set(spent.buckets) == {"spent", "fourth"}
    assert not spent.bucket("spent", 1.0).take(1.0)

def test_registrations_are_counted_by_address() -> None:
    assert source_key(("192.0.2.7", 50000)) == "192.0.2.7"
    assert source_key(("2001:db8:1:2:3:4:5:6", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert source_key(("2001:db8:1:2:ffff::1", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert source_key(("::ffff:192.0.2.7", 1, 0, 0)) == "192.0.2.7"
    assert source_key(None) == "?"


def test_rate_options_parse() -> None:
    assert parse_rate("12:0.5") == Rate(0.5, 12)
    assert parse_rate("off") == Rate(0, float("inf"))
    for bad in ("12", "x:1", "0:1", "5:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rate(bad)


async def test_stored_bytes_follow_stores_acks_and_expiry(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("alice", b"\x01" * 32)
        stored = await store.store_envelopes([("alice", b"a" * 100), ("alice", b"b" * 50)],
                                             1000, 10)
        assert await store.stored_bytes() == 150 + 2 * ENVELOPE_OVERHEAD
        # the count ACK reports stays right next to the usage trigger
        deleted = await store.delete_envelopes("alice", [stored[0].envelope_id, b"x" * 16])
        assert deleted == 1
        assert await store.stored_bytes() == 50 + ENVELOPE_OVERHEAD
        assert await store.expire(2000) == 1
        assert await store.stored_bytes() == 0
    finally:
        await store.close()


async def test_a_refused_send_gives_its_share_back(tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path)
    async with serve.running_relay(config) as running:
        alice = await _user(running.url, "alice")
        bob = await _user(running.url, "bob")
        with pytest.raises(RelayError) as refused:
            await alice.send([("bob", b"x"), ("nobody", b"y")])
        assert refused.value.code == ErrorCode.UNKNOWN_USER
        assert running.relay.budgets.shares.pair_count == {}
        await alice.send([("bob", b"x")])
        assert running.relay.budgets.shares.pair_count == {("alice", "bob"): 1}
        await alice.close()
        await bob.close()


async def test_pipelined_sends_cannot_overrun_a_share(tmp_path: Path) -> None:
    """SENDs commit concurrently; the share is reserved before storing, not after."""
    limits = replace(default_limits(), max_queue=400)
    config = ServerConfig(port=0, data_dir=tmp_path, limits=limits)
    async with serve.running_relay(config) as running:
        bob = await _user(running.url, "bob")
        await bob.close()
        alice = await _user(running.url, "alice")
        share = running.relay.budgets.queue_share
        assert share == 100
        results = await asyncio.gather(*(alice.send([("bob", b"x")] * 25) for _ in range(8)),
                                       return_exceptions=True)
        accepted = sum(len(r) for r in results if isinstance(r, tuple))
        codes = {r.code for r in results if isinstance(r, RelayError)}
        assert accepted == share
        assert codes == {ErrorCode.SENDER_BUDGET}
        await alice.close()


def test_serve_options_set_the_budgets(tmp_path: Path) -> None:
    async def register_three(url: str) -> int:
        for name in ("one", "two"):
            await (await _user(url, name)).close()
        conn = await RelayConnection.open(url)
        try:
            await conn.register("three", IdentityKeyPair.generate())
        except RelayError as exc:
            return exc.code
        finally:
            await conn.close()
        return 0

    with relay_process(tmp_path, "--register-budget", "2:0.001") as relay:
        assert asyncio.run(register_three(relay.url)) == ErrorCode.REGISTRATION_LIMITED


def test_defaults_let_a_full_send_through() -> None:
    """A SEND of max_recipients envelopes to one recipient fits every default budget."""
    b = Budgets()
    lim = default_limits()
    biggest = lim.max_recipients * (lim.max_envelope + ENVELOPE_OVERHEAD)
    assert b.pair_bytes.burst >= biggest and b.send_bytes.burst >= biggest
    assert b.pair_envelopes.burst >= lim.max_recipients
    assert b.queue_share * lim.max_queue >= lim.max_recipients
    assert b.storage_share * b.max_stored_bytes >= biggest
