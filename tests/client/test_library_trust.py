"""Trust: pinned identity keys, safety numbers, and a changed key that blocks
sending until the user accepts it.

A different identity registering as 'bob' is made possible by a second relay:
bob registers on relay A, alice talks to him there, then another key registers
as 'bob' on relay B and alice's profile is pointed at relay B."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.client import Client
from client.errors import ClientError, KeyChangeBlocked
from client.records import Direction, State, Trust
from tests.client.helpers import (
    make_client,
    notices,
    online,
    received,
    reopen,
    shut,
    state_of,
    wait_for,
    wait_state,
)
from tests.support import RunningRelay, running_relay


def _digits(number: str) -> str:
    return number.replace(" ", "").replace("\n", "")


async def _talk(alice: Client, bob: Client) -> None:
    await alice.send_text("bob", "hi bob")
    await wait_for(lambda: received(bob, "alice") == ["hi bob"])
    reply = await bob.send_text("alice", "hi alice")
    await wait_for(lambda: received(alice, "bob") == ["hi alice"])
    await wait_state(bob, "alice", reply, State.DELIVERED)
    await alice.mark_read("bob")
    await wait_state(bob, "alice", reply, State.READ)


async def _move(client: Client, relay: RunningRelay) -> None:
    """Points a profile at another relay, where it registers its key anew."""
    await client.disconnect()
    client.profile.server = relay.url
    client.profile.registered = False
    client._save_profile()
    await online(client)


def _change_notices(client: Client, name: str) -> list[str]:
    return [n for n in notices(client, name) if "CHANGED" in n]


async def test_safety_numbers_match_on_both_sides(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        await _talk(alice, bob)
        await alice.send_text("carol", "hi carol")
        await wait_for(lambda: received(carol, "alice") == ["hi carol"])

        number, qr = alice.safety_number("bob")
        assert (number, qr) == bob.safety_number("alice")
        assert len(_digits(number)) == 60 and _digits(number).isdigit()
        assert len(number.split()) == 12 and len(number.splitlines()) == 3
        assert alice.safety_number("carol")[0] == carol.safety_number("alice")[0]
        assert alice.safety_number("carol")[0] != number

        assert alice.contact("bob").trust is Trust.UNVERIFIED  # type: ignore[union-attr]
        assert alice.verify("bob").trust is Trust.VERIFIED
        alice = await reopen(alice)  # trust is kept in the store
        assert alice.contact("bob").trust is Trust.VERIFIED  # type: ignore[union-attr]
        assert any("verified" in n for n in notices(alice, "bob"))
        with pytest.raises(ClientError):
            alice.accept_key("bob")  # nothing to accept
        await shut(alice, bob, carol)


async def test_key_change_found_in_a_fetched_bundle_blocks_sending(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "a") as relay_a, \
            running_relay(tmp_path / "b") as relay_b:
        alice = await make_client(tmp_path, "alice", relay_a.url)
        bob = await make_client(tmp_path, "bob", relay_a.url)
        await _talk(alice, bob)
        old_number = alice.safety_number("bob")[0]
        await _move(alice, relay_b)
        new_bob = await make_client(tmp_path / "new", "bob", relay_b.url)
        # alice has bob's key pinned but no session any more (as after a reset), so
        # her next message starts one from the bundle relay B hands out
        alice.sessions.forget("bob")

        with pytest.raises(KeyChangeBlocked):
            await alice.send_text("bob", "are you there?")
        contact = alice.contact("bob")
        assert contact is not None and contact.key_changed
        assert contact.identity == bob.identity.public  # still the pinned key
        assert contact.pending_identity == new_bob.identity.public
        [warning] = _change_notices(alice, "bob")
        assert "Nothing will be sent" in warning
        assert "WAS VERIFIED" not in warning
        # nothing was written, queued or sent to the new key
        assert "are you there?" not in [m.text for m in alice.history("bob")]
        assert alice.store.outbox() == []
        with pytest.raises(KeyChangeBlocked):  # still blocked, and no second warning
            await alice.send_text("bob", "hello?")
        assert len(_change_notices(alice, "bob")) == 1
        with pytest.raises(KeyChangeBlocked):
            alice.verify("bob")
        alice = await reopen(alice)  # the block is stored, not only in memory
        with pytest.raises(KeyChangeBlocked):
            await alice.send_text("bob", "hello?")
        assert alice.safety_number("bob")[0] != old_number  # the number of the new key
        assert await relay_b.relay.storage.queued("bob", 0, 10) == []

        accepted = alice.accept_key("bob")
        assert not accepted.key_changed and accepted.trust is Trust.UNVERIFIED
        assert accepted.identity == new_bob.identity.public
        sent = await alice.send_text("bob", "welcome back")
        await wait_for(lambda: received(new_bob, "alice") == ["welcome back"])
        await wait_state(alice, "bob", sent, State.DELIVERED)
        await new_bob.send_text("alice", "thanks")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["thanks"])
        assert alice.safety_number("bob") == new_bob.safety_number("alice")
        await shut(alice, bob, new_bob)


async def test_key_change_in_an_incoming_message(tmp_path: Path) -> None:
    """The new identity writes first: its message is shown under the warning, and
    alice still cannot reply until she accepts the key."""
    async with running_relay(tmp_path / "a") as relay_a, \
            running_relay(tmp_path / "b") as relay_b:
        alice = await make_client(tmp_path, "alice", relay_a.url)
        bob = await make_client(tmp_path, "bob", relay_a.url)
        await _talk(alice, bob)
        await _move(alice, relay_b)
        new_bob = await make_client(tmp_path / "new", "bob", relay_b.url)

        first = await new_bob.send_text("alice", "new phone, same bob")
        await wait_for(lambda: "new phone, same bob" in received(alice, "bob"))
        await new_bob.send_text("alice", "really")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["really"])
        contact = alice.contact("bob")
        assert contact is not None and contact.key_changed and contact.unread == 2
        history = alice.history("bob")
        warning = next(m for m in history if "CHANGED" in m.text)
        shown = next(m for m in history if m.text == "new phone, same bob")
        assert warning.direction is Direction.NOTICE and warning.row_id < shown.row_id
        assert len(_change_notices(alice, "bob")) == 1

        with pytest.raises(KeyChangeBlocked):
            await alice.send_text("bob", "who is this?")
        await alice.mark_read("bob")  # no read receipt goes to an unaccepted key
        assert alice.store.outbox() == []
        assert new_bob.history("alice")[-1].state is State.SENT

        alice.accept_key("bob")
        assert alice.contact("bob").trust is Trust.UNVERIFIED  # type: ignore[union-attr]
        reply = await alice.send_text("bob", "ok, new bob")
        await wait_for(lambda: received(new_bob, "alice") == ["ok, new bob"])
        await wait_state(alice, "bob", reply, State.DELIVERED)
        last = await new_bob.send_text("alice", "and the ratchet moves on")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["and the ratchet moves on"])
        await alice.mark_read("bob")
        await wait_state(new_bob, "alice", last, State.READ)
        # what alice read while the key was not accepted was never acknowledged to it
        assert state_of(new_bob, "alice", first.row_id) is State.SENT
        assert not [m for m in alice.history("bob") if m.state is State.UNDECRYPTABLE]
        await shut(alice, bob, new_bob)


async def test_verified_contact_whose_key_changes_is_unverified_loudly(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "a") as relay_a, \
            running_relay(tmp_path / "b") as relay_b:
        alice = await make_client(tmp_path, "alice", relay_a.url)
        bob = await make_client(tmp_path, "bob", relay_a.url)
        await _talk(alice, bob)
        assert alice.safety_number("bob") == bob.safety_number("alice")
        alice.verify("bob")
        await _move(alice, relay_b)
        new_bob = await make_client(tmp_path / "new", "bob", relay_b.url)
        await new_bob.send_text("alice", "hello again")
        await wait_for(lambda: "hello again" in received(alice, "bob"))

        contact = alice.contact("bob")
        assert contact is not None and contact.key_changed
        assert contact.trust is Trust.UNVERIFIED and contact.was_verified
        [warning] = _change_notices(alice, "bob")
        assert "WAS VERIFIED" in warning
        with pytest.raises(KeyChangeBlocked):
            await alice.send_text("bob", "hm")
        alice.accept_key("bob")
        assert alice.contact("bob").trust is Trust.UNVERIFIED  # type: ignore[union-attr]
        assert alice.safety_number("bob") == new_bob.safety_number("alice")
        assert alice.verify("bob").trust is Trust.VERIFIED
        await shut(alice, bob, new_bob)
