"""docs/DATA.md lists every table and column the relay's schema has, and nothing
it lacks: storing something new without documenting it fails here."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from server.sqlite_store import BODIES_FILENAME, DB_FILENAME, SqliteStorage
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
    documented = documented_schema()
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
    from server.audit import INVENTORY

    ours = {t: set(c) for t, c in INVENTORY.items() if not t.startswith("sqlite_")}
    assert ours == documented_schema()
