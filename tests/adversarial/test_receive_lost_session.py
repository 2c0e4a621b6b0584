"""Issue 9 item 7: a contact who lost the session (a reinstalled or restored profile)
showed an undecryptable placeholder while the sender saw "sent" forever. Now the
recipient sends a decryption error (content kind 3, PROTOCOL.md 9.2) in a new session
from the sender's bundle; the sender sends every unconfirmed message again in it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from client.history import UNKNOWN_SENDER
from client.records import Direction, State
from tests.client.helpers import (
    make_client,
    online,
    received,
    reopen,
    shut,
    wait_for,
    wait_last,
)
from tests.support import running_relay


async def test_messages_to_a_contact_who_lost_the_session_are_sent_again(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        await bob.send_text("alice", "hi")
        await wait_last(alice, "bob", "hi")

        # bob's profile loses its session with alice (restored from an older copy)
        await bob.disconnect()
        bob.sessions.forget("alice")
        lost = [await alice.send_text("bob", f"lost {n}") for n in range(3)]

        def states() -> list[State]:
            rows = {m.row_id: m for m in alice.history("bob")}
            return [rows[m.row_id].state for m in lost]

        assert states() == [State.SENT] * 3
        await online(bob)
        await wait_for(lambda: received(bob, "alice")[-3:] == ["lost 0", "lost 1", "lost 2"])
        # the failures were placeholders under "unknown sender", not under alice
        assert sum(m.count for m in bob.history(UNKNOWN_SENDER)) >= 3  # and a receipt
        await wait_for(lambda: states() == [State.DELIVERED] * 3)
        notices = [m.text for m in alice.history("bob") if m.direction is Direction.NOTICE]
        assert any("bob could not decrypt a message you sent: 3 messages" in n
                   for n in notices), notices

        # the conversation goes on, both ways, in the new session
        await alice.send_text("bob", "after")
        await wait_last(bob, "alice", "after")
        await bob.send_text("alice", "reply")
        await wait_last(alice, "bob", "reply")
        await shut(alice, bob)


async def test_one_decryption_error_per_sender_per_interval(tmp_path: Path) -> None:
    """Failures anyone can cause under a contact's name make at most one report."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        await bob.disconnect()
        bob.sessions.forget("alice")
        for n in range(5):
            await alice.send_text("bob", f"lost {n}")
        await online(bob)
        await wait_for(lambda: len([m for m in alice.history("bob")
                                    if "could not decrypt" in m.text]) >= 1)
        await asyncio.sleep(0.5)
        reports = [m for m in alice.history("bob") if "could not decrypt" in m.text]
        assert len(reports) == 1
        await shut(alice, bob)


def _wipe_account(relay_dir: Path, name: str) -> None:
    """What deleting an account does on the relay (the operator's or the user's own
    delete): the name is free again, its keys and queue are gone."""
    db = sqlite3.connect(relay_dir / "relay.sqlite3")
    with db:
        for table in ("envelopes", "one_time_prekeys", "kem_one_time_prekeys",
                      "signed_prekeys"):
            column = "recipient" if table == "envelopes" else "username"
            db.execute(f"DELETE FROM {table} WHERE {column}=?", (name,))
        db.execute("DELETE FROM accounts WHERE username=?", (name,))
    db.close()


async def test_a_contact_who_reinstalled_with_a_new_key_is_found_out(tmp_path: Path) -> None:
    """A new identity key cannot open envelopes sealed to the old one, so no decryption
    error can come: the sender asks the relay for the key of a contact whose messages
    stay unconfirmed, shows the key change, and sends again once it is accepted."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        await bob.send_text("alice", "hi")
        await wait_last(alice, "bob", "hi")
        await shut(bob)
        _wipe_account(tmp_path / "relay", "bob")
        new_bob = await make_client(tmp_path, "bob-again", relay.url, connect=False)
        new_bob.profile.username = "bob"
        new_bob.profiles.save(new_bob.profile)
        await online(new_bob)

        lost = await alice.send_text("bob", "are you there?")
        await wait_for(lambda: any(m.state is State.UNDECRYPTABLE
                                   for m in new_bob.history(UNKNOWN_SENDER)))
        real = alice.clock
        alice = await reopen(alice, connect=False)
        alice.clock = lambda: real() + 2 * 3600  # no receipt for two hours
        await online(alice)
        contact = alice.contact("bob")
        assert contact is not None and contact.key_changed
        [row] = [m for m in alice.history("bob") if m.row_id == lost.row_id]
        assert row.state is State.FAILED and "identity key has changed" in row.error

        alice.accept_key("bob")
        alice = await reopen(alice)  # the next login sends it, in a new session
        await wait_last(new_bob, "alice", "are you there?")
        await wait_for(lambda: next(m for m in alice.history("bob")
                                if m.row_id == lost.row_id).state is State.DELIVERED)
        await shut(alice, new_bob)
