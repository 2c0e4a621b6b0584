"""Rows that link nothing (docs/DATA.md, "Table envelopes"; issue 12 item 3): random
row ids, a seq that orders one recipient's queue only, received_at rounded down to
RECEIVED_AT_GRANULARITY, no sqlite_sequence, secure_delete; and the queue order that
the relay's delivery depends on kept across restarts, emptied and refilled queues and
the migration from schema 3."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from client.client import Client
from client.connection import RelayConnection
from client.records import State
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Deliver, QueueDone
from server import serve
from server.events import RelayEvent, Stored
from server.relay import Relay
from server.sqlite_store import (
    BODIES_FILENAME,
    DB_FILENAME,
    LARGE_BODY,
    SCHEMA_VERSION,
    SqliteStorage,
)
from server.storage import (
    ENVELOPE_OVERHEAD,
    RECEIVED_AT_GRANULARITY,
    DirectoryOutOfStep,
    DirectoryUpdate,
    UnknownUser,
    coarse_time,
    received_at_granularity,
)
from tests.client.helpers import (
    PASSPHRASE,
    make_client,
    online,
    received,
    shut,
    wait_for,
    wait_state,
)
from tests.support import running_relay

FAR = 1 << 32
"""Two unrelated random 61- or 63-bit numbers are this close with odds of about 2**-28;
numbers from one counter always are."""

Row = tuple[int, str, int, int]
"""(id, recipient, seq, received_at) of an envelope row."""


def _rows(data_dir: Path) -> dict[bytes, Row]:
    """The envelopes table as a reader of the data directory sees it, by envelope id."""
    db = sqlite3.connect(f"{(data_dir / DB_FILENAME).as_uri()}?mode=ro", uri=True)
    try:
        return {bytes(eid): (row_id, recipient, seq, at) for row_id, eid, recipient, seq, at
                in db.execute("SELECT id, envelope_id, recipient, seq, received_at"
                              " FROM envelopes")}
    finally:
        db.close()


def _sqlite_tables(data_dir: Path) -> list[str]:
    db = sqlite3.connect(f"{(data_dir / DB_FILENAME).as_uri()}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE 'sqlite_%'")]
    finally:
        db.close()


def _stored_events(relay: Relay) -> list[Stored]:
    """Every envelope the relay stores from now on, in the order it stored them."""
    seen: list[Stored] = []

    def listen(event: RelayEvent) -> None:
        if isinstance(event, Stored):
            seen.append(event)

    relay.observers.append(listen)
    return seen


# ---- a real run ---------------------------------------------------------------------


async def test_after_a_real_run_no_stored_number_links_a_message_to_its_receipt(
        tmp_path: Path) -> None:
    """Four users; alice and dave write to bob and carol while those are away, then go
    away themselves, so that bob's and carol's delivery receipts wait in the relay's
    database next to where the messages were. No stored number of a receipt's row is
    near its message's (AUTOINCREMENT made them consecutive), nothing says which came
    first but the coarse time, and SQLite keeps no counter of its own."""
    data = tmp_path / "relay"
    async with running_relay(data) as relay:
        stored = _stored_events(relay.relay)
        clients = {n: await make_client(tmp_path, n, relay.url)
                   for n in ("alice", "bob", "carol", "dave")}
        alice, bob, carol, dave = clients.values()
        await bob.disconnect()
        await carol.disconnect()
        sent = [(writer, name, await clients[writer].send_text(name, f"{writer} to {name}"))
                for writer in ("alice", "dave") for name in ("bob", "carol")]
        for writer, name, message in sent:
            await wait_state(clients[writer], name, message, State.SENT)
        messages = _rows(data)  # each first contact: the writer's capability, the text
        assert sorted(r[1] for r in messages.values()) == ["bob"] * 4 + ["carol"] * 4

        await alice.disconnect()
        await dave.disconnect()
        await online(bob)
        await online(carol)
        await wait_for(lambda: sum(e.recipient in ("alice", "dave") for e in stored) == 8)
        receipts = {eid: row for eid, row in _rows(data).items() if eid not in messages}
        # bob's and carol's capabilities, and their receipts
        assert sorted(r[1] for r in receipts.values()) == ["alice"] * 4 + ["dave"] * 4
        assert _sqlite_tables(data) == []

        await online(alice)
        await online(dave)
        for writer, name, message in sent:
            await wait_state(clients[writer], name, message, State.DELIVERED)
        await shut(*clients.values())

    everything = {**messages, **receipts}
    order = [e.envelope_id for e in stored if e.envelope_id in everything]
    assert len(order) == 16
    for a, b in itertools.pairwise(order):
        (id_a, who_a, seq_a, _), (id_b, who_b, seq_b, _) = everything[a], everything[b]
        assert abs(id_a - id_b) > FAR, "row ids follow the order of arrival"
        if who_a != who_b:
            assert abs(seq_a - seq_b) > FAR, "seq runs across recipients"
    for m_row in messages.values():
        for r_row in receipts.values():
            assert abs(m_row[0] - r_row[0]) > FAR
            assert abs(m_row[2] - r_row[2]) > FAR
    for who in ("alice", "bob", "carol", "dave"):  # each queue in the order stored
        seqs = [everything[e][2] for e in order if everything[e][1] == who]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 4
    times = [row[3] for row in everything.values()] + [e.received_at for e in stored]
    assert all(t % RECEIVED_AT_GRANULARITY == 0 for t in times), times
    assert _sqlite_tables(data) == []


# ---- the storage: what the numbers can and cannot say -------------------------------


async def test_a_message_and_its_receipt_compare_the_same_whichever_came_first(
        tmp_path: Path) -> None:
    """seq compares two recipients' envelopes by their recipients' random starts, not
    by which was stored first; row ids in store order are a random permutation."""
    store = await SqliteStorage.open(tmp_path)
    try:
        for name in ("alice", "bob"):
            await store.register(name, name.encode() * 8)
        # (message to bob, then receipt to alice) and (receipt to alice, then message
        # to bob), four times each
        pairs = []
        stored = []
        for first, second in (("bob", "alice"), ("alice", "bob")) * 4:
            (a,) = await store.store_envelopes([(first, b"m")], 0, 100)
            (b,) = await store.store_envelopes([(second, b"r")], 0, 100)
            stored += [a.envelope_id, b.envelope_id]
            pairs.append((a, b) if first == "bob" else (b, a))
        signs = {to_bob.seq > to_alice.seq for to_bob, to_alice in pairs}
        assert len(signs) == 1, "seq tells which of two recipients' envelopes came first"
        physical = [bytes(eid) for eid, in store.db.execute(
            "SELECT envelope_id FROM envelopes NOT INDEXED")]
        by_id = [bytes(eid) for _, eid in sorted(store.db.execute(
            "SELECT id, envelope_id FROM envelopes"))]
        assert physical == by_id  # a table scan goes in rowid order
        assert by_id != stored, "row ids follow the order of arrival"  # odds 1/16!
        ids = {eid: row_id for row_id, eid in store.db.execute(
            "SELECT id, envelope_id FROM envelopes")}
        assert all(abs(ids[a] - ids[b]) > FAR for a, b in itertools.pairwise(stored))
    finally:
        await store.close()


@pytest.mark.parametrize("synchronous_full", [False, True])
async def test_seq_keeps_rising_when_a_queue_empties_and_after_a_restart(
        tmp_path: Path, synchronous_full: bool) -> None:
    store = await SqliteStorage.open(tmp_path, synchronous_full)
    try:
        await store.register("bob", b"\x01" * 32)
        await store.register("carol", b"\x02" * 32)
        first = await store.store_envelopes([("bob", b"a"), ("bob", b"b")], 0, 10)
        assert first[1].seq > first[0].seq
        await store.delete_envelopes("bob", [first[0].envelope_id])
        last = first[1]
        for _ in range(6):  # emptied, then one more
            await store.delete_envelopes("bob", [last.envelope_id])
            (refill,) = await store.store_envelopes([("bob", b"c")], 0, 10)
            assert refill.seq > last.seq
            last = refill
        (carol,) = await store.store_envelopes([("carol", b"x")], 0, 10)
        assert abs(carol.seq - refill.seq) > FAR
    finally:
        await store.close()
    again = await SqliteStorage.open(tmp_path)
    try:
        (after,) = await again.store_envelopes([("bob", b"d")], 0, 10)
        assert after.seq > refill.seq
        assert [e.body for e in await again.queued("bob", 0, 10)] == [b"c", b"d"]
        assert [e.body for e in await again.queued("bob", refill.seq, 10)] == [b"d"]
    finally:
        await again.close()


async def test_a_deleted_name_registered_again_starts_afresh(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        (old,) = await store.store_envelopes([("bob", b"a")], 0, 10)
        await store.delete_account("bob")
        assert "bob" not in store._last_seq  # nothing of the account is kept in memory
        await store.register("bob", b"\x02" * 32)
        (new,) = await store.store_envelopes([("bob", b"b")], 0, 10)
        assert abs(new.seq - old.seq) > FAR
    finally:
        await store.close()


async def test_a_deletion_that_fails_keeps_the_queue_rising(tmp_path: Path) -> None:
    """A deletion rolled back (here: its directory update is out of step) leaves the
    account, whose open connections must go on receiving: its seqs keep rising even
    though its queue is empty."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        last = None
        for _ in range(6):
            (env,) = await store.store_envelopes([("bob", b"a")], 0, 10)
            assert last is None or env.seq > last.seq
            await store.delete_envelopes("bob", [env.envelope_id])
            with pytest.raises(DirectoryOutOfStep):
                await store.delete_account("bob", DirectoryUpdate(99, "bob", b"", b""))
            last = env
        assert await store.identity("bob") == b"\x01" * 32
    finally:
        await store.close()


