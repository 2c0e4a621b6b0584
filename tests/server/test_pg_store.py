"""What PostgreSQL storage adds to the contract (server/pg_store.py, docs/DEPLOY.md):
several processes on one database. Two Storage instances with their own pools stand
for two relay processes; relays here are real (in this process, or `blindrelay
serve` processes) on a fresh database each."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Deliver, QueueDone
from server.pg_store import PgStorage
from tests.pgdb import fresh_database
from tests.support import ROOT, running_relay, start_relay_process


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


async def test_two_processes_never_hand_out_the_same_one_time_key(database: str) -> None:
    """Bundles and KeyPackages fetched at once through two pools: each one-time key
    goes to exactly one taker, and no taker is sent away with none while any is left."""
    first = await PgStorage.open(database, max_size=4)
    second = await PgStorage.open(database, max_size=4)
    try:
        await first.register("bob", b"\x01" * 32)
        await first.set_signed_prekeys("bob", b"spk", b"last-kem")
        await first.add_one_time_prekeys(
            "bob", [(i, b"opk%d" % i) for i in range(40)],
            [(i, b"kem%d" % i) for i in range(40)], 100)
        await second.add_key_packages("bob", [b"kp%d" % i for i in range(30)], False, 100)
        await second.add_key_packages("bob", [b"kp-last"], True, 100)
        stores = (first, second)
        bundles = await asyncio.gather(*(stores[i % 2].take_bundle("bob") for i in range(50)))
        packages = await asyncio.gather(*(stores[i % 2].take_key_package("bob")
                                          for i in range(40)))
    finally:
        await first.close()
        await second.close()
    one_time = [b.one_time_prekey for b in bundles if b.one_time_prekey is not None]
    assert len(one_time) == len(set(one_time)) == 40
    kem = [b.kem_prekey for b in bundles if b.kem_prekey != b"last-kem"]
    assert len(kem) == len(set(kem)) == 40
    handed = [p for p in packages if p != b"kp-last"]
    assert len(handed) == len(set(handed)) == 30


async def test_seqs_rise_whichever_process_stores(database: str) -> None:
    """A connection on one process remembers the last seq it delivered; envelopes
    another process stores for the same recipient must come above it, also when the
    queue was emptied in between."""
    first = await PgStorage.open(database, max_size=2)
    second = await PgStorage.open(database, max_size=2)
    try:
        await first.register("bob", b"\x01" * 32)
        last = 0
        for i in range(10):
            store = (first, second)[i % 2]
            (env,) = await store.store_envelopes([("bob", b"%d" % i)], 0, 10)
            assert env.seq > last
            last = env.seq
            await (first, second)[(i + 1) % 2].delete_envelopes("bob", [env.envelope_id])
        both = await asyncio.gather(*(s.store_envelopes([("bob", b"x")], 0, 10)
                                      for s in (first, second) * 4))
        assert len({e.seq for r in both for e in r}) == 8
        assert min(e.seq for r in both for e in r) > last
    finally:
        await first.close()
        await second.close()


async def test_the_storage_budget_holds_across_processes(database: str) -> None:
    """Stores racing through two pools toward a small global budget: exactly as many
    are admitted as fit, the rest get StorageFull, and the total never passes it."""
    from server.storage import StorageFull

    first = await PgStorage.open(database, max_size=4)
    second = await PgStorage.open(database, max_size=4)
    try:
        for name in ("bob", "carol"):
            await first.register(name, name.encode() * 8)
        results = await asyncio.gather(*(
            (first, second)[i % 2].store_envelopes([(("bob", "carol")[i % 2], b"x")], 0, 100,
                                                   max_stored_envelopes=10)
            for i in range(30)), return_exceptions=True)
        assert sum(isinstance(r, list) for r in results) == 10
        assert all(isinstance(r, StorageFull) for r in results if not isinstance(r, list))
        assert len(await first.queued("bob", 0, 100)) + len(
            await first.queued("carol", 0, 100)) == 10
    finally:
        await first.close()
        await second.close()


async def test_processes_starting_together_create_the_schema_once(database: str) -> None:
    stores = await asyncio.gather(*(PgStorage.open(database, max_size=1) for _ in range(3)))
    try:
        await stores[0].register("bob", b"\x01" * 32)
        assert await stores[2].identity("bob") == b"\x01" * 32
    finally:
        for store in stores:
            await store.close()
    again = await PgStorage.open(database, max_size=1)  # the schema is there: no change
    try:
        assert await again.accounts() == [("bob", b"\x01" * 32)]
    finally:
        await again.close()


async def test_a_relay_on_postgresql_delivers_and_keeps_the_queue(
        tmp_path: Path, database: str) -> None:
    bob_id, alice_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    async with running_relay(tmp_path / "relay", storage=database) as relay:
        assert not (tmp_path / "relay" / "relay.sqlite3").exists()
        alice = await RelayConnection.open(relay.url)
        await alice.register("alice", alice_id)
        bob = await RelayConnection.open(relay.url)
        await bob.register("bob", bob_id)
        await bob.close()
        (envelope_id,) = await alice.send([("bob", b"sealed-body")])
        await alice.close()
    async with running_relay(tmp_path / "relay", storage=database) as relay:
        bob = await RelayConnection.open(relay.url)
        await bob.login("bob", bob_id)
        frame = await bob.next_push(10)
        assert isinstance(frame, Deliver)
        assert (frame.envelope_id, frame.body) == (envelope_id, b"sealed-body")
        assert isinstance(await bob.next_push(10), QueueDone)
        await bob.close()


async def test_two_relay_processes_share_a_data_directory_and_database(
        tmp_path: Path, database: str) -> None:
    """The data directory's lock does not keep a second relay on PostgreSQL out (it
    holds only key files for them, read by both); what one stores the other
    delivers."""
    data = tmp_path / "relay"
    bob_id, alice_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    one = start_relay_process(data, "--storage", database)
    two = start_relay_process(data, "--storage", database)
    try:
        conn = await RelayConnection.open(one.url)
        await conn.register("bob", bob_id)
        await conn.close()
        conn = await RelayConnection.open(one.url)
        await conn.register("alice", alice_id)
        await conn.close()
        alice = await RelayConnection.open(two.url)
        await alice.login("alice", alice_id)
        (envelope_id,) = await alice.send([("bob", b"via-two")])
        await alice.close()
        bob = await RelayConnection.open(one.url)
        await bob.login("bob", bob_id)
        frame = await bob.next_push(10)
        assert isinstance(frame, Deliver) and frame.envelope_id == envelope_id
        await bob.close()
        assert one.stop() == 0 and two.stop() == 0
    finally:
        for rp in (one, two):
            if rp.proc.poll() is None:
                rp.proc.kill()
            rp.proc.communicate(timeout=5)


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blindrelay", "serve", "--port", "0",
         "--data", str(tmp_path / "relay"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


def test_without_asyncpg_the_relay_says_what_to_install(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "asyncpg.py").write_text("raise ImportError('asyncpg is not installed')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    done = _serve(tmp_path, "--storage", "postgresql://u@127.0.0.1:1/db", env=env)
    assert done.returncode == 1
    assert "pip install blindrelay[cluster]" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_storage_or_database_is_one_clear_line(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--storage", "mysql://u@host/db")
    assert done.returncode == 1
    assert "--storage takes a postgresql://" in done.stderr
    done = _serve(tmp_path, "--storage", "postgresql://u:secret@127.0.0.1:1/db")
    assert done.returncode == 1
    assert "cannot open the PostgreSQL database postgresql://u:***@127.0.0.1:1/db" in (
        done.stderr)
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


async def test_admin_deletes_an_account_only_while_no_relay_is_connected(
        tmp_path: Path, database: str) -> None:
    from server.admin import delete_account
    from server.sqlite_store import DataDirInUse

    data = tmp_path / "relay"
    async with running_relay(data, storage=database) as relay:
        conn = await RelayConnection.open(relay.url)
        await conn.register("bob", IdentityKeyPair.generate())
        await conn.close()
        with pytest.raises(DataDirInUse, match="stop them first"):
            await delete_account(data, "bob", database)
    assert await delete_account(data, "bob", database) == 0
    store = await PgStorage.open(database, max_size=1)
    try:
        assert await store.identity("bob") is None
        assert [u.username for u in await store.directory_updates()] == ["bob", "bob"]
    finally:
        await store.close()


async def test_a_relay_catches_up_with_directory_updates_another_appended(
        tmp_path: Path, database: str) -> None:
    """Two relays' directories on one database: what one appended, the other replays
    (server/kt.py catch_up), and then both sign the same head."""
    from server.kt import catch_up, load_log_key, load_vrf_key, new_update, open_directory

    key, vrf = load_log_key(tmp_path, "relay.example"), load_vrf_key(tmp_path)
    bob, carol = (IdentityKeyPair.generate().public for _ in range(2))
    first = await PgStorage.open(database, max_size=1)
    second = await PgStorage.open(database, max_size=1)
    try:
        one = await open_directory(first, key, vrf)
        two = await open_directory(second, key, vrf)
        _, update = new_update(one, "bob", bob)
        await first.register("bob", bob, update)
        assert await catch_up(one, first) == 1
        _, stale = new_update(two, "carol", carol)
        from server.storage import DirectoryOutOfStep

        with pytest.raises(DirectoryOutOfStep):
            await second.register("carol", carol, stale)
        assert await catch_up(two, second) == 1
        _, update = new_update(two, "carol", carol)
        await second.register("carol", carol, update)
        # (a relay appends its own update in memory; here both read it back)
        assert await catch_up(one, first) == await catch_up(two, second) == 1
        assert one.size == two.size == 2
        assert one.log.root() == two.log.root()
    finally:
        await first.close()
        await second.close()


async def test_a_database_from_a_newer_relay_is_refused(database: str) -> None:
    from server.pg_store import PostgresUnavailable

    store = await PgStorage.open(database, max_size=1)
    try:
        async with store.pool.acquire() as conn:
            await conn.execute("COMMENT ON TABLE accounts IS 'blindrelay schema 99'")
    finally:
        await store.close()
    with pytest.raises(PostgresUnavailable, match=r"schema 99 .* is newer than this relay"):
        await PgStorage.open(database, max_size=1)
