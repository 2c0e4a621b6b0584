"""A fresh PostgreSQL database per test, dropped afterwards (tests of the PostgreSQL
storage, server/pg_store.py; docs/DEPLOY.md).

`fresh_database()` needs the server (tests.services.need_postgres skips, or fails under
CI, when it is absent), creates `blindrelay_t_<random>` on it and yields that
database's URL; on exit it ends what is still connected to it and drops it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from tests.services import need_postgres

PREFIX = "blindrelay_t_"


def database_url(server_url: str, name: str) -> str:
    """`server_url` with its database replaced by `name` (query kept)."""
    base, _, query = server_url.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{name}" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    import asyncpg

    server = need_postgres()
    name = PREFIX + secrets.token_hex(6)
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_url(server, name)
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