async def test_a_name_with_no_account_takes_no_memory(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    try:
        for n in range(20):
            with pytest.raises(UnknownUser):
                await store.store_envelopes([(f"nobody{n}", b"a")], 0, 10)
        assert store._last_seq == {}
    finally:
        await store.close()


async def test_an_acknowledged_body_is_in_neither_file(tmp_path: Path) -> None:
    """secure_delete: after the ACK and a checkpoint, the body's bytes are nowhere in
    the database or its WAL (not left in a free page or a freed cell)."""
    body = b"\xa5" * 12 + b"THE-BODY-MARK" + b"\x5a" * 2000
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        (env,) = await store.store_envelopes([("bob", body)], 0, 10)
        await store.store_envelopes([("bob", b"stays")], 0, 10)
        await store.checkpoint()
        assert b"THE-BODY-MARK" in (tmp_path / DB_FILENAME).read_bytes()
        await store.delete_envelopes("bob", [env.envelope_id])
        await store.checkpoint()
        for name in (DB_FILENAME, DB_FILENAME + "-wal"):
            path = tmp_path / name
            assert not path.exists() or b"THE-BODY-MARK" not in path.read_bytes(), name
    finally:
        await store.close()


async def test_a_large_body_is_stored_apart_and_gone_after_its_ack(tmp_path: Path) -> None:
    """A body of LARGE_BODY bytes and more is kept out of line, in relay-bodies.sqlite3
    (not in the envelopes row), counts in full against the storage budget, comes back
    whole, and after the ACK and a checkpoint is in none of the files."""
    body = b"\xa5" * 12 + b"THE-LARGE-MARK" + b"\x5a" * (LARGE_BODY + 100)
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        (env,) = await store.store_envelopes([("bob", body)], 0, 10)
        await store.store_envelopes([("bob", b"small")], 0, 10)
        await store.checkpoint()
        assert b"THE-LARGE-MARK" in (tmp_path / BODIES_FILENAME).read_bytes()
        assert b"THE-LARGE-MARK" not in (tmp_path / DB_FILENAME).read_bytes()
        assert await store.stored_bytes() == len(body) + len(b"small") + 2 * ENVELOPE_OVERHEAD
        assert [e.body for e in await store.queued("bob", 0, 10)] == [body, b"small"]
        await store.delete_envelopes("bob", [env.envelope_id])
        await store.checkpoint()
        assert await store.stored_bytes() == len(b"small") + ENVELOPE_OVERHEAD
        for name in (DB_FILENAME, BODIES_FILENAME):
            for suffix in ("", "-wal"):
                path = tmp_path / (name + suffix)
                assert not path.exists() or b"THE-LARGE-MARK" not in path.read_bytes(), path
    finally:
        await store.close()


async def test_a_crash_between_the_two_files_leaves_no_half_envelope(tmp_path: Path) -> None:
    """The two files commit one after the other: a row whose body did not commit (its
    SEND was never answered) and a body whose row was deleted (its ACK was carried out)
    are both gone at the next start, and the budget counts what is left."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        kept = await store.store_envelopes([("bob", b"\x01" * LARGE_BODY)], 0, 10)
        lost = await store.store_envelopes([("bob", b"\x02" * LARGE_BODY)], 0, 10)
        orphan = await store.store_envelopes([("bob", b"\x03" * LARGE_BODY)], 0, 10)
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / DB_FILENAME)
    db.execute("ATTACH DATABASE ? AS bodies", (str(tmp_path / BODIES_FILENAME),))
    (lost_id,) = db.execute("SELECT id FROM envelopes WHERE envelope_id=?",
                            (lost[0].envelope_id,)).fetchone()
    db.execute("DELETE FROM bodies.envelope_bodies WHERE id=?", (lost_id,))
    db.execute("DELETE FROM envelopes WHERE envelope_id=?", (orphan[0].envelope_id,))
    db.commit()
    db.execute("INSERT INTO bodies.envelope_bodies (id, body) VALUES (7, x'00')")
    db.commit()
    db.close()
    store = await SqliteStorage.open(tmp_path)
    try:
        assert [e.envelope_id for e in await store.queued("bob", 0, 10)] == \
            [kept[0].envelope_id]
        assert await store.stored_bytes() == LARGE_BODY + ENVELOPE_OVERHEAD
        count = store.db.execute("SELECT COUNT(*) FROM bodies.envelope_bodies").fetchone()
        assert count == (1,)
    finally:
        await store.close()


def test_the_granularity_is_five_minutes_but_never_a_large_part_of_the_ttl() -> None:
    assert received_at_granularity(30 * 24 * 3600) == 300 == RECEIVED_AT_GRANULARITY
    assert received_at_granularity(1200) == 300
    assert received_at_granularity(600) == 150
    assert received_at_granularity(2) == 1
    assert coarse_time(1_700_000_299.9) == 1_700_000_100
    assert coarse_time(1_700_000_299, 1) == 1_700_000_299


# ---- the relay: order through restarts and refills ----------------------------------


async def test_queue_order_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    async with running_relay(data) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        for n in range(4):
            await alice.send_text("bob", f"before {n}")
        await wait_for(lambda: alice.store.outbox() == [])
        await shut(alice)
        bob.close()
        config = replace(relay.config, port=relay.port)  # the same address again
    async with serve.running_relay(config):
        alice = Client.open(tmp_path / "alice", PASSPHRASE)
        await online(alice)
        for n in range(3):
            await alice.send_text("bob", f"after {n}")
        await wait_for(lambda: alice.store.outbox() == [])
        bob = Client.open(tmp_path / "bob", PASSPHRASE)
        await online(bob)
        assert received(bob, "alice") == [f"before {n}" for n in range(4)] + [
            f"after {n}" for n in range(3)]
        await shut(alice, bob)


async def test_a_queue_that_empties_and_refills_reaches_the_open_connection(
        tmp_path: Path) -> None:
    """bob stays logged in on one connection while his queue empties (ACK) and fills
    again: every new envelope is pushed to that connection, none taken for one it
    already delivered."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        for n in range(6):
            await alice.send_text("bob", f"turn {n}")
            await wait_for(lambda: received(bob, "alice")[-1:] == [f"turn {n}"])  # noqa: B023
            await wait_for(lambda: _rows(tmp_path / "relay") == {})  # acknowledged
        assert received(bob, "alice") == [f"turn {n}" for n in range(6)]
        await shut(alice, bob)


# ---- the migration from schema 3 ----------------------------------------------------

SCHEMA_V3 = """
CREATE TABLE accounts (username TEXT PRIMARY KEY, identity_key BLOB NOT NULL UNIQUE)
    WITHOUT ROWID;
CREATE TABLE signed_prekeys (username TEXT PRIMARY KEY REFERENCES accounts(username),
    signed_prekey BLOB NOT NULL, last_resort_kem_prekey BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE one_time_prekeys (username TEXT NOT NULL REFERENCES accounts(username),
    key_id INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (username, key_id))
    WITHOUT ROWID;
CREATE TABLE kem_one_time_prekeys (username TEXT NOT NULL REFERENCES accounts(username),
    key_id INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (username, key_id))
    WITHOUT ROWID;
CREATE TABLE envelopes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    envelope_id  BLOB NOT NULL UNIQUE,
    recipient    TEXT NOT NULL REFERENCES accounts(username),
    body         BLOB NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE INDEX envelopes_by_recipient ON envelopes (recipient, seq);
CREATE INDEX envelopes_by_age ON envelopes (received_at);
CREATE TABLE delivery_capabilities (username TEXT PRIMARY KEY REFERENCES accounts(username),
    capability_hash BLOB NOT NULL, allow_anyone INTEGER NOT NULL, set_at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE kt_updates (idx INTEGER PRIMARY KEY, username TEXT NOT NULL,
    value BLOB NOT NULL, opening BLOB NOT NULL);
CREATE TABLE envelope_usage (id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL, count INTEGER NOT NULL);
INSERT INTO envelope_usage VALUES (0, 0, 0);
CREATE TRIGGER envelope_usage_in AFTER INSERT ON envelopes BEGIN
    UPDATE envelope_usage SET bytes = bytes + length(NEW.body) + 64,
                              count = count + 1 WHERE id = 0;
END;
CREATE TRIGGER envelope_usage_out AFTER DELETE ON envelopes BEGIN
    UPDATE envelope_usage SET bytes = bytes - length(OLD.body) - 64,
                              count = count - 1 WHERE id = 0;
END;
PRAGMA user_version=3;
"""
"""Schema 3 as the relay created it (server/sqlite_store.py before schema 4)."""


def _v3_database(data_dir: Path, identities: dict[str, IdentityKeyPair],
                 queue: list[tuple[str, bytes]], now: int) -> list[bytes]:
    """A schema 3 database holding these accounts and, interleaved across recipients
    and with exact times a second apart, these envelopes; returns their ids."""
    data_dir.mkdir(mode=0o700)
    db = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_V3)
    for name, identity in identities.items():
        db.execute("INSERT INTO accounts VALUES (?, ?)", (name, identity.public))
    ids = []
    db.execute("INSERT INTO envelopes (envelope_id, recipient, body, received_at)"
               " VALUES (?, ?, ?, ?)", (b"\xee" * 16, "bob", b"acked", now - 100))
    for n, (recipient, body) in enumerate(queue):
        envelope_id = bytes([n]) * 16
        db.execute("INSERT INTO envelopes (envelope_id, recipient, body, received_at)"
                   " VALUES (?, ?, ?, ?)", (envelope_id, recipient, body, now - 60 + n))
        ids.append(envelope_id)
    db.execute("DELETE FROM envelopes WHERE envelope_id=?", (b"\xee" * 16,))
    assert db.execute("SELECT seq FROM sqlite_sequence").fetchone()[0] == len(queue) + 1
    db.close()
    return ids


