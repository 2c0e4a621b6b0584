"""Profiles written before row versions (schema 1) stay readable: opening one with
the right passphrase re-seals every row with a version, once."""

from __future__ import annotations

from pathlib import Path

from client.client import Client
from client.records import Contact
from client.store import NAMED, VERSIONED, Store
from tests.client.helpers import FAST_KDF


def _downgrade_to_schema_1(store: Store) -> None:
    """Rewrites a profile the way schema 1 stored it: rows sealed without a version,
    no `ver` columns, no record of versions, no metadata MAC, no quarantine table."""
    db = store.db
    for table in VERSIONED:
        key = "tag" if table in NAMED else "id"
        for k, data, ver in db.execute(f"SELECT {key}, data, ver FROM {table}").fetchall():
            row = bytes(k) if table in NAMED else str(k).encode()
            plaintext = store._open(table.encode(), row, bytes(data), ver)
            db.execute(f"UPDATE {table} SET data=? WHERE {key}=?",
                       (store._seal(table.encode(), row, plaintext), k))
        db.execute(f"ALTER TABLE {table} DROP COLUMN ver")
    db.execute("DELETE FROM meta WHERE name IN ('versions', 'meta_mac')")
    db.execute("DROP TABLE quarantine")
    db.execute("PRAGMA user_version=1")


def test_a_schema_1_profile_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    alice = Client.create(home, "alice", "ws://127.0.0.1:1", b"pw", FAST_KDF)
    alice.trust.save(Contact("bob", b"\x01" * 32))
    alice.store.add_message("bob", None, b'{"kept":1}')
    alice.store.add_outbox(b"queued")
    _downgrade_to_schema_1(alice.store)
    alice.close()

    again = Client.open(home, b"pw")
    assert again.username == "alice"
    assert [c.name for c in again.contacts()] == ["bob"]
    assert again.store.messages("bob", 10) == [(1, b'{"kept":1}')]
    assert again.store.outbox() == [(1, b"queued")]
    assert again.store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert again.store.notices == [] and again.store.quarantined() == 0
    again.close()
    Client.open(home, b"pw").close()  # and opens as schema 2 from then on
