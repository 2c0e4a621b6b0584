"""PostgreSQL storage (asyncpg), for several relay processes on one database.

The same interface, schema and rows as the embedded SQLite storage
(server/sqlite_store.py, docs/DATA.md), with what sharing needs:

- every operation is one transaction on a pooled connection, committed with
  `synchronous_commit = on` before the call returns ("acknowledged means durable");
  PostgreSQL groups concurrent commits into one WAL flush itself;
- a recipient's seq comes from its `queue_heads` row (PostgreSQL only), bumped by a
  random step in the storing transaction, so it rises across every process that
  stores for the recipient (SQLite keeps it in memory: one process). The row stays
  locked until the commit, which also makes the max_queue count exact; rows are
  locked in name order, so two stores to overlapping recipients cannot deadlock;
- one-time prekeys and KeyPackages are taken with DELETE ... (SELECT ... FOR UPDATE
  SKIP LOCKED) RETURNING: two processes asking at once get different ones, never
  the same one twice;
- a group's commit epoch is an INSERT ... ON CONFLICT DO UPDATE ... WHERE epoch <
  new one: of two processes admitting a commit for the same epoch, one wins;
- kt_updates appends hold a transaction advisory lock, so "is the index the next
  one" is decided against every process's committed appends;
- envelope_usage has 16 rows, one per connection (backend pid mod 16), so storing
  envelopes through different connections does not queue on one row; the budget is
  their sum. A store that would bring the total within a quarter of a budget takes
  an advisory lock first and re-reads, so near the budget stores are serialised and
  it is exact (far from it, concurrent stores cannot reach it);
- schema creation and migration run under a session advisory lock, so two processes
  starting at once on an empty database create it once.

The schema version is kept in the comment on `accounts` (no table of its own).
asyncpg is imported only when this backend is used (`pip install blindrelay[cluster]`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from protocol.wire.prekeys import KemKind
from server.sqlite_store import SCHEMA_VERSION, SEQ_START, SEQ_STEP
from server.storage import (
    ENVELOPE_OVERHEAD,
    BundleParts,
    CommitConflict,
    DirectoryOutOfStep,
    DirectoryUpdate,
    IdentityInUse,
    NoKeyPackages,
    NoPrekeys,
    QueueFull,
    Storage,
    StorageFull,
    StoredEnvelope,
    TooManyPrekeys,
    UnknownUser,
    UsernameTaken,
)

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

INSTALL_HINT = "pip install blindrelay[cluster]"
MIGRATION_LOCK = 0x626C696E6472_01
"""pg_advisory_lock key held while the schema is created or migrated."""
KT_LOCK = 0x626C696E6472_02
"""pg_advisory_xact_lock key held while kt_updates is appended to."""
BUDGET_LOCK = 0x626C696E6472_03
"""pg_advisory_xact_lock key held by a store near the global disk budget."""
USAGE_SHARDS = 16
RELAY_APPLICATION = "blindrelay"
"""The application_name a relay's connections carry (docs/DATA.md)."""
VERSION_COMMENT = "blindrelay schema "
RETRIES = 5
"""Attempts of one operation when PostgreSQL aborts it for a deadlock or a
serialization failure (nothing of it was stored)."""


class PostgresUnavailable(RuntimeError):
    """asyncpg is not installed, or the database cannot be reached or opened."""


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, at, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}{at}{host}"