async def test_a_v3_database_is_migrated_with_every_queue_in_order(tmp_path: Path) -> None:
    """Every queued envelope survives the migration, in its recipient's order, with
    its id and body; the counters go (sqlite_sequence, the AUTOINCREMENT seq), times
    become coarse, the usage totals stay; and a real relay then delivers each queue
    in order, the new envelopes after the migrated ones."""
    data = tmp_path / "relay"
    identities = {n: IdentityKeyPair.generate() for n in ("alice", "bob", "carol")}
    queue = [(("bob", "carol", "alice")[n % 3], f"body {n}".encode() * 40)
             for n in range(30)]
    ids = _v3_database(data, identities, queue, int(time.time()))
    expected = {name: [eid for eid, (r, _) in zip(ids, queue, strict=True) if r == name]
                for name in identities}

    store = await SqliteStorage.open(data)
    try:
        db = store.db
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        assert _sqlite_tables(data) == []
        columns = [r[1] for r in db.execute("PRAGMA table_info(envelopes)")]
        assert columns == ["id", "envelope_id", "recipient", "seq", "body", "received_at",
                           "shared", "body_apart"]
        assert db.execute("SELECT bytes, count FROM envelope_usage").fetchone() == (
            sum(len(b) + 64 for _, b in queue), 30)
        for name, want in expected.items():
            got = await store.queued(name, 0, 100)
            assert [e.envelope_id for e in got] == want
            assert [e.body for e in got] == [b for r, b in queue if r == name]
            assert all(e.received_at % RECEIVED_AT_GRANULARITY == 0 for e in got)
        rows = _rows(data)
        assert sorted(r[0] for r in rows.values()) != list(range(2, 32))
        assert all(abs(a[0] - b[0]) > FAR for a in rows.values() for b in rows.values()
                   if a is not b)
        assert all(abs(a[2] - b[2]) > FAR for a in rows.values() for b in rows.values()
                   if a[1] != b[1])
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # the triggers are back: a new envelope counts, and goes after the old ones
        await store.store_envelopes([("bob", b"new")], coarse_time(time.time()), 100)
        assert db.execute("SELECT count FROM envelope_usage").fetchone() == (31,)
    finally:
        await store.close()

    async with running_relay(data) as relay:
        conn = await RelayConnection.open(relay.url)
        try:
            await conn.login("bob", identities["bob"])
            delivered: list[Deliver] = []
            while not isinstance(frame := await conn.next_push(10), QueueDone):
                assert isinstance(frame, Deliver)
                delivered.append(frame)
            assert [d.envelope_id for d in delivered][:-1] == expected["bob"]
            assert delivered[-1].body == b"new"
            assert all(d.received_at % RECEIVED_AT_GRANULARITY == 0 for d in delivered)
            await conn.ack([d.envelope_id for d in delivered])
        finally:
            await conn.close()
    await asyncio.sleep(0)
