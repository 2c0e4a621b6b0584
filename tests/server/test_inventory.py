"""docs/DATA.md lists every table and column the relay's schema has, and nothing
it lacks: storing something new without documenting it fails here. Checked for both
backends: SQLite's schema, and PostgreSQL's as information_schema reports it."""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from server.audit import INVENTORY, POSTGRES_ONLY, SQLITE_ONLY
from server.sqlite_store import BODIES_FILENAME, DB_FILENAME, SqliteStorage
from tests.pgdb import fresh_database
from tests.support import ROOT

TABLE_HEADING = re.compile(r"^### Table `(\w+)`", re.M)
COLUMN_ROW = re.compile(r"^\| `(\w+)` \|", re.M)


def documented_schema() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "DATA.md").read_text()
    sections = TABLE_HEADING.split(text)[1:]
    schema: dict[str, set[str]] = {}
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        body = body.split("\n### ")[0].split("\n## ")[0]
        schema[name] = set(COLUMN_ROW.findall(body))
    return schema


def actual_schema(db_path: Path) -> dict[str, set[str]]:
    """The tables of both database files (relay.sqlite3 and the out-of-line bodies)."""
    schema: dict[str, set[str]] = {}
    for path in (db_path, db_path.parent / BODIES_FILENAME):
        db = sqlite3.connect(path)
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_schema WHERE type='table'"
                " AND name NOT LIKE 'sqlite_%'")]
            schema.update({t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")}
                           for t in tables})
        finally:
            db.close()
    return schema


async def test_schema_matches_the_data_inventory(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    await store.close()
    actual = actual_schema(tmp_path / DB_FILENAME)
    documented = {t: c for t, c in documented_schema().items() if t not in POSTGRES_ONLY}
    assert set(actual) == set(documented), "tables differ from docs/DATA.md"
    for table, columns in actual.items():
        assert columns == documented[table], f"columns of {table} differ from docs/DATA.md"


def test_inventory_parser_sees_every_table() -> None:
    documented = documented_schema()
    assert documented["envelopes"] == {"id", "envelope_id", "recipient", "seq", "body",
                                       "received_at", "shared", "body_apart"}
    assert documented["envelope_bodies"] == {"id", "body"}
    assert documented["group_epochs"] == {"group_hash", "epoch", "at"}
    assert not any("member" in column for columns in documented.values()
                   for column in columns), "the relay keeps no group membership"
    assert "sender" not in documented["envelopes"]
    assert documented["kt_updates"] == {"idx", "username", "value", "opening"}
    assert documented["delivery_capabilities"] == {"username", "capability_hash",
                                                   "allow_anyone", "set_at"}


def test_key_files_are_documented() -> None:
    """The directory's two key files and the certificate key are in the inventory's
    list of files."""
    from server.certificates import CERT_KEY_FILENAME
    from server.kt import LOG_KEY_FILENAME, VRF_KEY_FILENAME

    text = (ROOT / "docs" / "DATA.md").read_text()
    for name in (LOG_KEY_FILENAME, VRF_KEY_FILENAME, CERT_KEY_FILENAME):
        assert f"| `{name}` |" in text, f"{name} not in docs/DATA.md"


async def test_sqlite_keeps_no_table_of_its_own(tmp_path: Path) -> None:
    """No AUTOINCREMENT, so no sqlite_sequence: SQLite keeps no all-time envelope
    counter (docs/DATA.md), even after envelopes came and went."""
    store = await SqliteStorage.open(tmp_path)
    try:
        await store.register("bob", b"\x01" * 32)
        (env,) = await store.store_envelopes([("bob", b"a")], 0, 10)
        await store.delete_envelopes("bob", [env.envelope_id])
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / DB_FILENAME)
    names = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE 'sqlite_%'")]
    db.close()
    assert names == []


