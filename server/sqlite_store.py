"""The embedded default storage: SQLite in WAL mode, secure_delete on.

Rows that link nothing (docs/DATA.md, "Table envelopes"): an envelope's row id is
random (63 bits; no AUTOINCREMENT, so no sqlite_sequence and no all-time counter), and
its `seq` orders its recipient's queue only: each recipient's seqs start at a random
point and go up by a random step, from a per-recipient number held in memory
(initialised from the recipient's largest stored seq on first use), so no stored
number ties an envelope to another recipient's, as a message to the receipt it
triggers.

One connection, so every statement is serialised. With `synchronous=NORMAL` (the
default: WAL commits survive a killed process without an fsync each) it runs on the
event loop's own thread, which saves two thread hand-offs per statement; with
`synchronous=FULL` every commit waits for an fsync, so it runs in one worker thread.
Writes are group-committed: while one transaction commits, the writes that
arrive queue up and then commit together in the next one, and each caller is
answered only after the COMMIT that holds its write. That keeps "acknowledged means
durable" while sharing commits between concurrent senders. One callback per group
runs the transaction and answers its callers (a task only with `synchronous=FULL`,
whose commit waits on the worker thread).

Each write in a group is all or none without a savepoint each: a write that is
refused (StorageError, IntegrityError) before it changed a row (the connection's
`total_changes` says) is simply left out; one refused after changing rows makes the
whole group roll back and run again, each write in its own savepoint (`_commit_each`),
which is rare (a SEND whose second recipient does not exist, say).

With `synchronous=NORMAL` a commit never waits for an fsync; only a checkpoint
(copying the WAL into the database) does. SQLite would run one inside a commit every
1000 pages, on the event loop's thread; here `Checkpointer` runs them instead, on a
thread and connection of its own (PASSIVE checkpoints, which never block the writer),
so no fsync stalls the loop.

Large bodies (LARGE_BODY bytes and more) are stored out of line, in a second database
file (`relay-bodies.sqlite3`, attached as `bodies`) whose pages are 64 KiB: a 64 KiB
body is then two page writes instead of seventeen, and secure_delete's overwrite as
few. The envelope's row keeps an empty `body` and the body's size (`body_apart`).
SQLite commits the two files one after the other in WAL mode, so a crash between
can leave a row without its body (its SEND was never answered) or a body without
its row (its ACK was carried out): `_reconcile` deletes both at open.

Per recipient, the number of queued envelopes is kept in memory (`_queued`, read
from the table once per recipient and run), so QUEUE_FULL costs no COUNT(*) per
store; a group's changes to it count only once the group commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from protocol.wire.prekeys import KemKind
from server.storage import (
    ENVELOPE_OVERHEAD,
    RECEIVED_AT_GRANULARITY,
    BundleParts,
    CommitConflict,
    DirectoryOutOfStep,
    DirectoryUpdate,
    Done,
    IdentityInUse,
    NoKeyPackages,
    NoPrekeys,
    QueueFull,
    Storage,
    StorageError,
    StorageFull,
    StoredEnvelope,
    TooManyPrekeys,
    UnknownUser,
    UsernameTaken,
    coarse_time,
)

T = TypeVar("T")
SCHEMA_VERSION = 6
"""4: envelopes with a random row id and a per-recipient seq, received_at coarse (a v3
database, whose seq was AUTOINCREMENT, is migrated at open: _migrate_envelopes).
5: groups (PROTOCOL.md 21): a group message's body stored once in group_bodies and
referenced by its recipients' envelopes (`shared`), group_epochs, key_packages (a v4
database gets the column and the tables at open).
6: large bodies out of line: envelopes.body_apart and relay-bodies.sqlite3 (a v5
database gets the column at open)."""
DB_FILENAME = "relay.sqlite3"
BODIES_FILENAME = "relay-bodies.sqlite3"
"""The out-of-line bodies' database, attached as `bodies` (module docstring)."""
LARGE_BODY = 16 * 1024
"""Envelope bodies of this many bytes and more are stored out of line."""
BODIES_PAGE_SIZE = 65536
LOCK_FILENAME = "relay.lock"


SEQ_START = 1 << 61
"""A recipient whose queue is empty when its first envelope of a run is stored starts
at a random seq below this."""
SEQ_STEP = 1 << 20
"""Each next seq of a recipient is 1 to SEQ_STEP above its last one, at random: the
differences between stored seqs do not count the envelopes that came and went in
between. (2**63 / SEQ_STEP leaves room for 2**42 envelopes per recipient per run.)"""


