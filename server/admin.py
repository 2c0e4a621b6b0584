"""`blindrelay admin`: the operator's commands, run on the relay host against the data
directory while the relay is stopped (the storage's lock refuses otherwise, so the two
never write the same file at once)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from server.sqlite_store import DB_FILENAME, DataDirInUse, SqliteStorage
from server.storage import UnknownUser


async def delete_account(data_dir: Path, username: str) -> int:
    """Deletes the account, its prekeys and its queued envelopes; returns how many
    envelopes went with it. Raises UnknownUser or DataDirInUse."""
    storage = await SqliteStorage.open(data_dir)
    try:
        return await storage.delete_account(username)
    finally:
        await storage.close()


def main(action: str, username: str, data_dir: Path) -> int:
    if action != "delete-account":  # pragma: no cover - argparse allows only this one
        return 2
    if not (data_dir / DB_FILENAME).exists():
        print(f"blindrelay admin: no relay data in {data_dir}", file=sys.stderr)
        return 1
    try:
        count = asyncio.run(delete_account(data_dir, username))
    except DataDirInUse as exc:
        print(f"blindrelay admin: {exc}", file=sys.stderr)
        return 1
    except UnknownUser as exc:
        print(f"blindrelay admin: {exc}", file=sys.stderr)
        return 1
    print(f"deleted the account {username!r} and {count} queued envelope(s); the name is "
          "free again")
    return 0
