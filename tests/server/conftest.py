"""Storage tests run against both backends: embedded SQLite and PostgreSQL (a fresh
database per test, tests/pgdb.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from server.storage import Storage
from tests.pgdb import fresh_database

BACKENDS = ("sqlite", "postgresql")

OpenStore = Callable[[], Awaitable[Storage]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def storage_location(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """Where the test's storage lives: a data directory, or a fresh database's URL."""
    if backend == "sqlite":
        yield str(tmp_path / "data")
    else:
        async with fresh_database() as url:
            yield url


@pytest.fixture
def serve_args(backend: str, storage_location: str) -> tuple[str, ...]:
    """The `blindrelay serve` options that put the relay's tables in the test's
    storage (none for SQLite: its data directory)."""
    return () if backend == "sqlite" else ("--storage", storage_location)


@pytest.fixture
def open_store(backend: str, storage_location: str) -> OpenStore:
    """Opens (again) the test's storage, of the backend the test runs with."""

    async def opener() -> Storage:
        if backend == "sqlite":
            from server.sqlite_store import SqliteStorage

            return await SqliteStorage.open(Path(storage_location))
        from server.pg_store import PgStorage

        return await PgStorage.open(storage_location, max_size=4)

    return opener


async def row_count(store: Storage, table: str) -> int:
    """Rows in one of the storage's tables, read through its own connection."""
    from server.pg_store import PgStorage
    from server.sqlite_store import SqliteStorage

    if isinstance(store, SqliteStorage):
        return int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    assert isinstance(store, PgStorage)
    async with store.pool.acquire() as conn:
        return int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}"))


async def envelope_rows(store: Storage) -> list[tuple[int, bytes, str, int]]:
    """(id, envelope_id, recipient, seq) of every stored envelope row, by id."""
    from server.pg_store import PgStorage
    from server.sqlite_store import SqliteStorage

    sql = "SELECT id, envelope_id, recipient, seq FROM envelopes ORDER BY id"
    if isinstance(store, SqliteStorage):
        rows = store.db.execute(sql).fetchall()
    else:
        assert isinstance(store, PgStorage)
        async with store.pool.acquire() as conn:
            rows = await conn.fetch(sql)
    return [(int(r[0]), bytes(r[1]), str(r[2]), int(r[3])) for r in rows]
