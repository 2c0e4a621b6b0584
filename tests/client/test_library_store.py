"""The encrypted profile: passphrases, profiles without one, and missing profiles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from client.client import Client
from client.store import (
    STORE_FILENAME,
    NoProfile,
    ProfileExists,
    Store,
    WrongPassphrase,
)
from tests.client.helpers import FAST_KDF, make_client, received, reopen, shut, wait_for
from tests.support import running_relay


async def test_wrong_passphrase_is_a_clear_error_and_corrupts_nothing(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url, passphrase=b"correct horse")
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "secret words")
        await wait_for(lambda: received(bob, "alice") == ["secret words"])
        await bob.send_text("alice", "secret reply")
        await wait_for(lambda: received(alice, "bob") == ["secret reply"])
        await alice.disconnect()
        alice.close()
        home = tmp_path / "alice"
        before = (home / STORE_FILENAME).read_bytes()

        for wrong in (b"correct hors", b"", b"Correct horse"):
            with pytest.raises(WrongPassphrase, match="wrong passphrase"):
                Client.open(home, wrong)
        with pytest.raises(WrongPassphrase, match="protected by a passphrase"):
            Client.open(home, None)
        assert (home / STORE_FILENAME).read_bytes() == before

        # the right passphrase still opens everything, and the session still works
        alice = Client.open(home, b"correct horse")
        assert received(alice, "bob") == ["secret reply"]
        alice = await reopen(alice, b"correct horse")
        await alice.send_text("bob", "still here")
        await wait_for(lambda: received(bob, "alice") == ["secret words", "still here"])
        await shut(alice, bob)

        # and nothing personal is readable in the file itself
        raw = (home / STORE_FILENAME).read_bytes()
        for word in (b"secret words", b"secret reply", b"still here", b"bob"):
            assert word not in raw


async def test_profile_without_passphrase(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url, passphrase=None)
        bob = await make_client(tmp_path, "bob", relay.url, passphrase=None)
        assert not alice.store.protected
        await alice.send_text("bob", "no passphrase")
        await wait_for(lambda: received(bob, "alice") == ["no passphrase"])
        alice = await reopen(alice, None)  # opens without being asked for anything
        await bob.send_text("alice", "fine")
        await wait_for(lambda: received(alice, "bob") == ["fine"])
        await shut(alice, bob)
        again = Client.open(tmp_path / "alice", None)
        assert received(again, "bob") == ["fine"]
        again.close()


def test_missing_profile_is_no_profile(tmp_path: Path) -> None:
    with pytest.raises(NoProfile, match="no profile"):
        Client.open(tmp_path / "nobody", b"pw")
    with pytest.raises(NoProfile):
        Client.open(tmp_path / "nobody", None)
    assert not (tmp_path / "nobody").exists()  # looking did not create one


def test_existing_profile_is_not_overwritten(tmp_path: Path) -> None:
    alice = Client.create(tmp_path / "alice", "alice", "ws://127.0.0.1:1", b"pw", FAST_KDF)
    identity = alice.identity.public
    alice.close()
    with pytest.raises(ProfileExists):
        Client.create(tmp_path / "alice", "mallory", "ws://127.0.0.1:1", b"other", FAST_KDF)
    again = Client.open(tmp_path / "alice", b"pw")
    assert again.identity.public == identity and again.username == "alice"
    again.close()


def test_store_rows_cannot_be_swapped(tmp_path: Path) -> None:
    """A row moved to another place in the file does not decrypt: it is reported and
    moved aside (quarantined), never silently read as something else."""
    alice = Client.create(tmp_path / "alice", "alice", "ws://127.0.0.1:1", b"pw", FAST_KDF)
    alice.store.add_message("bob", None, b'{"a":1}')
    alice.store.add_message("bob", None, b'{"a":2}')
    alice.close()
    db = sqlite3.connect(Store.path_in(tmp_path / "alice"))
    (_one,), (two,) = db.execute("SELECT data FROM messages ORDER BY id").fetchall()
    db.execute("UPDATE messages SET data=? WHERE id=1", (two,))
    db.commit()
    db.close()
    store = Store.open(tmp_path / "alice", b"pw")
    assert store.messages("bob", 10) == [(2, b'{"a":2}')]
    assert store.quarantined() == 1 and "does not decrypt" in store.notices[0]
    store.close()
