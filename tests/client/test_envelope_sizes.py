"""What the relay can learn from envelope sizes, seen from its own storage while real
clients talk (PROTOCOL.md section 10.1): every stored body is one of the size classes,
and neither the sender's name nor first-versus-later nor receipt-versus-text shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.client import Client
from client.errors import ClientError
from client.records import Direction, State
from protocol.e2e.content import Text
from protocol.e2e.size_classes import ENVELOPE_CLASSES, envelope_size
from server.storage import Storage
from tests.client.helpers import (
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

LONG = "a-name-of-exactly-32-characters0"
TEXTS = ["hi", "x" * 200, "y" * 700, "z" * 3000]  # texts carry the sender's head (19.8)
EXPECTED = [2048, 2048, 4096, 8192]


async def stored_sizes(storage: Storage, recipient: str) -> list[int]:
    return [len(e.body) for e in await storage.queued(recipient, 0, 10_000)]


async def send_all(sender: Client, recipient: str) -> None:
    for text in TEXTS:
        message = await sender.send_text(recipient, text)
        await wait_state(sender, recipient, message, State.SENT)


async def settled(client: Client) -> None:
    await wait_for(lambda: client.store.outbox() == [])


async def test_stored_envelopes_show_only_their_class(tmp_path: Path) -> None:
    assert [envelope_size(len(Text(bytes(16), 0, t).encode())) for t in TEXTS] == EXPECTED
    async with running_relay(tmp_path / "relay") as relay:
        storage = relay.relay.storage
        amy = await make_client(tmp_path, "amy", relay.url)
        long = await make_client(tmp_path, LONG, relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)

        # first (PreKey) messages from a 3- and a 32-character name, bob offline
        await bob.disconnect()
        await send_all(amy, "bob")
        await send_all(long, "bob")
        first = await stored_sizes(storage, "bob")
        # each first contact starts with the sender's delivery capability (PROTOCOL.md
        # 9.1), in the smallest class like a short text or a receipt
        assert first == [2048, *EXPECTED] * 2

        # bob answers both while they are offline: a delivery receipt for each message,
        # the same texts, and one READ receipt for all four
        await amy.disconnect()
        await long.disconnect()
        await online(bob)
        await wait_for(lambda: len(received(bob, "amy")) == len(received(bob, LONG)) == 4)
        await settled(bob)
        await send_all(bob, "amy")
        await send_all(bob, LONG)
        assert await bob.mark_read("amy") == await bob.mark_read(LONG) == 4
        await settled(bob)
        for name in ("amy", LONG):
            # bob's capability, DELIVERED receipts (one per page of their messages he
            # took: one to four), the texts, one READ receipt
            sizes = await stored_sizes(storage, name)
            small = len(sizes) - len(EXPECTED) - 1
            assert 2 <= small <= 5
            assert sizes == [2048] * small + EXPECTED + [2048]

        # later (ratchet) messages: the same sizes as the first ones
        await bob.disconnect()
        await online(amy)
        await online(long)
        for client in (amy, long):
            await wait_last(client, "bob", TEXTS[-1])
            await settled(client)
        receipts = await stored_sizes(storage, "bob")
        # amy's and long's delivery receipts for bob's texts (one per page)
        assert 2 <= len(receipts) <= 8 and set(receipts) == {2048}
        await send_all(amy, "bob")
        await send_all(long, "bob")
        later = (await stored_sizes(storage, "bob"))[len(receipts):]
        assert later == EXPECTED * 2  # as the first ones, without the capability

        everything = [len(e.body) for name in ("amy", LONG, "bob")
                      for e in await storage.queued(name, 0, 10_000)]
        assert set(everything) <= set(ENVELOPE_CLASSES)
        await online(bob)
        await wait_last(bob, LONG, TEXTS[-1])
        assert received(bob, "amy") == received(bob, LONG) == TEXTS * 2
        await shut(amy, long, bob)


async def test_a_message_over_the_relays_envelope_limit_is_refused_locally(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", max_envelope=4096) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        with pytest.raises(ClientError, match=r"message too long.*8192.*4096"):
            await alice.send_text("bob", "z" * 3000)
        assert [m.text for m in alice.history("bob") if m.direction is Direction.OUT] == ["hello"]
        assert alice.store.outbox() == []
        fits = "y" * 2000  # a 4096-byte envelope
        await alice.send_text("bob", fits)
        await wait_last(bob, "alice", fits)
        assert received(bob, "alice") == ["hello", fits]
        # the refused message left no gap in the session
        assert not any("not arrived" in n for n in notices(bob, "alice"))
        await shut(alice, bob)


async def test_read_receipts_are_split_to_fit_the_relays_limit(tmp_path: Path) -> None:
    """Under max_envelope 2048 a READ receipt holds at most 39 ids; bob reads 45
    messages and alice still sees every one of them read."""
    async with running_relay(tmp_path / "relay", max_envelope=2048) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        sent = [await alice.send_text("bob", f"m{i}") for i in range(45)]
        await wait_for(lambda: len(received(bob, "alice")) == 45)
        assert await bob.mark_read("alice") == 45
        for message in sent:
            await wait_state(alice, "bob", message, State.READ)
        await shut(alice, bob)
