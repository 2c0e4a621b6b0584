"""Which storage a relay runs on: embedded SQLite in its data directory (the default,
one process), or a PostgreSQL database that several relay processes share
(`--storage postgresql://...`, docs/DEPLOY.md).

Either way the data directory holds the relay's key files (docs/DATA.md). With
SQLite the storage holds the directory's lock (`relay.lock`) for as long as the relay
runs: one process at a time. With PostgreSQL several processes use the same directory,
so none holds the lock for long: each takes it only while it reads (or, on the first
start, creates) the key files, so two processes starting at once cannot both create
a key and keep different ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from server.sqlite_store import LOCK_FILENAME, DataDirInUse, SqliteStorage
from server.startup import RelayStartError
from server.storage import Storage

KEY_LOCK_WAIT = 10.0
"""Seconds a relay on PostgreSQL waits for the data directory's lock while it reads
its key files (held by another starting relay for a moment, or by a relay on
embedded SQLite for as long as that one runs)."""


class StorageChoiceError(RelayStartError):
    """The --storage value names no storage this relay has."""


def is_shared(storage_url: str) -> bool:
    """Whether `storage_url` names a database that several processes share."""
    from server.pg_store import is_postgres_url

    return is_postgres_url(storage_url)


def check_storage_url(storage_url: str) -> None:
    """Raises StorageChoiceError unless the value is empty or 'sqlite' (embedded
    SQLite in the data directory) or a postgresql:// URL."""
    if storage_url in ("", "sqlite") or is_shared(storage_url):
        return
    raise StorageChoiceError(f"--storage takes a postgresql://user@host:port/database "
                             f"URL (or 'sqlite', the default), not {storage_url!r}")


async def open_storage(data_dir: Path, storage_url: str = "",
                       synchronous_full: bool = False) -> Storage:
    """The relay's storage. Raises RelayStartError (one line for the operator) if the
    data directory is in use, asyncpg is missing or the database cannot be opened."""
    check_storage_url(storage_url)
    if is_shared(storage_url):
        from server.pg_store import PgStorage, PostgresUnavailable

        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return await PgStorage.open(storage_url)
        except PostgresUnavailable as exc:
            raise RelayStartError(str(exc)) from None
    try:  # the storage holds the data directory's lock (one process at a time)
        return await SqliteStorage.open(data_dir, synchronous_full)
    except DataDirInUse:
        raise RelayStartError(f"another relay is already using the data directory "
                              f"{data_dir} (it is in use; stop that relay first)") from None


@contextlib.asynccontextmanager
async def key_files_lock(data_dir: Path, storage_url: str) -> AsyncIterator[None]:
    """Held while the relay reads or creates its key files. On SQLite the storage
    holds the data directory's lock already; on PostgreSQL this takes it, waiting up
    to KEY_LOCK_WAIT seconds, and lets it go at the end of the block."""
    if not is_shared(storage_url):
        yield
        return
    fd = os.open(data_dir / LOCK_FILENAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KEY_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() > deadline:
                    raise RelayStartError(
                        f"the data directory {data_dir} is held by another process (a "
                        "relay on embedded SQLite, or `blindrelay admin`?); relays on "
                        "PostgreSQL share a data directory only with each other") from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
