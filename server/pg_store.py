"""PostgreSQL storage (asyncpg), for several relay processes on one database.

The same interface, schema and rows as the embedded SQLite storage
(server/sqlite_store.py, docs/DATA.md), with what sharing needs:

- every operation is one transaction on a pooled connection, committed with
  `synchronous_commit = on` before the call returns ("acknowledged means durable");
  PostgreSQL groups concurrent commits into one WAL flush itself. The hot paths are
  one statement each, so one round trip: a store calls the `blindrelay_store`
  function (server/pg_schema.py), an ACK is one DELETE;
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
  their sum. A store that would bring the total within a margin of a budget (a
  quarter of it, at least MARGIN_BYTES / MARGIN_ENVELOPES) takes an exclusive advisory
  lock, which waits for the stores in flight, and re-reads: near the budget stores go
  one at a time and it is exact; far from it they share the lock;
- schema creation and migration run under a session advisory lock, so two processes
  starting at once on an empty database create it once.

The schema version is kept in the comment on `accounts` (no table of its own).
asyncpg is imported only when this backend is used (`pip install blindrelay[cluster]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from protocol.wire.prekeys import KemKind
from server.pg_schema import (
    CONFLICT,
    DIRECTORY_LOCK,
    FULL,
    KT_LOCK,
    MIGRATION_LOCK,
    PG_REVISION,
    QUEUE_FULL,
    RELAY_APPLICATION,
    SCHEMA,
    UNKNOWN,
    parse_version,
)
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
                number, revision = parse_version(version)
                if (number, revision) > (SCHEMA_VERSION, PG_REVISION):
                    raise PostgresUnavailable(
                        f"database schema {number} (PostgreSQL revision {revision}) is newer "
                        "than this relay knows")
                if (number, revision) < (SCHEMA_VERSION, PG_REVISION):
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

    async def _statement(self, sql: str, *args: Any) -> Any:
        """One statement, its own transaction (committed, with synchronous_commit on,
        before it returns): its result's first value. Retried like _tx."""
        pg = import_asyncpg()
        for attempt in range(RETRIES):
            try:
                async with self.pool.acquire() as conn:
                    value = await conn.fetchval(sql, *args)
            except (pg.DeadlockDetectedError, pg.SerializationError):
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.001 * (1 + secrets.randbelow(10)))
                continue
            self.commits += 1
            return value
        raise AssertionError("unreachable")

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

    async def directory_updates_since(self, index: int) -> list[DirectoryUpdate]:
        async def op(db: asyncpg.Connection) -> list[DirectoryUpdate]:
            rows = await db.fetch("SELECT idx, username, value, opening FROM kt_updates"
                                  " WHERE idx >= $1 ORDER BY idx", index)
            return [DirectoryUpdate(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3]))
                    for r in rows]

        return await self._read(op)

    @contextlib.asynccontextmanager
    async def directory_lock(self) -> AsyncIterator[None]:
        """A session advisory lock (DIRECTORY_LOCK) on a connection of its own, held
        while a relay process catches its directory up, computes the next update and
        writes it (server/cluster.py): every process sharing the database appends
        one at a time. A separate key from KT_LOCK, which the writing transaction
        takes on another connection. A process that dies loses its session, and
        PostgreSQL lets the lock go."""
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", DIRECTORY_LOCK)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", DIRECTORY_LOCK)

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
        return await self._store(
            [r for r, _ in envelopes], [b for _, b in envelopes], None, now, max_queue,
            sum(len(body) + ENVELOPE_OVERHEAD for _, body in envelopes),
            max_stored_bytes, max_stored_envelopes)

    async def store_group_message(
        self, recipients: list[str], body: bytes, now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
        commit: tuple[bytes, int] | None = None, forget_before: int = 0,
    ) -> list[StoredEnvelope]:
        return await self._store(
            recipients, [b""] * len(recipients), body, now, max_queue,
            len(body) + ENVELOPE_OVERHEAD * len(recipients), max_stored_bytes,
            max_stored_envelopes, commit, forget_before)

    async def _store(self, recipients: list[str], bodies: list[bytes], shared: bytes | None,
                     now: int, max_queue: int, adding_bytes: int, max_stored_bytes: int,
                     max_stored_envelopes: int, commit: tuple[bytes, int] | None = None,
                     forget_before: int = 0) -> list[StoredEnvelope]:
        """One call of blindrelay_store (server/pg_schema.py): the budget, the commit's epoch, each
        recipient's queue_heads row and queue count, and the rows, in one statement
        and so one transaction and one round trip. The random numbers (row ids,
        envelope ids, seq steps and starts) are drawn here."""
        pg = import_asyncpg()
        n = len(recipients)
        envelope_ids = [secrets.token_bytes(16) for _ in range(n)]
        args = (recipients, bodies, envelope_ids,
                [secrets.randbelow((1 << 63) - 1) + 1 for _ in range(n)],
                [1 + secrets.randbelow(SEQ_STEP) for _ in range(n)],
                [secrets.randbelow(SEQ_START) for _ in range(n)],
                None if shared is None else secrets.randbelow((1 << 63) - 1) + 1, shared,
                now, max_queue, adding_bytes, max_stored_bytes, max_stored_envelopes,
                None if commit is None else commit[0], 0 if commit is None else commit[1],
                forget_before)
        try:
            seqs = await self._statement(
                "SELECT blindrelay_store($1::text[], $2::bytea[], $3::bytea[], $4::bigint[],"
                " $5::bigint[], $6::bigint[], $7::bigint, $8::bytea, $9::bigint, $10::bigint,"
                " $11::bigint, $12::bigint, $13::bigint, $14::bytea, $15::bigint,"
                " $16::bigint)", *args)
        except pg.PostgresError as exc:
            code, message = getattr(exc, "sqlstate", None), str(exc)
            if code == FULL:
                raise StorageFull(message) from None
            if code == CONFLICT and commit is not None:
                raise CommitConflict(commit[1], int(message)) from None
            if code == UNKNOWN:
                raise UnknownUser(message) from None
            if code == QUEUE_FULL:
                raise QueueFull(message) from None
            raise
        body_of = [shared if shared is not None else body for body in bodies]
        return [StoredEnvelope(int(seq), eid, recipient, body, now, shared is not None)
                for seq, eid, recipient, body
                in zip(seqs, envelope_ids, recipients, body_of, strict=True)]

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
        return int(await self._statement(
            "WITH gone AS (DELETE FROM envelopes WHERE recipient=$1 AND"
            " envelope_id = ANY($2::bytea[]) RETURNING 1) SELECT COUNT(*) FROM gone",
            recipient, envelope_ids))

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
