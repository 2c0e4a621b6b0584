"""Issue 9 item 7: a contact who lost the session (a reinstalled or restored profile)
showed an undecryptable placeholder while the sender saw "sent" forever. Now the
recipient sends a decryption error (content kind 3, PROTOCOL.md 9.2) in a new session
from the sender's bundle; the sender sends every unconfirmed message again in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client.history import UNKNOWN_SENDER
from client.records import Direction, State
from tests.client.helpers import make_client, online, received, shut, wait_for, wait_last
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
