"""Read-only views of a relay's tables for `blindrelay audit` (server/audit.py): the
SQLite database in the data directory, or the PostgreSQL database of `--storage`.

Both answer the same few questions (which tables and columns, how many rows, the rows
themselves, the indexes, the envelope summary, the directory's rows, the schema
version), so the audit prints one inventory whichever backend holds the data. The
PostgreSQL view runs in a read-only transaction; the SQLite one opens the file with
mode=ro.
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.sqlite_store import BODIES_FILENAME, DB_FILENAME
from server.storage import RECEIVED_AT_GRANULARITY


class SourceUnavailable(Exception):
    """No relay database where the audit was pointed (or it cannot be opened)."""


@dataclass(frozen=True, slots=True)
class EnvelopeSummary:
    total: int
    size: int
    oldest: int | None
    recipients: int
    coarse: int
    """How many received_at are multiples of RECEIVED_AT_GRANULARITY."""


class Source(abc.ABC):
    name: str
    """What the audit says it read: a path, or a URL without its password."""

    @abc.abstractmethod
    def tables(self) -> list[str]: ...

    @abc.abstractmethod
    def columns(self, table: str) -> list[tuple[str, str]]:
        """(name, type) of each column, in table order."""

    @abc.abstractmethod
    def count(self, table: str) -> int: ...

    @abc.abstractmethod
    def rows(self, table: str, limit: int) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def indexes(self) -> list[str]:
        """The indexes the relay created (not those behind primary keys or UNIQUE)."""

    @abc.abstractmethod
    def envelopes(self) -> EnvelopeSummary: ...

    @abc.abstractmethod
    def counters(self) -> str:
        """One line: whether the database keeps an all-time counter of rows."""

    @abc.abstractmethod
    def directory_rows(self) -> list[tuple[int, str, bytes, bytes]]: ...

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class SqliteSource(Source):
    def __init__(self, data_dir: Path) -> None:
        path = data_dir / DB_FILENAME
        if not path.exists():
            raise SourceUnavailable(f"no relay database at {path}")
        self.name = str(path)
        self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        # the out-of-line bodies (schema 6) live in a second file; an empty stand-in
        # for a relay from before it
        bodies = data_dir / BODIES_FILENAME
        target = f"{bodies.resolve().as_uri()}?mode=ro" if bodies.exists() else ":memory:"
        self.db.execute("ATTACH DATABASE ? AS bodies", (target,))

    _ALL_SCHEMAS = ("SELECT type, name, sql FROM main.sqlite_schema UNION ALL "
                    "SELECT type, name, sql FROM bodies.sqlite_schema")
    """The relay's two database files: relay.sqlite3 and relay-bodies.sqlite3 (attached
    as `bodies`); table names are unique across them."""

    def tables(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            f"SELECT name FROM ({self._ALL_SCHEMAS}) WHERE type='table' ORDER BY name")]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [(r[1], r[2]) for r in self.db.execute(f'PRAGMA table_info("{table}")')]

    def count(self, table: str) -> int:
        return int(self.db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])

    def rows(self, table: str, limit: int) -> list[tuple[Any, ...]]:
        return list(self.db.execute(f'SELECT * FROM "{table}" LIMIT ?', (limit,)))

    def indexes(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            f"SELECT name FROM ({self._ALL_SCHEMAS}) WHERE type='index' AND sql IS NOT NULL")]

    def envelopes(self) -> EnvelopeSummary:
        columns = [c for c, _ in self.columns("envelopes")]
        apart = " + COALESCE(body_apart, 0)" if "body_apart" in columns else ""
        total, size, oldest, recipients, coarse = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(body){apart}), 0), MIN(received_at),"
            " COUNT(DISTINCT recipient), COALESCE(SUM(received_at % ? = 0), 0)"
            " FROM envelopes", (RECEIVED_AT_GRANULARITY,)).fetchone()
        return EnvelopeSummary(total, size, oldest, recipients, coarse)

    def counters(self) -> str:
        counter = self.db.execute(
            "SELECT 1 FROM sqlite_schema WHERE name='sqlite_sequence'").fetchone()
        return "sqlite_sequence: " + ("present (an all-time envelope counter)" if counter
                                      else "none (no all-time counter)")

    def directory_rows(self) -> list[tuple[int, str, bytes, bytes]]:
        return [(int(i), str(u), bytes(v), bytes(o)) for i, u, v, o in self.db.execute(
            "SELECT idx, username, value, opening FROM kt_updates ORDER BY idx")]

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class PostgresSource(Source):
    """The tables of the connection's current schema, read in one read-only
    transaction (a consistent snapshot) on its own event loop, so the audit stays a
    plain function."""

    def __init__(self, url: str) -> None:
        from server.pg_store import import_asyncpg, redact_url

        pg = import_asyncpg()
        self.name = redact_url(url)
        self.loop = asyncio.new_event_loop()
        try:
            self.conn = self.loop.run_until_complete(pg.connect(
                url, server_settings={"default_transaction_read_only": "on",
                                      "application_name": "blindrelay-audit"}))
        except (TimeoutError, OSError, pg.PostgresError, pg.InterfaceError) as exc:
            self.loop.close()
            raise SourceUnavailable(f"cannot open the PostgreSQL database {self.name}: "
                                    f"{exc}") from None
        self._run(self.conn.execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        if not self.tables():
            self.close()
            raise SourceUnavailable(f"no relay tables in the PostgreSQL database {self.name}")

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def tables(self) -> list[str]:
        return [str(r[0]) for r in self._run(self.conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE"
            " table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " ORDER BY table_name"))]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1]).upper()) for r in self._run(self.conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE"
            " table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table))]

    def count(self, table: str) -> int:
        return int(self._run(self.conn.fetchval(f'SELECT COUNT(*) FROM "{table}"')))

    def rows(self, table: str, limit: int) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._run(
            self.conn.fetch(f'SELECT * FROM "{table}" LIMIT $1', limit))]

    def indexes(self) -> list[str]:
        return [str(r[0]) for r in self._run(self.conn.fetch(
            "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema()"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            " ORDER BY i.indexname"))]

    def envelopes(self) -> EnvelopeSummary:
        row = self._run(self.conn.fetchrow(
            "SELECT COUNT(*), COALESCE(SUM(octet_length(body)), 0), MIN(received_at),"
            " COUNT(DISTINCT recipient),"
            " COUNT(*) FILTER (WHERE received_at % $1 = 0) FROM envelopes",
            RECEIVED_AT_GRANULARITY))
        return EnvelopeSummary(int(row[0]), int(row[1]),
                               None if row[2] is None else int(row[2]), int(row[3]),
                               int(row[4]))

    def counters(self) -> str:
        names = [str(r[0]) for r in self._run(self.conn.fetch(
            "SELECT sequence_name FROM information_schema.sequences"
            " WHERE sequence_schema = current_schema()"))]
        return "sequences: " + (f"{', '.join(names)} (counters)" if names
                                else "none (no all-time counter)")

    def directory_rows(self) -> list[tuple[int, str, bytes, bytes]]:
        return [(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3])) for r in self._run(
            self.conn.fetch("SELECT idx, username, value, opening FROM kt_updates"
                            " ORDER BY idx"))]

    def schema_version(self) -> int:
        from server.pg_schema import parse_version

        return parse_version(self._run(self.conn.fetchval(
            "SELECT obj_description(to_regclass('accounts'), 'pg_class')")))[0]

    def close(self) -> None:
        try:
            self._run(self.conn.close())
        finally:
            self.loop.close()


def open_source(data_dir: Path, storage_url: str = "") -> Source:
    """The relay's tables: in the data directory's SQLite database, or (a postgresql://
    `storage_url`) in PostgreSQL. Raises SourceUnavailable."""
    from server.pg_store import PostgresUnavailable, is_postgres_url

    if storage_url and storage_url != "sqlite":
        if not is_postgres_url(storage_url):
            raise SourceUnavailable(f"--storage takes a postgresql:// URL, not "
                                    f"{storage_url!r}")
        try:
            return PostgresSource(storage_url)
        except PostgresUnavailable as exc:
            raise SourceUnavailable(str(exc)) from None
    return SqliteSource(data_dir)
