"""Two and three users exchanging messages through a real relay: delivery both
ways, receipts moving the sender's message state, and offline delivery."""

from __future__ import annotations

from pathlib import Path

from client.records import Direction, Message, State
from tests.client.helpers import (
    StateLog,
    intercept,
    make_client,
    notices,
    online,
    received,
    shut,
    wait_for,
    wait_last,
    wait_state,
)
from tests.support import running_relay

DELIVERY = [State.SENDING, State.SENT, State.DELIVERED, State.READ]


async def test_two_users_both_ways_with_receipts(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        log = StateLog(alice)

        # bob is away: alice's message reaches the relay (sent) but not bob
        await bob.disconnect()
        first = await alice.send_text("bob", "hello bob")
        assert first.state is State.SENDING
        await wait_state(alice, "bob", first, State.SENT)
        assert alice.store.outbox() == []

        await online(bob)  # bob's client acknowledges with a delivery receipt
        assert received(bob, "alice") == ["hello bob"]
        assert [c.unread for c in bob.contacts()] == [1]
        await wait_state(alice, "bob", first, State.DELIVERED)

        assert await bob.mark_read("alice") == 1
        assert bob.contact("alice").unread == 0  # type: ignore[union-attr]
        await wait_state(alice, "bob", first, State.READ)
        assert log.of(first) == DELIVERY

        # and the other way, several turns, both online
        for turn in range(3):
            reply = await bob.send_text("alice", f"reply {turn}")
            await wait_last(alice, "bob", f"reply {turn}")
            await wait_state(bob, "alice", reply, State.DELIVERED)
            more = await alice.send_text("bob", f"more {turn}")
            await wait_last(bob, "alice", f"more {turn}")
            await wait_state(alice, "bob", more, State.DELIVERED)
        await alice.mark_read("bob")
        await wait_state(bob, "alice", reply, State.READ)

        assert received(bob, "alice") == ["hello bob", "more 0", "more 1", "more 2"]
        assert received(alice, "bob") == ["reply 0", "reply 1", "reply 2"]
        outgoing = [m for m in alice.history("bob") if m.direction is Direction.OUT]
        assert [m.text for m in outgoing] == ["hello bob", "more 0", "more 1", "more 2"]
        # bob has not read 'more 0..2' yet: delivered, not read
        assert [m.state for m in outgoing] == [State.READ] + [State.DELIVERED] * 3
        assert [m.name for m in alice.contacts()] == ["bob"]
        assert not any("duplicate" in n or "not arrived" in n
                       for n in notices(alice, "bob") + notices(bob, "alice"))
        await shut(alice, bob)


async def test_three_users(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        clients = {"alice": alice, "bob": bob, "carol": carol}
        logs = {name: StateLog(c) for name, c in clients.items()}
        sent: list[tuple[str, str, Message]] = []
        for sender, recipient in [("alice", "bob"), ("alice", "carol"), ("carol", "bob"),
                                  ("bob", "alice"), ("carol", "alice"), ("bob", "carol")]:
            text = f"{sender} to {recipient}"
            message = await clients[sender].send_text(recipient, text)
            sent.append((sender, recipient, message))
            await wait_last(clients[recipient], sender, text)
            assert received(clients[recipient], sender) == [text]

        for sender, recipient, message in sent:
            await wait_state(clients[sender], recipient, message, State.DELIVERED)
        for name, client in clients.items():
            for other in client.contacts():
                await client.mark_read(other.name)
            assert {c.name for c in client.contacts()} == set(clients) - {name}
            assert all(c.unread == 0 for c in client.contacts())
        for sender, recipient, message in sent:
            await wait_state(clients[sender], recipient, message, State.READ)
            assert logs[sender].of(message)[-2:] == [State.DELIVERED, State.READ]
        # nothing crossed between conversations
        assert received(bob, "alice") == ["alice to bob"]
        assert received(bob, "carol") == ["carol to bob"]
        assert received(carol, "alice") == ["alice to carol"]
        assert received(carol, "bob") == ["bob to carol"]
        assert received(alice, "bob") == ["bob to alice"]
        assert received(alice, "carol") == ["carol to alice"]
        await shut(alice, bob, carol)


async def test_offline_delivery_in_order_exactly_once(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        wanted = [f"message {i}" for i in range(8)]
        sent = [await alice.send_text("bob", text) for text in wanted]
        for message in sent:
            await wait_state(alice, "bob", message, State.SENT)
        assert received(bob, "alice") == []

        await online(bob)
        assert received(bob, "alice") == wanted
        assert bob.contact("alice").unread == len(wanted)  # type: ignore[union-attr]
        assert [m.text for m in bob.unread()] == wanted
        for message in sent:
            await wait_state(alice, "bob", message, State.DELIVERED)
        assert notices(bob, "alice") == [notices(bob, "alice")[0]]  # only "started"

        # the relay dropped what bob acknowledged: logging in again brings nothing
        await bob.disconnect()
        await online(bob)
        assert received(bob, "alice") == wanted

        await bob.send_text("alice", "got them all")
        await wait_for(lambda: received(alice, "bob") == ["got them all"])
        await shut(alice, bob)


async def test_both_start_the_conversation_at_once(tmp_path: Path) -> None:
    """Alice and bob each write to the other before either saw the other's first
    message: two sessions were set up at once, and the conversation must still work
    both ways afterwards."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        # alice's first message is held back (taken out of the relay) until bob,
        # who has not seen it, has started his own session with alice
        await bob.disconnect()
        await alice.send_text("bob", "hi bob")
        held = await intercept(relay.url, bob)
        assert len(held) == 2  # alice's capability (PROTOCOL.md 9.1), then the text
        await online(bob)
        assert bob.contact("alice") is None
        await bob.send_text("alice", "hi alice")
        await wait_for(lambda: received(alice, "bob") == ["hi alice"])
        for deliver in held:
            await bob.receive(deliver)
        assert received(bob, "alice") == ["hi bob"]
        for turn in range(3):
            await alice.send_text("bob", f"a{turn}")
            await bob.send_text("alice", f"b{turn}")
            await wait_last(bob, "alice", f"a{turn}")
            await wait_last(alice, "bob", f"b{turn}")
        assert received(bob, "alice") == ["hi bob", "a0", "a1", "a2"]
        assert received(alice, "bob") == ["hi alice", "b0", "b1", "b2"]
        await shut(alice, bob)


async def test_messages_waiting_at_login_are_confirmed_by_one_receipt(tmp_path: Path) -> None:
    """What the relay held for bob is handled as one page, and bob confirms it with one
    DELIVERED receipt naming every message, not one receipt (and envelope) each."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        answer = await bob.send_text("alice", "hi")
        await wait_state(bob, "alice", answer, State.DELIVERED)

        await bob.disconnect()
        sent = [await alice.send_text("bob", f"queued {i}") for i in range(6)]
        for message in sent:
            await wait_state(alice, "bob", message, State.SENT)
        await alice.disconnect()
        await online(bob)
        await wait_for(lambda: received(bob, "alice")[1:] == [m.text for m in sent])
        await wait_for(lambda: bob.store.outbox() == [])
        assert len(await relay.relay.storage.queued("alice", 0, 100)) == 1

        await online(alice)
        for message in sent:
            await wait_state(alice, "bob", message, State.DELIVERED)
        await shut(alice, bob)
