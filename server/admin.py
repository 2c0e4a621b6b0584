"""`blindrelay admin`: the operator's commands, run on the relay host against the data
directory while the relay is stopped (the storage's lock refuses otherwise, so the two
never write the same file at once). For relays on PostgreSQL (`--storage URL`) it
refuses while any relay is connected to the database: a running relay holds the key
directory in memory, and a DELETE appended behind its back would put it out of step."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from server.kt import (
    LOG_KEY_FILENAME,
    VRF_KEY_FILENAME,
    load_log_key,
    load_vrf_key,
    new_update,
    open_directory,
)
from server.sqlite_store import DB_FILENAME, DataDirInUse, SqliteStorage
from server.storage import Storage, UnknownUser


async def _open(data_dir: Path, storage_url: str) -> Storage:
    if not storage_url:
        return await SqliteStorage.open(data_dir)
    from server.pg_store import PgStorage

    storage = await PgStorage.open(storage_url, max_size=1, application_name="blindrelay-admin")
    running = await storage.relays_connected()
    if running:
        await storage.close()
        raise DataDirInUse(f"{running} relay connection(s) use the database (are relays "
                           "running? stop them first)")
    return storage


async def delete_account(data_dir: Path, username: str, storage_url: str = "") -> int:
    """Deletes the account, its prekeys and its queued envelopes; returns how many
    envelopes went with it. Raises UnknownUser or DataDirInUse. The key directory's
    DELETE goes in the same transaction (PROTOCOL.md 19.10); a data directory from
    before the directory existed has no keys yet, and the relay's next start adds
    what is missing (server/kt.py open_directory)."""
    storage = await _open(data_dir, storage_url)
    try:
        if await storage.identity(username) is None:
            raise UnknownUser(username)
        if not ((data_dir / LOG_KEY_FILENAME).exists()
                and (data_dir / VRF_KEY_FILENAME).exists()):
            return await storage.delete_account(username)
        directory = await open_directory(storage, load_log_key(data_dir, None),
                                         load_vrf_key(data_dir))
        _, update = new_update(directory, username, None)
        return await storage.delete_account(username, update)
    finally:
        await storage.close()


def main(action: str, username: str, data_dir: Path, storage_url: str = "") -> int:
    if action != "delete-account":  # pragma: no cover - argparse allows only this one
        return 2
    if not storage_url and not (data_dir / DB_FILENAME).exists():
        print(f"blindrelay admin: no relay data in {data_dir}", file=sys.stderr)
        return 1
    from server.pg_store import PostgresUnavailable

    try:
        count = asyncio.run(delete_account(data_dir, username, storage_url))
    except (DataDirInUse, PostgresUnavailable) as exc:
        print(f"blindrelay admin: {exc}", file=sys.stderr)
        return 1
    except UnknownUser as exc:
        print(f"blindrelay admin: {exc}", file=sys.stderr)
        return 1
    print(f"deleted the account {username!r} and {count} queued envelope(s); the name is "
          "free again")
    return 0
