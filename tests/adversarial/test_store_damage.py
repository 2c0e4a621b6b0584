"""Issue 9 item 11: a damaged or rolled-back profile is reported, never a traceback, a
"wrong passphrase" or a silently dropped message.

- one flipped byte in a contacts, sessions or messages row: the row is moved aside
  (the `quarantine` table) with a notice, shown once, and everything else works,
  receiving included;
- KDF parameters lowered below the minimum: refused before deriving, with a message
  that says so; metadata that does not match its MAC: "damaged";
- a session row put back from an older copy: "rolled back / restored from an older
  copy", and the next message is not dropped as a duplicate.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from client.client import UNKNOWN_SENDER, Client
from client.records import Direction, State
from client.store import CorruptStore, KdfParams, Store, WeakParameters
from tests.blindrelay.test_cli import blindrelay
from tests.client.helpers import make_client, received, reopen, shut, wait_for
from tests.support import relay_process, running_relay

KEYED = {"contacts": "tag", "sessions": "tag", "messages": "id"}


def _flip_row(home: Path, table: str) -> None:
    """Flips one bit in the ciphertext of the table's first row."""
    db = sqlite3.connect(Store.path_in(home))
    key = KEYED[table]
    k, data = db.execute(f"SELECT {key}, data FROM {table} ORDER BY {key} LIMIT 1").fetchone()
    data = bytearray(data)
    data[30] ^= 0x01
    db.execute(f"UPDATE {table} SET data=? WHERE {key}=?", (bytes(data), k))
    db.commit()
    db.close()


def _set_meta(home: Path, name: str, value: bytes) -> None:
    db = sqlite3.connect(Store.path_in(home))
    db.execute("UPDATE meta SET value=? WHERE name=?", (value, name))
    db.commit()
    db.close()


@pytest.mark.parametrize("table", ["contacts", "sessions", "messages"])
async def test_a_damaged_row_is_quarantined_and_everything_else_works(
        tmp_path: Path, table: str) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "one")
        await wait_for(lambda: received(bob, "alice") == ["one"])
        await bob.send_text("alice", "reply")
        await wait_for(lambda: received(alice, "bob") == ["reply"])
        await bob.disconnect()
        bob.close()
        _flip_row(tmp_path / "bob", table)

        bob = Client.open(tmp_path / "bob", b"pw")
        bob.contacts()
        bob.history("alice")
        bob.sessions.load("alice")
        bob.unread()
        assert len(bob.store.notices) == 1, bob.store.notices
        assert table in bob.store.notices[0] and "quarantined" in bob.store.notices[0]
        assert bob.store.quarantined() == 1

        bob = await reopen(bob)  # receiving goes on
        await alice.send_text("bob", "two")
        await wait_for(lambda: any(m.text == "two" or m.state is State.UNDECRYPTABLE
                                   for name in ("alice", UNKNOWN_SENDER)
                                   for m in bob.history(name)) or
                       any(m.direction is Direction.IN for m in bob.unread()))
        await bob.send_text("alice", "still here")
        await wait_for(lambda: "still here" in received(alice, "bob"))
        await shut(alice, bob)

        again = Client.open(tmp_path / "bob", b"pw")  # said once: nothing new to say
        again.contacts()
        again.history("alice")
        assert again.store.notices == []
        again.close()


def test_the_cli_keeps_working_and_says_what_was_moved_aside(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        a, b = tmp_path / "alice", tmp_path / "bob"
        assert blindrelay("init", "alice", "--server", relay.url, "--home", str(a)
                          ).returncode == 0
        assert blindrelay("init", "bob", "--server", relay.url, "--home", str(b)
                          ).returncode == 0
        assert blindrelay("send", "bob", "one", "--home", str(a)).returncode == 0
        assert "one" in blindrelay("recv", "--home", str(b)).stdout
        _flip_row(b, "contacts")
        listed = blindrelay("contacts", "--home", str(b))
        assert listed.returncode == 0, listed.stderr
        assert "Traceback" not in listed.stderr
        assert "damaged" in listed.stderr and "quarantined" in listed.stderr
        assert blindrelay("send", "bob", "two", "--home", str(a)).returncode == 0
        got = blindrelay("recv", "--home", str(b))
        assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr
        quiet = blindrelay("contacts", "--home", str(b))
        assert quiet.returncode == 0 and "damaged" not in quiet.stderr


def test_lowered_kdf_parameters_are_reported_not_a_wrong_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    Client.create(home, "alice", "ws://127.0.0.1:1", b"pw",
                  KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)).close()
    _set_meta(home, "kdf", KdfParams(opslimit=1, memlimit=8192).encode())
    with pytest.raises(WeakParameters, match="below the minimum"):
        Client.open(home, b"pw")
    told = blindrelay("contacts", "--home", str(home))
    assert told.returncode != 0 and "below the minimum" in told.stderr
    assert "wrong passphrase" not in told.stderr


def test_metadata_that_does_not_match_its_mac_is_damaged(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    Client.create(home, "alice", "ws://127.0.0.1:1", b"pw",
                  KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)).close()
    db = sqlite3.connect(Store.path_in(home))
    (mac,) = db.execute("SELECT value FROM meta WHERE name='meta_mac'").fetchone()
    db.close()
    _set_meta(home, "meta_mac", bytes([mac[0] ^ 1]) + mac[1:])
    with pytest.raises(CorruptStore, match="metadata is damaged"):
        Client.open(home, b"pw")


async def test_a_rolled_back_session_row_is_detected_and_reported(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "one")
        await wait_for(lambda: received(bob, "alice") == ["one"])
        await bob.send_text("alice", "reply")
        await wait_for(lambda: received(alice, "bob") == ["reply"])
        await alice.send_text("bob", "two")
        await wait_for(lambda: received(bob, "alice") == ["one", "two"])
        await bob.disconnect()
        bob.close()
        db = sqlite3.connect(Store.path_in(tmp_path / "bob"))
        old = db.execute("SELECT tag, data, ver FROM sessions").fetchall()
        db.close()

        bob = await reopen(bob)  # the session moves on
        await alice.send_text("bob", "three")
        await wait_for(lambda: received(bob, "alice") == ["one", "two", "three"])
        await bob.disconnect()
        bob.close()
        db = sqlite3.connect(Store.path_in(tmp_path / "bob"))
        db.executemany("UPDATE sessions SET data=?, ver=? WHERE tag=?",
                       [(d, v, t) for t, d, v in old])  # one row put back from a copy
        db.commit()
        db.close()

        bob = await reopen(bob)
        await alice.send_text("bob", "four")
        await wait_for(lambda: any(m.text == "four" or m.state is State.UNDECRYPTABLE
                                   for name in ("alice", UNKNOWN_SENDER)
                                   for m in bob.history(name)))
        assert any("rolled back / restored from an older copy" in n
                   for n in bob.store.notices), bob.store.notices
        await shut(alice, bob)
