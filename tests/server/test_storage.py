"""The SQLite storage behind the relay, through its interface."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from server.sqlite_store import SqliteStorage
from server.storage import QueueFull, Storage, UnknownUser


async def test_expired_envelopes_are_never_handed_out(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        await store.store_envelopes([("bob", b"old")], now=1000, max_queue=10)
        await store.store_envelopes([("bob", b"new")], now=2000, max_queue=10)
        fresh = await store.queued("bob", 0, 10, not_before=1500)
        assert [e.body for e in fresh] == [b"new"]
        assert await store.expire(before=1500) == 1
        assert [e.body for e in await store.queued("bob", 0, 10)] == [b"new"]
    finally:
        await store.close()


async def test_send_is_all_or_nothing(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        with pytest.raises(UnknownUser):
            await store.store_envelopes([("bob", b"a"), ("nobody", b"b")], 1, 10)
        assert await store.queued("bob", 0, 10) == []
        await store.store_envelopes([("bob", b"a")], 1, 1)
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"b")], 1, 1)
    finally:
        await store.close()


async def test_a_refused_write_in_a_group_leaves_nothing_and_the_others_commit(
        tmp_path: Path) -> None:
    """Writes started in one loop step commit in one group, without a savepoint each:
    a SEND refused after its first envelope was written still stores none of them,
    and the writes around it commit."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        commits = store.commits
        results = await asyncio.gather(
            store.store_envelopes([("bob", b"a")], 1, 10),
            store.store_envelopes([("bob", b"b"), ("nobody", b"c")], 1, 10),
            store.store_envelopes([("bob", b"d")], 1, 10),
            # b, refused with its SEND, does not count towards bob's queue of 3
            store.store_envelopes([("bob", b"e")], 1, 3),
            return_exceptions=True)
        assert [type(r) for r in results] == [list, UnknownUser, list, list]
        assert store.commits == commits + 1
        assert [e.body for e in await store.queued("bob", 0, 10)] == [b"a", b"d", b"e"]
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"f")], 1, 3)
    finally:
        await store.close()


async def test_queue_counts_follow_acks_expiry_and_deletion(tmp_path: Path) -> None:
    """QUEUE_FULL counts what is queued (kept in memory), whatever took envelopes
    away: an ACK, expiry, or the account's deletion; across a restart too."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        first = await store.store_envelopes([("bob", b"a"), ("bob", b"b")], 1000, 2)
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"c")], 1000, 2)
        await store.delete_envelopes("bob", [first[0].envelope_id])
        await store.store_envelopes([("bob", b"c")], 2000, 2)
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"d")], 2000, 2)
        assert await store.expire(before=1500) == 1
        await store.store_envelopes([("bob", b"d")], 2000, 2)
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"e")], 2000, 2)
    finally:
        await store.close()
    store = await SqliteStorage.open(tmp_path)
    try:
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"e")], 2000, 2)
        await store.delete_account("bob")
        await store.register("bob", b"\x02" * 32)
        await store.store_envelopes([("bob", b"f"), ("bob", b"g")], 2000, 2)
    finally:
        await store.close()


async def test_seq_is_never_reused(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        (first,) = await store.store_envelopes([("bob", b"a")], 1, 10)
        await store.delete_envelopes("bob", [first.envelope_id])
        (second,) = await store.store_envelopes([("bob", b"b")], 1, 10)
        assert second.seq > first.seq
    finally:
        await store.close()


async def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        store = await SqliteStorage.open(tmp_path / "data")
        await store.register("bob", b"\x01" * 32)
        for path in (tmp_path / "data").iterdir():
            assert path.stat().st_mode & 0o077 == 0, path.name
        assert (tmp_path / "data").stat().st_mode & 0o077 == 0
        await store.close()
    finally:
        os.umask(old)


async def test_delete_account_leaves_nothing_and_frees_the_name(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        await store.set_signed_prekeys("bob", b"spk", b"kem")
        await store.add_one_time_prekeys("bob", [(1, b"o")], [(1, b"k")], 10)
        await store.store_envelopes([("bob", b"a"), ("bob", b"b")], 1, 10)
        assert await store.delete_account("bob") == 2
        for table in ("accounts", "signed_prekeys", "one_time_prekeys",
                      "kem_one_time_prekeys", "envelopes"):
            assert store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
        with pytest.raises(UnknownUser):
            await store.delete_account("bob")
        await store.register("bob", b"\x02" * 32)
    finally:
        await store.close()


async def test_one_process_at_a_time_on_a_data_directory(tmp_path: Path) -> None:
    from server.sqlite_store import DataDirInUse

    store = await SqliteStorage.open(tmp_path)
    try:
        with pytest.raises(DataDirInUse):
            await SqliteStorage.open(tmp_path)
    finally:
        await store.close()
    again = await SqliteStorage.open(tmp_path)  # released on close
    await again.close()


def _reporter() -> tuple[asyncio.Future[tuple[object, object]],
                         Callable[[object, object], None]]:
    """A future and the callback that settles it with (value, error)."""
    outcome: asyncio.Future[tuple[object, object]] = \
        asyncio.get_running_loop().create_future()
    return outcome, lambda value, error: outcome.set_result((value, error))


async def test_the_callback_forms_report_once_committed(tmp_path: Path) -> None:
    """store_envelopes_then and delete_envelopes_then (what the relay pipelines SENDs
    and quiet ACKs with): SQLite's own, from its group commit, and the Storage
    defaults another backend inherits, from a task; each reports the outcome once."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        forms: list[tuple[Callable[..., None], Callable[..., None]]] = [
            (store.store_envelopes_then, store.delete_envelopes_then),
            (functools.partial(Storage.store_envelopes_then, store),
             functools.partial(Storage.delete_envelopes_then, store))]
        for store_then, delete_then in forms:
            outcome, done = _reporter()
            store_then([("bob", b"a")], 1, 10, 0, 0, done)
            stored, error = await outcome
            assert error is None and isinstance(stored, list)
            assert [e.body for e in await store.queued("bob", 0, 10)] == [b"a"]
            outcome, done = _reporter()
            delete_then("bob", [stored[0].envelope_id], done)
            assert await outcome == (1, None)
            outcome, done = _reporter()
            store_then([("nobody", b"a")], 1, 10, 0, 0, done)
            value, error = await outcome
            assert value is None and isinstance(error, UnknownUser)
    finally:
        await store.close()
