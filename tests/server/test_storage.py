"""The storage contract (server/storage.py), run against both backends: embedded
SQLite and PostgreSQL (tests/server/conftest.py: a fresh database per test)."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.wire.prekeys import KemKind
from server.sqlite_store import SqliteStorage
from server.storage import (
    ENVELOPE_OVERHEAD,
    CommitConflict,
    DirectoryOutOfStep,
    DirectoryUpdate,
    IdentityInUse,
    NoKeyPackages,
    NoPrekeys,
    QueueFull,
    Storage,
    StorageFull,
    TooManyPrekeys,
    UnknownUser,
    UsernameTaken,
)
from tests.server.conftest import OpenStore, envelope_rows, row_count

FAR = 1 << 32
"""Two unrelated random 61- or 63-bit numbers are this close with odds of about 2**-28;
numbers from one counter always are (tests/server/test_rows.py)."""


async def test_expired_envelopes_are_never_handed_out(open_store: OpenStore) -> None:
    store = await open_store()
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


async def test_send_is_all_or_nothing(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        with pytest.raises(UnknownUser):
            await store.store_envelopes([("bob", b"a"), ("nobody", b"b")], 1, 10)
        assert await store.queued("bob", 0, 10) == []
        await store.store_envelopes([("bob", b"a")], 1, 1)
        with pytest.raises(QueueFull):
            await store.store_envelopes([("bob", b"b")], 1, 1)
        assert await store.stored_bytes() == 1 + ENVELOPE_OVERHEAD
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


async def test_seq_is_never_reused(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        (first,) = await store.store_envelopes([("bob", b"a")], 1, 10)
        await store.delete_envelopes("bob", [first.envelope_id])
        (second,) = await store.store_envelopes([("bob", b"b")], 1, 10)
        assert second.seq > first.seq
    finally:
        await store.close()


async def test_no_stored_number_links_two_recipients_envelopes(open_store: OpenStore) -> None:
    """docs/DATA.md "Rows that link nothing": row ids are random, and seq compares two
    recipients' envelopes by their random starts, not by which was stored first."""
    store = await open_store()
    try:
        for name in ("alice", "bob"):
            await store.register(name, name.encode() * 8)
        pairs, stored = [], []
        for first, second in (("bob", "alice"), ("alice", "bob")) * 4:
            (a,) = await store.store_envelopes([(first, b"m")], 0, 100)
            (b,) = await store.store_envelopes([(second, b"r")], 0, 100)
            stored += [a.envelope_id, b.envelope_id]
            pairs.append((a, b) if first == "bob" else (b, a))
        assert len({to_bob.seq > to_alice.seq for to_bob, to_alice in pairs}) == 1
        rows = await envelope_rows(store)
        ids = {eid: row_id for row_id, eid, _, _ in rows}
        assert [eid for _, eid, _, _ in rows] != stored, "row ids follow arrival"
        assert all(abs(ids[a] - ids[b]) > FAR for a, b in itertools.pairwise(stored))
    finally:
        await store.close()