class DataDirInUse(RuntimeError):
    """Another process (a running relay, say) has the data directory open."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS accounts (
    username      TEXT PRIMARY KEY,
    identity_key  BLOB NOT NULL UNIQUE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signed_prekeys (
    username                TEXT PRIMARY KEY REFERENCES accounts(username),
    signed_prekey           BLOB NOT NULL,
    last_resort_kem_prekey  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    INTEGER NOT NULL,
    record    BLOB NOT NULL,
    PRIMARY KEY (username, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kem_one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    INTEGER NOT NULL,
    record    BLOB NOT NULL,
    PRIMARY KEY (username, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS envelopes (
    id           INTEGER PRIMARY KEY,
    envelope_id  BLOB NOT NULL UNIQUE,
    recipient    TEXT NOT NULL REFERENCES accounts(username),
    seq          INTEGER NOT NULL,
    body         BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    shared       INTEGER REFERENCES group_bodies(id),
    body_apart   INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_by_recipient ON envelopes (recipient, seq);
CREATE INDEX IF NOT EXISTS envelopes_by_age ON envelopes (received_at);
CREATE TABLE IF NOT EXISTS delivery_capabilities (
    username         TEXT PRIMARY KEY REFERENCES accounts(username),
    capability_hash  BLOB NOT NULL,
    allow_anyone     INTEGER NOT NULL,
    set_at           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kt_updates (
    idx       INTEGER PRIMARY KEY,
    username  TEXT NOT NULL,
    value     BLOB NOT NULL,
    opening   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS group_bodies (
    id    INTEGER PRIMARY KEY,
    body  BLOB NOT NULL,
    refs  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS group_epochs (
    group_hash  BLOB PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_epochs_by_age ON group_epochs (at);
CREATE TABLE IF NOT EXISTS key_packages (
    username     TEXT NOT NULL REFERENCES accounts(username),
    id           INTEGER NOT NULL,
    body         BLOB NOT NULL,
    last_resort  INTEGER NOT NULL,
    PRIMARY KEY (username, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS envelope_usage (
    id     INTEGER PRIMARY KEY CHECK (id = 0),
    bytes  INTEGER NOT NULL,
    count  INTEGER NOT NULL
);
INSERT OR IGNORE INTO envelope_usage
    SELECT 0, COALESCE(SUM(length(body) + COALESCE(body_apart, 0)), 0)
              + {ENVELOPE_OVERHEAD} * COUNT(*), COUNT(*)
    FROM envelopes;
CREATE TRIGGER IF NOT EXISTS envelope_usage_in AFTER INSERT ON envelopes BEGIN
    UPDATE envelope_usage SET bytes = bytes + length(NEW.body)
                                      + COALESCE(NEW.body_apart, 0) + {ENVELOPE_OVERHEAD},
                              count = count + 1 WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS envelope_usage_out AFTER DELETE ON envelopes BEGIN
    UPDATE envelope_usage SET bytes = bytes - length(OLD.body)
                                      - COALESCE(OLD.body_apart, 0) - {ENVELOPE_OVERHEAD},
                              count = count - 1 WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS group_body_in AFTER INSERT ON group_bodies BEGIN
    UPDATE envelope_usage SET bytes = bytes + length(NEW.body) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS group_body_out AFTER DELETE ON group_bodies BEGIN
    UPDATE envelope_usage SET bytes = bytes - length(OLD.body) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS group_body_release AFTER DELETE ON envelopes
WHEN OLD.shared IS NOT NULL BEGIN
    UPDATE group_bodies SET refs = refs - 1 WHERE id = OLD.shared;
    DELETE FROM group_bodies WHERE id = OLD.shared AND refs <= 0;
END;
"""
"""The envelope_usage row keeps the global disk budget's count (docs/PROTOCOL.md 16.7,
STORAGE_FULL) exact across restarts without summing the table on every SEND; the
triggers keep it right whatever deletes envelopes (ACK, expiry).

`envelopes.id` is the table's rowid, set at random on every insert: a rowid SQLite
picks itself is the largest one plus 1, a counter across all recipients."""

BODIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS bodies.envelope_bodies (
    id    INTEGER PRIMARY KEY,
    body  BLOB NOT NULL
);
"""
"""The out-of-line bodies: `id` is the envelope row's (random) id."""

ENVELOPES_V4 = """
CREATE TABLE envelopes_v4 (
    id           INTEGER PRIMARY KEY,
    envelope_id  BLOB NOT NULL UNIQUE,
    recipient    TEXT NOT NULL REFERENCES accounts(username),
    seq          INTEGER NOT NULL,
    body         BLOB NOT NULL,
    received_at  INTEGER NOT NULL
)"""
"""The v4 envelopes table under a temporary name, for the migration from v3."""

Op = Callable[[sqlite3.Connection], Any]