def import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise PostgresUnavailable("PostgreSQL storage needs the asyncpg package: "
                                  f"{INSTALL_HINT}") from None
    return asyncpg


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS accounts (
    username      TEXT PRIMARY KEY,
    identity_key  BYTEA NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS signed_prekeys (
    username                TEXT PRIMARY KEY REFERENCES accounts(username),
    signed_prekey           BYTEA NOT NULL,
    last_resort_kem_prekey  BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    BIGINT NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (username, key_id)
);
CREATE TABLE IF NOT EXISTS kem_one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    BIGINT NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (username, key_id)
);
CREATE TABLE IF NOT EXISTS group_bodies (
    id    BIGINT PRIMARY KEY,
    body  BYTEA NOT NULL,
    refs  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
    id           BIGINT PRIMARY KEY,
    envelope_id  BYTEA NOT NULL UNIQUE,
    recipient    TEXT NOT NULL REFERENCES accounts(username),
    seq          BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    shared       BIGINT REFERENCES group_bodies(id)
);
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_by_recipient ON envelopes (recipient, seq);
CREATE INDEX IF NOT EXISTS envelopes_by_age ON envelopes (received_at);
CREATE TABLE IF NOT EXISTS queue_heads (
    username  TEXT PRIMARY KEY REFERENCES accounts(username),
    seq       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery_capabilities (
    username         TEXT PRIMARY KEY REFERENCES accounts(username),
    capability_hash  BYTEA NOT NULL,
    allow_anyone     BOOLEAN NOT NULL,
    set_at           BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_updates (
    idx       BIGINT PRIMARY KEY,
    username  TEXT NOT NULL,
    value     BYTEA NOT NULL,
    opening   BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS group_epochs (
    group_hash  BYTEA PRIMARY KEY,
    epoch       BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS group_epochs_by_age ON group_epochs (at);
CREATE TABLE IF NOT EXISTS key_packages (
    username     TEXT NOT NULL REFERENCES accounts(username),
    id           BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    last_resort  BOOLEAN NOT NULL,
    PRIMARY KEY (username, id)
);
CREATE TABLE IF NOT EXISTS envelope_usage (
    id     INTEGER PRIMARY KEY CHECK (id >= 0 AND id < {USAGE_SHARDS}),
    bytes  BIGINT NOT NULL,
    count  BIGINT NOT NULL
);
INSERT INTO envelope_usage (id, bytes, count)
    SELECT s, 0, 0 FROM generate_series(0, {USAGE_SHARDS - 1}) AS s
    ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION blindrelay_envelope_in() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes + octet_length(NEW.body) + {ENVELOPE_OVERHEAD},
                              count = count + 1
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_envelope_out() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes - octet_length(OLD.body) - {ENVELOPE_OVERHEAD},
                              count = count - 1
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    IF OLD.shared IS NOT NULL THEN
        UPDATE group_bodies SET refs = refs - 1 WHERE id = OLD.shared;
        DELETE FROM group_bodies WHERE id = OLD.shared AND refs <= 0;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_group_body_in() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes + octet_length(NEW.body)
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_group_body_out() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes - octet_length(OLD.body)
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS envelope_usage_in ON envelopes;
CREATE TRIGGER envelope_usage_in AFTER INSERT ON envelopes
    FOR EACH ROW EXECUTE FUNCTION blindrelay_envelope_in();
DROP TRIGGER IF EXISTS envelope_usage_out ON envelopes;
CREATE TRIGGER envelope_usage_out AFTER DELETE ON envelopes
    FOR EACH ROW EXECUTE FUNCTION blindrelay_envelope_out();
DROP TRIGGER IF EXISTS group_body_in ON group_bodies;
CREATE TRIGGER group_body_in AFTER INSERT ON group_bodies
    FOR EACH ROW EXECUTE FUNCTION blindrelay_group_body_in();
DROP TRIGGER IF EXISTS group_body_out ON group_bodies;
CREATE TRIGGER group_body_out AFTER DELETE ON group_bodies
    FOR EACH ROW EXECUTE FUNCTION blindrelay_group_body_out();
COMMENT ON TABLE accounts IS '{VERSION_COMMENT}{SCHEMA_VERSION}';
"""
"""The tables of docs/DATA.md in PostgreSQL's types (BYTEA for BLOB, BIGINT for
INTEGER), plus queue_heads; the triggers keep envelope_usage exact whatever deletes
envelopes (ACK, expiry, account deletion) and release a group body with its last
envelope, as in SQLite."""


def _count(status: str) -> int:
    """The row count of a command tag such as 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])


class PgStorage(Storage):
    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.commits = 0  # transactions committed, for the benchmark's report

    @classmethod
    async def open(cls, url: str, min_size: int = 1, max_size: int = 10,
                   application_name: str = "") -> PgStorage:
        """Connects a pool to `url` and creates or migrates the schema (under an
        advisory lock, so processes starting together do it once). Raises
        PostgresUnavailable with one line for the operator."""
        pg = import_asyncpg()
        try:
            pool = await pg.create_pool(
                url, min_size=min_size, max_size=max_size,
                server_settings={"synchronous_commit": "on",
                                 "application_name": application_name or RELAY_APPLICATION})
        except (TimeoutError, OSError, pg.PostgresError, pg.InterfaceError) as exc:
            raise PostgresUnavailable(f"cannot open the PostgreSQL database "
                                      f"{redact_url(url)}: {exc}") from None
        store = cls(pool, url)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                version = await conn.fetchval(
                    "SELECT obj_description(to_regclass('accounts'), 'pg_class')")
                number = 0
                if version and str(version).startswith(VERSION_COMMENT):
                    number = int(str(version)[len(VERSION_COMMENT):])
                if number > SCHEMA_VERSION:
                    raise PostgresUnavailable(
                        f"database schema {number} is newer than this relay knows")
                if number < SCHEMA_VERSION:
                    async with conn.transaction():
                        await conn.execute(SCHEMA)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def _tx(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Runs `op` in one transaction and returns once it is committed; a
        StorageError raised by `op` rolls it back. Retried when PostgreSQL aborts it
        for a deadlock or serialization failure."""
        pg = import_asyncpg()
        for attempt in range(RETRIES):
            async with self.pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        result = await op(conn)
                except (pg.DeadlockDetectedError, pg.SerializationError):
                    if attempt == RETRIES - 1:
                        raise
                    await asyncio.sleep(0.001 * (1 + secrets.randbelow(10)))
                    continue
            self.commits += 1
            return result
        raise AssertionError("unreachable")

    async def _read(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self.pool.acquire() as conn:
            return await op(conn)

    # -- accounts

    async def register(self, username: str, identity: bytes,
                       update: DirectoryUpdate | None = None) -> None:
        pg = import_asyncpg()

        async def op(db: asyncpg.Connection) -> None:
            if update is not None:  # first: the lock orders this against other appends
                await _lock_directory(db)
            if await db.fetchval("SELECT 1 FROM accounts WHERE username=$1", username):
                raise UsernameTaken(username)
            if await db.fetchval("SELECT 1 FROM accounts WHERE identity_key=$1", identity):
                raise IdentityInUse(username)
            try:
                await db.execute("INSERT INTO accounts (username, identity_key)"
                                 " VALUES ($1, $2)", username, identity)
            except pg.UniqueViolationError as exc:  # another process, meanwhile
                if "identity" in (exc.constraint_name or ""):
                    raise IdentityInUse(username) from None
                raise UsernameTaken(username) from None
            if update is not None:
                await _append_update(db, update)

        await self._tx(op)

    async def identity(self, username: str) -> bytes | None:
        async def op(db: asyncpg.Connection) -> bytes | None:
            value = await db.fetchval("SELECT identity_key FROM accounts WHERE username=$1",
                                      username)
            return None if value is None else bytes(value)

        return await self._read(op)

    async def delete_account(self, username: str,
                             update: DirectoryUpdate | None = None) -> int:
        async def op(db: asyncpg.Connection) -> int:
            if update is not None:
                await _lock_directory(db)
            if not await db.fetchval("SELECT 1 FROM accounts WHERE username=$1 FOR UPDATE",
                                     username):
                raise UnknownUser(username)
            count = _count(await db.execute("DELETE FROM envelopes WHERE recipient=$1",
                                            username))
            for table in ("one_time_prekeys", "kem_one_time_prekeys", "signed_prekeys",
                          "delivery_capabilities", "key_packages", "queue_heads",
                          "accounts"):
                await db.execute(f"DELETE FROM {table} WHERE username=$1", username)
            if update is not None:
                await _append_update(db, update)
            return count

        return await self._tx(op)

    async def set_capability(self, username: str, capability_hash: bytes,
                             allow_anyone: bool, set_at: int) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await _require_account(db, username)
            await db.execute(
                "INSERT INTO delivery_capabilities (username, capability_hash, allow_anyone,"
                " set_at) VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO UPDATE SET"
                " capability_hash=excluded.capability_hash,"
                " allow_anyone=excluded.allow_anyone, set_at=excluded.set_at",
                username, capability_hash, allow_anyone, set_at)

        await self._tx(op)

    async def capability(self, username: str) -> tuple[bytes, bool] | None:
        async def op(db: asyncpg.Connection) -> tuple[bytes, bool] | None:
            row = await db.fetchrow("SELECT capability_hash, allow_anyone FROM"
                                    " delivery_capabilities WHERE username=$1", username)
            return None if row is None else (bytes(row[0]), bool(row[1]))

        return await self._read(op)

    async def accounts(self) -> list[tuple[str, bytes]]:
        async def op(db: asyncpg.Connection) -> list[tuple[str, bytes]]:
            rows = await db.fetch("SELECT username, identity_key FROM accounts"
                                  " ORDER BY username COLLATE \"C\"")
            return [(str(r[0]), bytes(r[1])) for r in rows]

        return await self._read(op)

    # -- the key directory (PROTOCOL.md 19.10)

    async def directory_updates(self) -> list[DirectoryUpdate]:
        async def op(db: asyncpg.Connection) -> list[DirectoryUpdate]:
            rows = await db.fetch("SELECT idx, username, value, opening FROM kt_updates"
                                  " ORDER BY idx")
            return [DirectoryUpdate(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3]))
                    for r in rows]

        return await self._read(op)

    async def append_directory_updates(self, updates: list[DirectoryUpdate]) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await _lock_directory(db)
            for update in updates:
                await _append_update(db, update)

        await self._tx(op)

    # -- prekeys

    async def set_signed_prekeys(self, username: str, signed_prekey: bytes,
                                 last_resort_kem: bytes) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await _require_account(db, username)
            await db.execute(
                "INSERT INTO signed_prekeys (username, signed_prekey, last_resort_kem_prekey)"
                " VALUES ($1, $2, $3) ON CONFLICT (username) DO UPDATE SET"
                " signed_prekey=excluded.signed_prekey,"
                " last_resort_kem_prekey=excluded.last_resort_kem_prekey",
                username, signed_prekey, last_resort_kem)

        await self._tx(op)

    async def add_one_time_prekeys(
        self,
        username: str,
        one_time: list[tuple[int, bytes]],
        kem_one_time: list[tuple[int, bytes]],
        max_each: int,
    ) -> tuple[int, int]:
        async def op(db: asyncpg.Connection) -> tuple[int, int]:
            # the account row, locked: two uploads of the same account count in turn
            if not await db.fetchval("SELECT 1 FROM accounts WHERE username=$1"
                                     " FOR NO KEY UPDATE", username):
                raise UnknownUser(username)
            for table, keys in (("one_time_prekeys", one_time),
                                ("kem_one_time_prekeys", kem_one_time)):
                if keys:
                    await db.executemany(
                        f"INSERT INTO {table} (username, key_id, record) VALUES ($1, $2, $3)"
                        " ON CONFLICT (username, key_id) DO UPDATE SET record=excluded.record",
                        [(username, key_id, record) for key_id, record in keys])
            counts = await _counts(db, username)
            if max(counts) > max_each:
                raise TooManyPrekeys(f"at most {max_each} one-time prekeys of each kind")
            return counts

        return await self._tx(op)

    async def prekey_counts(self, username: str) -> tuple[int, int]:
        return await self._read(lambda db: _counts(db, username))

    async def take_bundle(self, username: str) -> BundleParts:
        async def op(db: asyncpg.Connection) -> BundleParts:
            identity = await db.fetchval("SELECT identity_key FROM accounts WHERE username=$1",
                                         username)
            if identity is None:
                raise UnknownUser(username)
            signed = await db.fetchrow(
                "SELECT signed_prekey, last_resort_kem_prekey FROM signed_prekeys"
                " WHERE username=$1", username)
            if signed is None:
                raise NoPrekeys(username)
            opk = await _pop(db, "one_time_prekeys", username)
            kem = await _pop(db, "kem_one_time_prekeys", username)
            kind = KemKind.ONE_TIME if kem is not None else KemKind.LAST_RESORT
            left = await _counts(db, username)
            return BundleParts(bytes(identity), bytes(signed[0]), kind,
                               kem if kem is not None else bytes(signed[1]), opk, *left)

        return await self._tx(op)

    # -- envelopes

    async def store_envelopes(
        self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
    ) -> list[StoredEnvelope]:
        async def op(db: asyncpg.Connection) -> list[StoredEnvelope]:
            await _check_budget(db, sum(len(body) + ENVELOPE_OVERHEAD for _, body in envelopes),
                                len(envelopes), max_stored_bytes, max_stored_envelopes)
            seqs = await _next_seqs(db, [r for r, _ in envelopes], max_queue)
            out = []
            for recipient, body in envelopes:
                seq = seqs[recipient].pop(0)
                out.append(await _insert(db, recipient, seq, body, now, None))
            return out

        return await self._tx(op)

    async def store_group_message(
        self, recipients: list[str], body: bytes, now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
        commit: tuple[bytes, int] | None = None, forget_before: int = 0,
    ) -> list[StoredEnvelope]:
        async def op(db: asyncpg.Connection) -> list[StoredEnvelope]:
            await _check_budget(db, len(body) + ENVELOPE_OVERHEAD * len(recipients),
                                len(recipients), max_stored_bytes, max_stored_envelopes)
            if commit is not None:
                group_hash, epoch = commit
                await db.execute("DELETE FROM group_epochs WHERE at<$1", forget_before)
                admitted = await db.fetchval(
                    "INSERT INTO group_epochs (group_hash, epoch, at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (group_hash) DO UPDATE SET epoch=excluded.epoch,"
                    " at=excluded.at WHERE group_epochs.epoch < excluded.epoch"
                    " RETURNING epoch", group_hash, epoch, now)
                if admitted is None:
                    latest = await db.fetchval(
                        "SELECT epoch FROM group_epochs WHERE group_hash=$1", group_hash)
                    raise CommitConflict(epoch, int(latest))
            seqs = await _next_seqs(db, recipients, max_queue)
            shared = await _insert_random_id(
                db, "INSERT INTO group_bodies (id, body, refs) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO NOTHING", body, len(recipients))
            out = []
            for recipient in recipients:
                seq = seqs[recipient].pop(0)
                out.append(await _insert(db, recipient, seq, body, now, shared))
            return out

        return await self._tx(op)

    async def add_key_packages(self, username: str, key_packages: list[bytes],
                               last_resort: bool, max_count: int) -> int:
        async def op(db: asyncpg.Connection) -> int:
            if not await db.fetchval("SELECT 1 FROM accounts WHERE username=$1"
                                     " FOR NO KEY UPDATE", username):
                raise UnknownUser(username)
            if last_resort:
                await db.execute("DELETE FROM key_packages WHERE username=$1 AND last_resort",
                                 username)
            else:
                have = await db.fetchval("SELECT COUNT(*) FROM key_packages WHERE"
                                         " username=$1 AND NOT last_resort", username)
                if have + len(key_packages) > max_count:
                    raise TooManyPrekeys(f"at most {max_count} KeyPackages")
            for body in key_packages:
                await db.execute("INSERT INTO key_packages (username, id, body, last_resort)"
                                 " VALUES ($1, $2, $3, $4)",
                                 username, secrets.randbits(63), body, last_resort)
            return int(await db.fetchval("SELECT COUNT(*) FROM key_packages WHERE"
                                         " username=$1 AND NOT last_resort", username))

        return await self._tx(op)

    async def take_key_package(self, username: str) -> bytes:
        async def op(db: asyncpg.Connection) -> bytes:
            await _require_account(db, username)
            body = await db.fetchval(
                "DELETE FROM key_packages WHERE username=$1 AND id=(SELECT id FROM"
                " key_packages WHERE username=$1 AND NOT last_resort LIMIT 1"
                " FOR UPDATE SKIP LOCKED) RETURNING body", username)
            if body is not None:
                return bytes(body)
            body = await db.fetchval("SELECT body FROM key_packages WHERE username=$1"
                                     " AND last_resort", username)
            if body is None:
                raise NoKeyPackages(username)
            return bytes(body)

        return await self._tx(op)

    async def queued(self, recipient: str, after_seq: int, limit: int,
                     not_before: int = 0) -> list[StoredEnvelope]:
        async def op(db: asyncpg.Connection) -> list[StoredEnvelope]:
            rows = await db.fetch(
                "SELECT e.seq, e.envelope_id, COALESCE(g.body, e.body), e.received_at,"
                " e.shared IS NOT NULL FROM envelopes e"
                " LEFT JOIN group_bodies g ON g.id = e.shared"
                " WHERE e.recipient=$1 AND e.seq>$2 AND e.received_at>=$3 ORDER BY e.seq"
                " LIMIT $4", recipient, after_seq, not_before, limit)
            return [StoredEnvelope(int(r[0]), bytes(r[1]), recipient, bytes(r[2]), int(r[3]),
                                   bool(r[4])) for r in rows]

        return await self._read(op)

    async def delete_envelopes(self, recipient: str, envelope_ids: list[bytes]) -> int:
        async def op(db: asyncpg.Connection) -> int:
            return _count(await db.execute(
                "DELETE FROM envelopes WHERE recipient=$1 AND envelope_id = ANY($2::bytea[])",
                recipient, envelope_ids))

        return await self._tx(op)

    async def expire(self, before: int) -> int:
        async def op(db: asyncpg.Connection) -> int:
            # a group's last commit epoch is kept only as long as its commit could
            # still be queued (PROTOCOL.md 21.3)
            await db.execute("DELETE FROM group_epochs WHERE at<$1", before)
            return _count(await db.execute("DELETE FROM envelopes WHERE received_at<$1",
                                           before))

        return await self._tx(op)

    async def stored_bytes(self) -> int:
        async def op(db: asyncpg.Connection) -> int:
            return int(await db.fetchval("SELECT COALESCE(SUM(bytes), 0) FROM envelope_usage"))

        return await self._read(op)

    async def relays_connected(self) -> int:
        """Connections of relays (application_name RELAY_APPLICATION) to this database,
        other than the one asking: `blindrelay admin`, which opens its storage under
        another name, refuses while there are any."""
        async def op(db: asyncpg.Connection) -> int:
            return int(await db.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = $1 AND pid <> pg_backend_pid()", RELAY_APPLICATION))

        return await self._read(op)

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints and recycles its WAL on its own
        (docs/DEPLOY.md says how to bound it)."""

    async def close(self) -> None:
        await self.pool.close()


async def _require_account(db: asyncpg.Connection, username: str) -> None:
    if not await db.fetchval("SELECT 1 FROM accounts WHERE username=$1", username):
        raise UnknownUser(username)


async def _lock_directory(db: asyncpg.Connection) -> None:
    await db.execute("SELECT pg_advisory_xact_lock($1)", KT_LOCK)


async def _append_update(db: asyncpg.Connection, update: DirectoryUpdate) -> None:
    """Appends one directory update (the caller holds KT_LOCK); its index must be the
    next one (the log has no gaps and never rewrites a row)."""
    following = await db.fetchval("SELECT COALESCE(MAX(idx) + 1, 0) FROM kt_updates")
    if update.index != following:
        raise DirectoryOutOfStep(f"directory update {update.index} is not the next "
                                 f"one ({following})")
    await db.execute("INSERT INTO kt_updates (idx, username, value, opening)"
                     " VALUES ($1, $2, $3, $4)",
                     update.index, update.username, update.value, update.opening)


async def _counts(db: asyncpg.Connection, username: str) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT COUNT(*) FROM one_time_prekeys WHERE username=$1),"
        " (SELECT COUNT(*) FROM kem_one_time_prekeys WHERE username=$1)", username)
    return int(row[0]), int(row[1])