async def test_a_deleted_name_registered_again_starts_afresh(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        (old,) = await store.store_envelopes([("bob", b"a")], 0, 10)
        await store.delete_account("bob")
        await store.register("bob", b"\x02" * 32)
        (new,) = await store.store_envelopes([("bob", b"b")], 0, 10)
        assert abs(new.seq - old.seq) > FAR
    finally:
        await store.close()


async def test_a_deletion_that_fails_keeps_the_queue_rising(open_store: OpenStore) -> None:
    """A deletion rolled back (its directory update is out of step) leaves the
    account, whose open connections must go on receiving: its seqs keep rising even
    though its queue is empty."""
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        last = 0
        for _ in range(6):
            (env,) = await store.store_envelopes([("bob", b"a")], 0, 10)
            assert env.seq > last
            await store.delete_envelopes("bob", [env.envelope_id])
            with pytest.raises(DirectoryOutOfStep):
                await store.delete_account("bob", DirectoryUpdate(99, "bob", b"", b""))
            last = env.seq
        assert await store.identity("bob") == b"\x01" * 32
    finally:
        await store.close()


async def test_queues_are_ordered_and_survive_a_reopen(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        await store.register("carol", b"\x02" * 32)
        stored = await store.store_envelopes(
            [("bob", b"1"), ("carol", b"x"), ("bob", b"2"), ("bob", b"3")], 0, 10)
        assert [e.recipient for e in stored] == ["bob", "carol", "bob", "bob"]
        bobs = [e for e in stored if e.recipient == "bob"]
        assert [e.seq for e in bobs] == sorted(e.seq for e in bobs)
    finally:
        await store.close()
    again = await open_store()
    try:
        queued = await again.queued("bob", 0, 10)
        assert [e.body for e in queued] == [b"1", b"2", b"3"]
        assert [e.body for e in await again.queued("bob", queued[0].seq, 10)] == [b"2", b"3"]
        (later,) = await again.store_envelopes([("bob", b"4")], 0, 10)
        assert later.seq > queued[-1].seq
    finally:
        await again.close()


async def test_delete_account_leaves_nothing_and_frees_the_name(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        await store.set_signed_prekeys("bob", b"spk", b"kem")
        await store.add_one_time_prekeys("bob", [(1, b"o")], [(1, b"k")], 10)
        await store.set_capability("bob", b"h" * 32, False, 5)
        await store.add_key_packages("bob", [b"kp"], False, 10)
        await store.store_envelopes([("bob", b"a"), ("bob", b"b")], 1, 10)
        await store.store_group_message(["bob"], b"g", 1, 10)
        assert await store.delete_account("bob") == 3
        for table in ("accounts", "signed_prekeys", "one_time_prekeys",
                      "kem_one_time_prekeys", "envelopes", "group_bodies",
                      "delivery_capabilities", "key_packages"):
            assert await row_count(store, table) == 0, table
        assert await store.stored_bytes() == 0
        with pytest.raises(UnknownUser):
            await store.delete_account("bob")
        await store.register("bob", b"\x02" * 32)
    finally:
        await store.close()


async def test_names_and_identity_keys_are_unique(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        with pytest.raises(UsernameTaken):
            await store.register("bob", b"\x02" * 32)
        with pytest.raises(IdentityInUse):
            await store.register("carol", b"\x01" * 32)
        assert await store.accounts() == [("bob", b"\x01" * 32)]
        assert await store.identity("carol") is None
    finally:
        await store.close()


async def test_directory_updates_append_in_step_or_not_at_all(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32, DirectoryUpdate(0, "bob", b"v0", b"o" * 16))
        with pytest.raises(DirectoryOutOfStep):
            await store.register("carol", b"\x02" * 32,
                                 DirectoryUpdate(5, "carol", b"v", b"o" * 16))
        assert await store.identity("carol") is None  # the account went with it
        with pytest.raises(DirectoryOutOfStep):
            await store.append_directory_updates([DirectoryUpdate(1, "x", b"v", b"o"),
                                                  DirectoryUpdate(3, "y", b"v", b"o")])
        await store.delete_account("bob", DirectoryUpdate(1, "bob", b"v1", b"p" * 16))
        assert [(u.index, u.username, u.value) for u in await store.directory_updates()] == [
            (0, "bob", b"v0"), (1, "bob", b"v1")]
    finally:
        await store.close()


async def test_capabilities_are_replaced(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        with pytest.raises(UnknownUser):
            await store.set_capability("nobody", b"h" * 32, True, 1)
        await store.register("bob", b"\x01" * 32)
        assert await store.capability("bob") is None
        await store.set_capability("bob", b"h" * 32, True, 1)
        await store.set_capability("bob", b"i" * 32, False, 2)
        assert await store.capability("bob") == (b"i" * 32, False)
    finally:
        await store.close()


async def test_bundles_hand_each_one_time_key_out_once(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        with pytest.raises(UnknownUser):
            await store.take_bundle("nobody")
        await store.register("bob", b"\x01" * 32)
        with pytest.raises(NoPrekeys):
            await store.take_bundle("bob")
        await store.set_signed_prekeys("bob", b"spk", b"last")
        assert await store.add_one_time_prekeys("bob", [(1, b"o1"), (2, b"o2")],
                                                [(7, b"k7")], 3) == (2, 1)
        with pytest.raises(TooManyPrekeys):
            await store.add_one_time_prekeys("bob", [(3, b"o3"), (4, b"o4")], [], 3)
        assert await store.prekey_counts("bob") == (2, 1)
        first = await store.take_bundle("bob")
        assert (first.one_time_prekey, first.kem_kind, first.kem_prekey) == (
            b"o1", KemKind.ONE_TIME, b"k7")
        assert (first.one_time_left, first.kem_one_time_left) == (1, 0)
        second = await store.take_bundle("bob")
        assert (second.one_time_prekey, second.kem_kind, second.kem_prekey) == (
            b"o2", KemKind.LAST_RESORT, b"last")
        third = await store.take_bundle("bob")
        assert third.one_time_prekey is None and third.identity == b"\x01" * 32
    finally:
        await store.close()


async def test_key_packages_once_then_the_last_resort(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        with pytest.raises(NoKeyPackages):
            await store.take_key_package("bob")
        assert await store.add_key_packages("bob", [b"a", b"b"], False, 2) == 2
        with pytest.raises(TooManyPrekeys):
            await store.add_key_packages("bob", [b"c"], False, 2)
        await store.add_key_packages("bob", [b"old"], True, 2)
        await store.add_key_packages("bob", [b"last"], True, 2)
        got = {await store.take_key_package("bob") for _ in range(2)}
        assert got == {b"a", b"b"}
        assert [await store.take_key_package("bob") for _ in range(2)] == [b"last"] * 2
        with pytest.raises(UnknownUser):
            await store.take_key_package("nobody")
    finally:
        await store.close()


async def test_a_group_message_is_stored_once_and_released_with_its_last_copy(
        open_store: OpenStore) -> None:
    store = await open_store()
    try:
        for name in ("bob", "carol"):
            await store.register(name, name.encode() * 8)
        stored = await store.store_group_message(["bob", "carol"], b"G" * 100, 0, 10)
        assert [e.group for e in stored] == [True, True]
        assert await store.stored_bytes() == 100 + 2 * ENVELOPE_OVERHEAD
        assert [e.body for e in await store.queued("carol", 0, 10)] == [b"G" * 100]
        await store.delete_envelopes("bob", [stored[0].envelope_id])
        assert await row_count(store, "group_bodies") == 1
        await store.delete_envelopes("carol", [stored[1].envelope_id])
        assert await row_count(store, "group_bodies") == 0
        assert await store.stored_bytes() == 0
        with pytest.raises(UnknownUser):
            await store.store_group_message(["bob", "nobody"], b"x", 0, 10)
        assert await store.queued("bob", 0, 10) == []
    finally:
        await store.close()


async def test_one_commit_per_group_epoch(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        group = b"g" * 32
        await store.store_group_message(["bob"], b"c1", 100, 10, commit=(group, 4))
        with pytest.raises(CommitConflict) as conflict:
            await store.store_group_message(["bob"], b"c2", 100, 10, commit=(group, 4))
        assert (conflict.value.epoch, conflict.value.latest) == (4, 4)
        assert len(await store.queued("bob", 0, 10)) == 1  # the loser stored nothing
        await store.store_group_message(["bob"], b"c3", 100, 10, commit=(group, 5))
        # forgotten once older than forget_before: epoch 3 is admitted again
        await store.store_group_message(["bob"], b"c4", 200, 10, commit=(group, 3),
                                        forget_before=150)
    finally:
        await store.close()


async def test_the_global_budget_refuses_all_or_nothing(open_store: OpenStore) -> None:
    store = await open_store()
    try:
        await store.register("bob", b"\x01" * 32)
        limit = 2 * (10 + ENVELOPE_OVERHEAD)
        await store.store_envelopes([("bob", b"x" * 10)], 0, 10, max_stored_bytes=limit)
        with pytest.raises(StorageFull):
            await store.store_envelopes([("bob", b"x" * 10), ("bob", b"y" * 10)], 0, 10,
                                        max_stored_bytes=limit)
        await store.store_envelopes([("bob", b"x" * 10)], 0, 10, max_stored_bytes=limit)
        with pytest.raises(StorageFull):
            await store.store_group_message(["bob"], b"g", 0, 10, max_stored_envelopes=2)
        assert await store.stored_bytes() == limit
    finally:
        await store.close()


async def test_concurrent_stores_keep_every_queue_in_order(open_store: OpenStore) -> None:
    """Many stores at once (the relay's concurrent senders): every envelope is stored
    once, each queue's seqs are distinct and rising in the order they were returned,
    and the usage total is exact."""
    store = await open_store()
    try:
        for name in ("bob", "carol"):
            await store.register(name, name.encode() * 8)
        results = await asyncio.gather(*(
            store.store_envelopes([("bob", b"%d" % i), ("carol", b"%d" % i)], 0, 1000)
            for i in range(40)))
        assert len({e.envelope_id for r in results for e in r}) == 80
        for name in ("bob", "carol"):
            queued = await store.queued(name, 0, 1000)
            assert len(queued) == 40
            assert len({e.seq for e in queued}) == 40
        assert await store.stored_bytes() == sum(
            len(e.body) + ENVELOPE_OVERHEAD for r in results for e in r)
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