async def test_indexes_are_documented(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    await store.close()
    db = sqlite3.connect(tmp_path / DB_FILENAME)
    names = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_schema WHERE type='index' AND sql IS NOT NULL")]
    db.close()
    text = (ROOT / "docs" / "DATA.md").read_text()
    for name in names:
        assert f"`{name} " in text or f"`{name}`" in text, f"index {name} not in docs/DATA.md"


def test_the_audits_inventory_is_the_documented_one() -> None:
    """`blindrelay audit` (and so `conformance --data`) flags what is not in
    docs/DATA.md by its own copy of the inventory: the two must agree."""

    ours = {t: set(c) for t, c in INVENTORY.items() if not t.startswith("sqlite_")}
    assert ours == documented_schema()


def test_tables_of_one_backend_say_so() -> None:
    text = (ROOT / "docs" / "DATA.md").read_text()
    for table in POSTGRES_ONLY:
        assert f"### Table `{table}` (PostgreSQL only)" in text
    for table, columns in SQLITE_ONLY.items():
        if set(columns) == set(INVENTORY[table]):
            assert f"### Table `{table}` (SQLite only)" in text
        else:
            for column in columns:
                assert re.search(rf"^\| `{column}` \|[^\n]*\(SQLite only\)", text, re.M), column


async def test_postgresql_schema_matches_the_data_inventory() -> None:
    """The tables, columns and indexes a relay on PostgreSQL creates, as the server's
    information_schema lists them, are docs/DATA.md's; no sequence counts rows."""
    from server.pg_store import PgStorage

    async with fresh_database() as url:
        store = await PgStorage.open(url, max_size=1)
        try:
            async with store.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema()")
                tables = {r[0] for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()")}
                indexes = [r[0] for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")]
                sequences = await conn.fetch(
                    "SELECT sequence_name FROM information_schema.sequences"
                    " WHERE sequence_schema = current_schema()")
        finally:
            await store.close()
    actual: dict[str, set[str]] = {t: set() for t in tables}
    for table, column in rows:
        actual[table].add(column)
    documented = {}
    for table, columns in documented_schema().items():
        if set(SQLITE_ONLY.get(table, ())) != columns:  # not a SQLite-only table
            documented[table] = columns - set(SQLITE_ONLY.get(table, ()))
    assert set(actual) == set(documented), "tables differ from docs/DATA.md"
    for table, columns in actual.items():
        assert columns == documented[table], f"columns of {table} differ from docs/DATA.md"
    text = (ROOT / "docs" / "DATA.md").read_text()
    for name in indexes:
        if not name.endswith(("_pkey", "_key")):
            assert f"`{name} " in text or f"`{name}`" in text, f"index {name} not documented"
    assert sequences == []


async def test_audit_reads_a_relay_on_postgresql(tmp_path: Path) -> None:
    """`blindrelay audit --storage URL` lists PostgreSQL's tables, finds nothing
    outside the inventory, and its --json document says so too."""
    from server.audit import audit
    from server.pg_store import PgStorage

    async with fresh_database() as url:
        store = await PgStorage.open(url, max_size=1)
        try:
            await store.register("bob", b"\x01" * 32)
            await store.store_envelopes([("bob", b"\xee" * 40)], 600, 10)
        finally:
            await store.close()
        out = io.StringIO()
        # the audit is a plain function with its own event loop, as `blindrelay audit`
        assert await asyncio.to_thread(audit, tmp_path, out, storage_url=url) == 0
        text = out.getvalue()
        assert "Table queue_heads: 1 rows" in text
        assert "1 envelopes queued for 1 recipients, 40 bytes of ciphertext" in text
        assert "sequences: none (no all-time counter)" in text
        assert "NOT IN THE DATA INVENTORY" not in text
        assert "\xee".encode("latin-1").hex() * 4 not in text  # bodies only as hashes
        done = subprocess.run(
            [sys.executable, "-m", "blindrelay", "audit", "--data", str(tmp_path),
             "--storage", url, "--json"], cwd=ROOT, capture_output=True, text=True,
            timeout=60)
        assert done.returncode == 0, done.stderr
        assert '"findings": []' in done.stdout and '"queue_heads"' in done.stdout