class SqliteStorage(Storage):
    def __init__(self, path: Path, synchronous_full: bool = False) -> None:
        self.path = path
        self.synchronous_full = synchronous_full
        self.inline = not synchronous_full
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="blindrelay-sqlite")
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None
        self._pending: list[tuple[Op, Done[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_due = False
        self._last_seq: dict[str, int] = {}
        """Per recipient, the seq its last envelope got in this run (module docstring);
        dropped when the account is deleted."""
        self._queued: dict[str, int] = {}
        """Per recipient, its queued envelopes as of the last commit (only recipients
        with some: read from the table on first use)."""
        self._staged: dict[str, int] = {}
        """The counts the group being written changed, kept when it commits."""
        self._staged_reset = False
        """The group deleted envelopes of recipients it did not count (expiry): the
        committed counts are dropped when it commits, and read again."""
        self.commits = 0  # transactions committed, for the benchmark's report
        self._checkpointer: Checkpointer | None = None

    @classmethod
    async def open(cls, data_dir: Path, synchronous_full: bool = False) -> SqliteStorage:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(data_dir / DB_FILENAME, synchronous_full)
        store._take_lock()
        try:
            await store._run(store._open_sync)
        except BaseException:
            store._release_lock()
            raise
        return store

    def _take_lock(self) -> None:
        """One process at a time on a data directory (a relay, or the operator's
        `blindrelay admin` while the relay is stopped): an advisory lock on
        `relay.lock`, released when the storage closes or the process ends."""
        fd = os.open(self.path.parent / LOCK_FILENAME, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(f"{self.path.parent} is in use by another process (is the "
                               "relay running? stop it first)") from None
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _open_sync(self) -> None:
        # the database, WAL and shared-memory files are 0600 whatever the umask, and
        # the directory 0700 (docs/DATA.md)
        self.path.parent.chmod(0o700)
        bodies = self.path.parent / BODIES_FILENAME
        fresh_bodies = not bodies.exists()
        for path in (self.path, bodies):
            for suffix in ("", "-wal", "-shm"):
                name = f"{path}{suffix}"
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o600))
                os.chmod(name, 0o600)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("ATTACH DATABASE ? AS bodies", (str(bodies),))
        if fresh_bodies:  # before its first table: the page size is set for good then
            db.execute(f"PRAGMA bodies.page_size={BODIES_PAGE_SIZE}")
        sync = 'FULL' if self.synchronous_full else 'NORMAL'
        for schema in ("main", "bodies"):
            db.execute(f"PRAGMA {schema}.journal_mode=WAL")
            db.execute(f"PRAGMA {schema}.synchronous={sync}")
            db.execute(f"PRAGMA {schema}.secure_delete=ON")
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(f"database schema {version} is newer than this relay knows")
        migrated = _migrate_envelopes(db)
        columns = [r[1] for r in db.execute("PRAGMA table_info(envelopes)")]
        if columns and "shared" not in columns:  # v4: the groups column (schema 5)
            db.execute("ALTER TABLE envelopes ADD COLUMN shared INTEGER"
                       " REFERENCES group_bodies(id)")
        if columns and "body_apart" not in columns:  # v5: bodies out of line (schema 6)
            db.execute("ALTER TABLE envelopes ADD COLUMN body_apart INTEGER")
            # the usage triggers count body_apart from now on
            db.execute("DROP TRIGGER IF EXISTS envelope_usage_in")
            db.execute("DROP TRIGGER IF EXISTS envelope_usage_out")
        db.executescript(SCHEMA + BODIES_SCHEMA)
        _reconcile(db)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if migrated:
            # rewrites the file: drops the now empty sqlite_sequence (SQLite keeps it
            # until then) and every free page the old layout left, then empties the WAL
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        os.chmod(self.path, 0o600)
        os.chmod(bodies, 0o600)
        if not self.synchronous_full:
            db.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's job
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._checkpointer = Checkpointer(self.path, bodies)
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("storage is closed")
        return self._db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda: fn(self.db))

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Joins the next group commit; returns once it has committed. A caller that
        is cancelled meanwhile only stops waiting: its write commits all the same."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._write_then(op, functools.partial(_resolve, future))
        return await future

    def _write_then(self, op: Callable[[sqlite3.Connection], T], done: Done[T]) -> None:
        """Joins the next group commit; `done` is told its outcome once it committed."""
        self._pending.append((op, done))
        if self.inline:
            if not self._flush_due:  # one callback per group, after this loop step
                self._flush_due = True
                asyncio.get_running_loop().call_soon(self._flush_inline)
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _flush_inline(self) -> None:
        """The group that gathered during one step of the loop, committed on the loop's
        thread (`synchronous=NORMAL`: no fsync to wait for)."""
        self._flush_due = False
        batch, self._pending = self._pending, []
        if batch:
            self._answer(batch, self._commit_group, [op for op, _ in batch])

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._run(self._commit_group, [op for op, _ in batch])
                except Exception as exc:  # the COMMIT itself failed: nothing was stored
                    _fail(batch, exc)
                    continue
                _settle(batch, results)
        finally:
            self._flusher = None

    def _answer(self, batch: list[tuple[Op, Done[Any]]],
                commit: Callable[[list[Op]], list[tuple[bool, Any]]], ops: list[Op]) -> None:
        try:
            results = commit(ops)
        except Exception as exc:  # the COMMIT itself failed: nothing was stored
            _fail(batch, exc)
            return
        _settle(batch, results)

    def _commit_group(self, ops: list[Op]) -> list[tuple[bool, Any]]:
        """One transaction for every write of the group; a write refused before it
        changed anything is left out of it. A write refused after changing rows: the
        group runs again, each write in a savepoint (`_commit_each`)."""
        db = self.db
        out: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                before = db.total_changes
                try:
                    value = op(db)
                except (StorageError, sqlite3.IntegrityError) as exc:
                    if db.total_changes != before:
                        raise _PartlyWritten from None
                    out.append((False, exc))
                    continue
                out.append((True, value))
            db.execute("COMMIT")
        except _PartlyWritten:
            self._rollback()
            return self._commit_each(ops)
        except BaseException:
            self._rollback()
            raise
        self._committed()
        return out

    def _commit_each(self, ops: list[Op]) -> list[tuple[bool, Any]]:
        """The group again, each write in its own savepoint, so a refused one leaves
        nothing behind and the others still commit together."""
        db = self.db
        out: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                db.execute("SAVEPOINT op")
                staged, reset = dict(self._staged), self._staged_reset
                try:
                    value = op(db)
                except (StorageError, sqlite3.IntegrityError) as exc:
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    self._staged, self._staged_reset = staged, reset
                    out.append((False, exc))
                    continue
                db.execute("RELEASE op")
                out.append((True, value))
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._committed()
        return out

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._staged, self._staged_reset = {}, False

    def _committed(self) -> None:
        """The group's queue counts count from now on (zeros are read again if needed)."""
        if self._staged_reset:
            self._queued = {}
        for recipient, count in self._staged.items():
            if count:
                self._queued[recipient] = count
            else:
                self._queued.pop(recipient, None)
        self._staged, self._staged_reset = {}, False
        self.commits += 1
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def _queue_count(self, db: sqlite3.Connection, recipient: str) -> int:
        """Envelopes queued for `recipient`, as the group being written leaves them."""
        count = self._staged.get(recipient)
        if count is None:
            count = None if self._staged_reset else self._queued.get(recipient)
            if count is None:
                count = int(db.execute("SELECT COUNT(*) FROM envelopes WHERE recipient=?",
                                       (recipient,)).fetchone()[0])
            self._staged[recipient] = count
        return count

    # -- accounts

    async def register(self, username: str, identity: bytes,
                       update: DirectoryUpdate | None = None) -> None:
        def op(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM accounts WHERE username=?", (username,)).fetchone():
                raise UsernameTaken(username)
            if db.execute("SELECT 1 FROM accounts WHERE identity_key=?", (identity,)).fetchone():
                raise IdentityInUse(username)
            db.execute("INSERT INTO accounts (username, identity_key) VALUES (?, ?)",
                       (username, identity))
            if update is not None:
                _append_update(db, update)

        await self._write(op)

    async def identity(self, username: str) -> bytes | None:
        def op(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT identity_key FROM accounts WHERE username=?",
                             (username,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(op)

    async def delete_account(self, username: str,
                             update: DirectoryUpdate | None = None) -> int:
        def op(db: sqlite3.Connection) -> tuple[int, int | None]:
            if not db.execute("SELECT 1 FROM accounts WHERE username=?",
                              (username,)).fetchone():
                raise UnknownUser(username)
            db.execute("DELETE FROM bodies.envelope_bodies WHERE id IN (SELECT id FROM"
                       " envelopes WHERE recipient=? AND body_apart IS NOT NULL)", (username,))
            count = db.execute("DELETE FROM envelopes WHERE recipient=?",
                               (username,)).rowcount
            self._staged[username] = 0
            for table in ("one_time_prekeys", "kem_one_time_prekeys", "signed_prekeys",
                          "delivery_capabilities", "key_packages", "accounts"):
                db.execute(f"DELETE FROM {table} WHERE username=?", (username,))
            if update is not None:
                _append_update(db, update)
            return int(count), self._last_seq.get(username)

        count, last = await self._write(op)

        def forget() -> None:
            # only once committed (a deletion rolled back keeps the account and its
            # connections, which must keep seeing rising seqs), and only if no envelope
            # for the name registered again was stored since: the same thread as the
            # stores, so the check and the pop are one step to them
            if self._last_seq.get(username) == last:
                self._last_seq.pop(username, None)

        await self._run(forget)
        return count

    async def set_capability(self, username: str, capability_hash: bytes,
                             allow_anyone: bool, set_at: int) -> None:
        def op(db: sqlite3.Connection) -> None:
            if not db.execute("SELECT 1 FROM accounts WHERE username=?",
                              (username,)).fetchone():
                raise UnknownUser(username)
            db.execute("INSERT OR REPLACE INTO delivery_capabilities (username, "
                       "capability_hash, allow_anyone, set_at) VALUES (?, ?, ?, ?)",
                       (username, capability_hash, int(allow_anyone), set_at))

        await self._write(op)

    async def capability(self, username: str) -> tuple[bytes, bool] | None:
        def op(db: sqlite3.Connection) -> tuple[bytes, bool] | None:
            row = db.execute("SELECT capability_hash, allow_anyone FROM "
                             "delivery_capabilities WHERE username=?", (username,)).fetchone()
            return None if row is None else (bytes(row[0]), bool(row[1]))

        return await self._read(op)

    async def accounts(self) -> list[tuple[str, bytes]]:
        def op(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            return [(name, bytes(key)) for name, key in db.execute(
                "SELECT username, identity_key FROM accounts ORDER BY username")]

        return await self._read(op)

    # -- the key directory (PROTOCOL.md 19.10)

    async def directory_updates(self) -> list[DirectoryUpdate]:
        def op(db: sqlite3.Connection) -> list[DirectoryUpdate]:
            return [DirectoryUpdate(idx, name, bytes(value), bytes(opening))
                    for idx, name, value, opening in db.execute(
                        "SELECT idx, username, value, opening FROM kt_updates ORDER BY idx")]

        return await self._read(op)

    async def directory_updates_since(self, index: int) -> list[DirectoryUpdate]:
        def op(db: sqlite3.Connection) -> list[DirectoryUpdate]:
            return [DirectoryUpdate(idx, name, bytes(value), bytes(opening))
                    for idx, name, value, opening in db.execute(
                        "SELECT idx, username, value, opening FROM kt_updates WHERE idx>=?"
                        " ORDER BY idx", (index,))]

        return await self._read(op)

    async def append_directory_updates(self, updates: list[DirectoryUpdate]) -> None:
        def op(db: sqlite3.Connection) -> None:
            for update in updates:
                _append_update(db, update)

        await self._write(op)

    # -- prekeys

    async def set_signed_prekeys(self, username: str, signed_prekey: bytes,
                                 last_resort_kem: bytes) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO signed_prekeys (username, signed_prekey, last_resort_kem_prekey)"
                " VALUES (?, ?, ?) ON CONFLICT (username) DO UPDATE SET"
                " signed_prekey=excluded.signed_prekey,"
                " last_resort_kem_prekey=excluded.last_resort_kem_prekey",
                (username, signed_prekey, last_resort_kem),
            )

        await self._write(op)

    async def add_one_time_prekeys(
        self,
        username: str,
        one_time: list[tuple[int, bytes]],
        kem_one_time: list[tuple[int, bytes]],
        max_each: int,
    ) -> tuple[int, int]:
        def op(db: sqlite3.Connection) -> tuple[int, int]:
            for table, keys in (("one_time_prekeys", one_time),
                                ("kem_one_time_prekeys", kem_one_time)):
                db.executemany(
                    f"INSERT OR REPLACE INTO {table} (username, key_id, record) VALUES (?, ?, ?)",
                    [(username, key_id, record) for key_id, record in keys],
                )
            counts = _counts(db, username)
            if max(counts) > max_each:
                raise TooManyPrekeys(f"at most {max_each} one-time prekeys of each kind")
            return counts

        return await self._write(op)

    async def prekey_counts(self, username: str) -> tuple[int, int]:
        return await self._read(lambda db: _counts(db, username))

    async def take_bundle(self, username: str) -> BundleParts:
        def op(db: sqlite3.Connection) -> BundleParts:
            row = db.execute("SELECT identity_key FROM accounts WHERE username=?",
                             (username,)).fetchone()
            if row is None:
                raise UnknownUser(username)
            identity = bytes(row[0])
            signed = db.execute(
                "SELECT signed_prekey, last_resort_kem_prekey FROM signed_prekeys"
                " WHERE username=?", (username,)).fetchone()
            if signed is None:
                raise NoPrekeys(username)
            opk = _pop(db, "one_time_prekeys", username)
            kem = _pop(db, "kem_one_time_prekeys", username)
            kind = KemKind.ONE_TIME if kem is not None else KemKind.LAST_RESORT
            left = _counts(db, username)
            return BundleParts(identity, bytes(signed[0]), kind,
                               kem if kem is not None else bytes(signed[1]), opk, *left)

        return await self._write(op)

    # -- envelopes

    async def store_envelopes(
        self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
    ) -> list[StoredEnvelope]:
        return await self._write(self._store_op(envelopes, now, max_queue, max_stored_bytes,
                                                max_stored_envelopes))

    def store_envelopes_then(
        self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
        max_stored_bytes: int, max_stored_envelopes: int,
        done: Done[list[StoredEnvelope]],
    ) -> None:
        self._write_then(self._store_op(envelopes, now, max_queue, max_stored_bytes,
                                        max_stored_envelopes), done)

    def _store_op(self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
                  max_stored_bytes: int, max_stored_envelopes: int
                  ) -> Callable[[sqlite3.Connection], list[StoredEnvelope]]:
        def op(db: sqlite3.Connection) -> list[StoredEnvelope]:
            _check_budget(db, sum(len(body) + ENVELOPE_OVERHEAD for _, body in envelopes),
                          len(envelopes), max_stored_bytes, max_stored_envelopes)
            return [self._queue(db, recipient, body, now, max_queue)
                    for recipient, body in envelopes]

        return op

    def _queue(self, db: sqlite3.Connection, recipient: str, body: bytes, now: int,
               max_queue: int, shared: int | None = None) -> StoredEnvelope:
        """One row in `recipient`'s queue: the body itself, or (a group message) a
        reference to its `group_bodies` row and an empty body."""
        queued = self._queue_count(db, recipient)
        if queued >= max_queue:
            raise QueueFull(recipient)
        envelope_id = os.urandom(16)
        seq = self._next_seq(db, recipient)
        row_id = _random_row_id(db, "envelopes")
        apart = len(body) if shared is None and len(body) >= LARGE_BODY else None
        try:
            db.execute(
                "INSERT INTO envelopes (id, envelope_id, recipient, seq, body, received_at,"
                " shared, body_apart) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row_id, envelope_id, recipient, seq,
                 b"" if shared is not None or apart is not None else body, now, shared,
                 apart))
        except sqlite3.IntegrityError:  # the foreign key: no such account
            raise UnknownUser(recipient) from None
        if apart is not None:
            db.execute("INSERT INTO bodies.envelope_bodies (id, body) VALUES (?, ?)",
                       (row_id, body))
        # only now: a name with no account never takes memory here. A write rolled back
        # later leaves a gap, which orders nothing wrongly.
        self._last_seq[recipient] = seq
        self._staged[recipient] = queued + 1
        return StoredEnvelope(seq, envelope_id, recipient, body, now, shared is not None)

    def _next_seq(self, db: sqlite3.Connection, recipient: str) -> int:
        """Above every seq the recipient's envelopes got: the last one given in this
        run, else the largest stored, else a random start; plus a random step."""
        last = self._last_seq.get(recipient)
        if last is None:
            last = db.execute("SELECT MAX(seq) FROM envelopes WHERE recipient=?",
                              (recipient,)).fetchone()[0]
            if last is None:
                last = secrets.randbelow(SEQ_START)
        return int(last) + 1 + secrets.randbelow(SEQ_STEP)

    async def store_group_message(
        self, recipients: list[str], body: bytes, now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
        commit: tuple[bytes, int] | None = None, forget_before: int = 0,
    ) -> list[StoredEnvelope]:
        def op(db: sqlite3.Connection) -> list[StoredEnvelope]:
            _check_budget(db, len(body) + ENVELOPE_OVERHEAD * len(recipients),
                          len(recipients), max_stored_bytes, max_stored_envelopes)
            if commit is not None:
                group_hash, epoch = commit
                db.execute("DELETE FROM group_epochs WHERE at<?", (forget_before,))
                row = db.execute("SELECT epoch FROM group_epochs WHERE group_hash=?",
                                 (group_hash,)).fetchone()
                if row is not None and row[0] >= epoch:
                    raise CommitConflict(epoch, int(row[0]))
                db.execute("INSERT OR REPLACE INTO group_epochs (group_hash, epoch, at)"
                           " VALUES (?, ?, ?)", (group_hash, epoch, now))
            shared = _random_row_id(db, "group_bodies")
            db.execute("INSERT INTO group_bodies (id, body, refs) VALUES (?, ?, ?)",
                       (shared, body, len(recipients)))
            return [self._queue(db, recipient, body, now, max_queue, shared)
                    for recipient in recipients]

        return await self._write(op)

    async def add_key_packages(self, username: str, key_packages: list[bytes],
                               last_resort: bool, max_count: int) -> int:
        def op(db: sqlite3.Connection) -> int:
            if not db.execute("SELECT 1 FROM accounts WHERE username=?",
                              (username,)).fetchone():
                raise UnknownUser(username)
            if last_resort:
                db.execute("DELETE FROM key_packages WHERE username=? AND last_resort=1",
                           (username,))
            else:
                have = db.execute("SELECT COUNT(*) FROM key_packages WHERE username=?"
                                  " AND last_resort=0", (username,)).fetchone()[0]
                if have + len(key_packages) > max_count:
                    raise TooManyPrekeys(f"at most {max_count} KeyPackages")
            for body in key_packages:
                db.execute("INSERT INTO key_packages (username, id, body, last_resort)"
                           " VALUES (?, ?, ?, ?)",
                           (username, secrets.randbits(63), body, int(last_resort)))
            return int(db.execute("SELECT COUNT(*) FROM key_packages WHERE username=?"
                                  " AND last_resort=0", (username,)).fetchone()[0])

        return await self._write(op)

    async def take_key_package(self, username: str) -> bytes:
        def op(db: sqlite3.Connection) -> bytes:
            if not db.execute("SELECT 1 FROM accounts WHERE username=?",
                              (username,)).fetchone():
                raise UnknownUser(username)
            row = db.execute("SELECT id, body FROM key_packages WHERE username=? AND"
                             " last_resort=0 LIMIT 1", (username,)).fetchone()
            if row is not None:
                db.execute("DELETE FROM key_packages WHERE username=? AND id=?",
                           (username, row[0]))
                return bytes(row[1])
            row = db.execute("SELECT body FROM key_packages WHERE username=? AND"
                             " last_resort=1", (username,)).fetchone()
            if row is None:
                raise NoKeyPackages(username)
            return bytes(row[0])

        return await self._write(op)

    async def queued(self, recipient: str, after_seq: int, limit: int,
                     not_before: int = 0) -> list[StoredEnvelope]:
        def op(db: sqlite3.Connection) -> list[StoredEnvelope]:
            rows = db.execute(
                "SELECT e.seq, e.envelope_id, COALESCE(g.body, b.body, e.body), e.received_at,"
                " e.shared IS NOT NULL FROM envelopes e"
                " LEFT JOIN group_bodies g ON g.id = e.shared"
                " LEFT JOIN bodies.envelope_bodies b ON e.body_apart IS NOT NULL"
                " AND b.id = e.id"
                " WHERE e.recipient=? AND e.seq>? AND e.received_at>=? ORDER BY e.seq"
                " LIMIT ?", (recipient, after_seq, not_before, limit)).fetchall()
            return [StoredEnvelope(seq, bytes(eid), recipient, bytes(body), at, bool(group))
                    for seq, eid, body, at, group in rows]

        return await self._read(op)

    async def delete_envelopes(self, recipient: str, envelope_ids: list[bytes]) -> int:
        return await self._write(self._delete_op(recipient, envelope_ids))

    def delete_envelopes_then(self, recipient: str, envelope_ids: list[bytes],
                              done: Done[int]) -> None:
        self._write_then(self._delete_op(recipient, envelope_ids), done)

    def _delete_op(self, recipient: str, envelope_ids: list[bytes]
                   ) -> Callable[[sqlite3.Connection], int]:
        def op(db: sqlite3.Connection) -> int:
            # rowcount, not total_changes: that also counts the usage trigger's updates
            deleted = 0
            for eid in envelope_ids:
                row = db.execute("DELETE FROM envelopes WHERE recipient=? AND envelope_id=?"
                                 " RETURNING id, body_apart", (recipient, eid)).fetchone()
                if row is not None:
                    deleted += 1
                    if row[1] is not None:
                        db.execute("DELETE FROM bodies.envelope_bodies WHERE id=?", (row[0],))
            if deleted:
                known = self._staged.get(recipient)
                if known is None and not self._staged_reset:
                    known = self._queued.get(recipient)
                if known is not None:  # else not counted yet: read when first needed
                    self._staged[recipient] = known - deleted
            return deleted

        return op

    async def expire(self, before: int) -> int:
        def op(db: sqlite3.Connection) -> int:
            # a group's last commit epoch is kept only as long as its commit could
            # still be queued (PROTOCOL.md 21.3)
            db.execute("DELETE FROM group_epochs WHERE at<?", (before,))
            db.execute("DELETE FROM bodies.envelope_bodies WHERE id IN (SELECT id FROM"
                       " envelopes WHERE received_at<? AND body_apart IS NOT NULL)", (before,))
            count = db.execute("DELETE FROM envelopes WHERE received_at<?", (before,)).rowcount
            if count:  # whose queues shrank is not worth a query: count them again
                self._staged, self._staged_reset = {}, True
            return int(count)

        return await self._write(op)

    async def stored_bytes(self) -> int:
        def op(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT bytes FROM envelope_usage").fetchone()[0])

        return await self._read(op)

    async def checkpoint(self) -> None:
        """Copies the WAL into the database and truncates it, so deleted ciphertext
        does not linger in the WAL file."""
        def op(db: sqlite3.Connection) -> None:
            for schema in ("main", "bodies"):
                db.execute(f"PRAGMA {schema}.wal_checkpoint(TRUNCATE)").fetchall()

        await self._read(op)

    async def close(self) -> None:
        while self._flush_due:
            await asyncio.sleep(0)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        while self._flusher is not None:
            await asyncio.sleep(0)
            if self._flusher is not None:
                await asyncio.wait([self._flusher])
        if self._db is not None:
            await self.checkpoint()
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)
        self._release_lock()


WAL_SIZE_LIMIT = 32 * 1024 * 1024
"""Bytes of WAL file kept after the log restarts (journal_size_limit)."""

CHECKPOINT_PAUSE = 0.05
"""Seconds the Checkpointer lets commits gather before it checkpoints after one."""


class Checkpointer:
    """Copies the WAL into the database on its own thread and connection: after a
    commit it is poked, waits CHECKPOINT_PAUSE for more, then runs a PASSIVE checkpoint
    (which takes no write lock, so the relay's writes never wait for it, nor for the
    fsync it ends with). The log restarts from its beginning at the first write after
    a checkpoint that copied all of it, so it stays small."""

    def __init__(self, path: Path, bodies: Path) -> None:
        self.path = path
        self.bodies = bodies
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="blindrelay-checkpoint",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("ATTACH DATABASE ? AS bodies", (str(self.bodies),))
        try:
            while True:
                self._wake.wait()
                if self._stopping:
                    return
                self._wake.clear()  # commits from now on poke it again
                time.sleep(CHECKPOINT_PAUSE)
                # busy (the relay's own TRUNCATE, say): the next one copies it
                for schema in ("main", "bodies"):
                    with contextlib.suppress(sqlite3.Error):
                        db.execute(f"PRAGMA {schema}.wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()


class _PartlyWritten(Exception):
    """A write was refused after it changed rows: the group is run again with
    savepoints (SqliteStorage._commit_group)."""


def _fail(batch: list[tuple[Op, Done[Any]]], exc: BaseException) -> None:
    for _, done in batch:
        done(None, exc)


def _settle(batch: list[tuple[Op, Done[Any]]], results: list[tuple[bool, Any]]) -> None:
    for (_, done), (ok, value) in zip(batch, results, strict=True):
        if ok:
            done(value, None)
        else:
            done(None, value)


def _resolve(future: asyncio.Future[T], value: T | None, error: BaseException | None) -> None:
    """Done for an awaiting caller: its future, unless it stopped waiting (the write
    stands all the same)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]


def _reconcile(db: sqlite3.Connection) -> None:
    """After a crash between the two files' commits (module docstring): a row whose
    body is missing was never acknowledged, a body whose row is missing was
    acknowledged; both go."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM envelopes WHERE body_apart IS NOT NULL AND id NOT IN"
                   " (SELECT id FROM bodies.envelope_bodies)")
        db.execute("DELETE FROM bodies.envelope_bodies WHERE id NOT IN"
                   " (SELECT id FROM envelopes WHERE body_apart IS NOT NULL)")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _random_row_id(db: sqlite3.Connection, table: str) -> int:
    """A random rowid in 1 .. 2**63 - 1 that `table` does not use yet."""
    while True:
        row_id = secrets.randbelow((1 << 63) - 1) + 1
        if db.execute(f"SELECT 1 FROM {table} WHERE id=?", (row_id,)).fetchone() is None:
            return row_id


def _check_budget(db: sqlite3.Connection, adding_bytes: int, adding_count: int,
                  max_stored_bytes: int, max_stored_envelopes: int) -> None:
    """The global disk budget (STORAGE_FULL, docs/PROTOCOL.md 16.7), against
    envelope_usage: raises StorageFull before anything is written."""
    if not (max_stored_bytes or max_stored_envelopes):
        return
    used, count = db.execute("SELECT bytes, count FROM envelope_usage").fetchone()
    if max_stored_bytes and used + adding_bytes > max_stored_bytes:
        raise StorageFull(f"{max_stored_bytes} bytes")
    if max_stored_envelopes and count + adding_count > max_stored_envelopes:
        raise StorageFull(f"{max_stored_envelopes} envelopes")


def _migrate_envelopes(db: sqlite3.Connection) -> bool:
    """From schema 3 (or older): the envelopes table had `seq INTEGER PRIMARY KEY
    AUTOINCREMENT`, an order across every recipient, and exact received_at times.
    Rebuilds it as schema 4 in one transaction: each recipient's envelopes keep their
    order, with fresh per-recipient seqs (random start, random steps), random row ids
    and received_at rounded down to RECEIVED_AT_GRANULARITY; ids, bodies, recipients
    and the usage totals are kept. Returns whether anything was migrated (the caller
    then VACUUMs, which also drops sqlite_sequence). A fresh or v4 database: no-op."""
    columns = [r[1] for r in db.execute("PRAGMA table_info(envelopes)")]
    if not columns or "id" in columns:
        return False
    db.execute("BEGIN IMMEDIATE")
    try:
        # the usage triggers go first, so that neither the copy nor the DROP below
        # touches envelope_usage: the same rows stay, so its totals stay right
        db.execute("DROP TRIGGER IF EXISTS envelope_usage_in")
        db.execute("DROP TRIGGER IF EXISTS envelope_usage_out")
        db.execute("DROP TABLE IF EXISTS envelopes_v4")
        db.execute(ENVELOPES_V4)
        recipients = [r[0] for r in db.execute(
            "SELECT DISTINCT recipient FROM envelopes ORDER BY recipient")]
        for recipient in recipients:
            seq = secrets.randbelow(SEQ_START)
            for envelope_id, body, received_at in db.execute(
                    "SELECT envelope_id, body, received_at FROM envelopes WHERE recipient=?"
                    " ORDER BY seq", (recipient,)).fetchall():
                seq += 1 + secrets.randbelow(SEQ_STEP)
                db.execute(
                    "INSERT INTO envelopes_v4 (id, envelope_id, recipient, seq, body,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (_random_row_id(db, "envelopes_v4"), envelope_id, recipient, seq, body,
                     coarse_time(received_at, RECEIVED_AT_GRANULARITY)))
        db.execute("DROP TABLE envelopes")  # its indexes go with it
        db.execute("ALTER TABLE envelopes_v4 RENAME TO envelopes")
        if db.execute("SELECT 1 FROM sqlite_schema WHERE name='sqlite_sequence'").fetchone():
            db.execute("DELETE FROM sqlite_sequence WHERE name='envelopes'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return True


def _append_update(db: sqlite3.Connection, update: DirectoryUpdate) -> None:
    """Appends one directory update; its index must be the next one (the log has no
    gaps and never rewrites a row)."""
    following = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM kt_updates").fetchone()[0]
    if update.index != following:
        raise DirectoryOutOfStep(f"directory update {update.index} is not the next "
                                 f"one ({following})")
    db.execute("INSERT INTO kt_updates (idx, username, value, opening) VALUES (?, ?, ?, ?)",
               (update.index, update.username, update.value, update.opening))


def _counts(db: sqlite3.Connection, username: str) -> tuple[int, int]:
    one = db.execute("SELECT COUNT(*) FROM one_time_prekeys WHERE username=?",
                     (username,)).fetchone()[0]
    kem = db.execute("SELECT COUNT(*) FROM kem_one_time_prekeys WHERE username=?",
                     (username,)).fetchone()[0]
    return int(one), int(kem)


def _pop(db: sqlite3.Connection, table: str, username: str) -> bytes | None:
    row = db.execute(
        f"DELETE FROM {table} WHERE username=? AND key_id="
        f"(SELECT key_id FROM {table} WHERE username=? ORDER BY key_id LIMIT 1) RETURNING record",
        (username, username)).fetchone()
    return None if row is None else bytes(row[0])
