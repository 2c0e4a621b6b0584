"""The client library against a real relay on a loopback port."""

from __future__ import annotations

from pathlib import Path

from client.records import Direction, State
from tests.client.helpers import make_client, texts, wait_for
from tests.support import running_relay


async def test_two_users_exchange_messages_both_ways(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        sent = await alice.send_text("bob", "hello bob")
        await wait_for(lambda: "hello bob" in texts(bob.history("alice")))
        await bob.send_text("alice", "hi alice")
        await wait_for(lambda: "hi alice" in texts(alice.history("bob")))
        await wait_for(lambda: any(m.state is State.DELIVERED
                                   for m in alice.history("bob") if m.row_id == sent.row_id))
        incoming = [m for m in bob.history("alice") if m.direction is Direction.IN]
        assert incoming[0].unread
        await bob.mark_read("alice")
        await wait_for(lambda: any(m.state is State.READ
                                   for m in alice.history("bob") if m.row_id == sent.row_id))
        for c in (alice, bob):
            await c.disconnect()
            c.close()