async def _pop(db: asyncpg.Connection, table: str, username: str) -> bytes | None:
    """Deletes and returns the account's lowest-id key of `table` that no other
    transaction is taking (SKIP LOCKED): each one-time key goes to one bundle."""
    record = await db.fetchval(
        f"DELETE FROM {table} WHERE username=$1 AND key_id=(SELECT key_id FROM {table}"
        " WHERE username=$1 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING record", username)
    return None if record is None else bytes(record)


async def _check_budget(db: asyncpg.Connection, adding_bytes: int, adding_count: int,
                        max_stored_bytes: int, max_stored_envelopes: int) -> None:
    """The global disk budget (STORAGE_FULL, docs/PROTOCOL.md 16.7): raises
    StorageFull before anything is written. Within a quarter of a budget, the check is
    made again under BUDGET_LOCK, held to the commit, so such stores go one at a time
    and see each other's rows."""
    if not (max_stored_bytes or max_stored_envelopes):
        return

    async def over(margin: int) -> bool | None:
        used, count = await db.fetchrow(
            "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(count), 0) FROM envelope_usage")
        if max_stored_bytes and used + adding_bytes > max_stored_bytes - max_stored_bytes // margin:
            return True
        return bool(max_stored_envelopes and count + adding_count
                    > max_stored_envelopes - max_stored_envelopes // margin)

    if not await over(4):
        return
    await db.execute("SELECT pg_advisory_xact_lock($1)", BUDGET_LOCK)
    used, count = await db.fetchrow(
        "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(count), 0) FROM envelope_usage")
    if max_stored_bytes and used + adding_bytes > max_stored_bytes:
        raise StorageFull(f"{max_stored_bytes} bytes")
    if max_stored_envelopes and count + adding_count > max_stored_envelopes:
        raise StorageFull(f"{max_stored_envelopes} envelopes")


async def _next_seqs(db: asyncpg.Connection, recipients: list[str],
                     max_queue: int) -> dict[str, list[int]]:
    """For each recipient (in name order, so concurrent stores lock queue_heads rows
    in the same order), as many new seqs as it appears in `recipients`, each 1 to
    SEQ_STEP above the one before, from its queue_heads row (a random start below
    SEQ_START for a recipient with none); the row stays locked until the commit.
    Raises UnknownUser or QueueFull."""
    wanted: dict[str, int] = {}
    for recipient in recipients:
        wanted[recipient] = wanted.get(recipient, 0) + 1
    pg = import_asyncpg()
    out: dict[str, list[int]] = {}
    for recipient in sorted(wanted):
        steps = [1 + secrets.randbelow(SEQ_STEP) for _ in range(wanted[recipient])]
        try:
            last = await db.fetchval(
                "INSERT INTO queue_heads (username, seq) VALUES ($1, $2)"
                " ON CONFLICT (username) DO UPDATE SET seq = queue_heads.seq + $3"
                " RETURNING seq", recipient, secrets.randbelow(SEQ_START) + sum(steps),
                sum(steps))
        except pg.ForeignKeyViolationError:  # no such account
            raise UnknownUser(recipient) from None
        queued = await db.fetchval("SELECT COUNT(*) FROM envelopes WHERE recipient=$1",
                                   recipient)
        if queued + wanted[recipient] > max_queue:
            raise QueueFull(recipient)
        seq = int(last) - sum(steps)
        seqs = []
        for step in steps:
            seq += step
            seqs.append(seq)
        out[recipient] = seqs
    return out


async def _insert_random_id(db: asyncpg.Connection, sql: str, *args: Any) -> int:
    """Runs an INSERT ... (id, ...) ON CONFLICT (id) DO NOTHING with a random id in
    1 .. 2**63 - 1, drawing again in the unlikely case the id is taken."""
    while True:
        row_id = secrets.randbelow((1 << 63) - 1) + 1
        if _count(await db.execute(sql, row_id, *args)) == 1:
            return row_id


async def _insert(db: asyncpg.Connection, recipient: str, seq: int, body: bytes, now: int,
                  shared: int | None) -> StoredEnvelope:
    """One row in `recipient`'s queue: the body itself, or (a group message) a
    reference to its `group_bodies` row and an empty body."""
    envelope_id = secrets.token_bytes(16)
    try:
        await _insert_random_id(
            db, "INSERT INTO envelopes (id, envelope_id, recipient, seq, body, received_at,"
            " shared) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            envelope_id, recipient, seq, b"" if shared is not None else body, now, shared)
    except import_asyncpg().ForeignKeyViolationError:  # the account went meanwhile
        raise UnknownUser(recipient) from None
    return StoredEnvelope(seq, envelope_id, recipient, body, now, shared is not None)
