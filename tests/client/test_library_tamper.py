"""What a hostile relay (or anyone who can inject envelopes) can do: tampered,
replayed and withheld envelopes. None of it may show a wrong text, show a text
twice, hide that something went wrong, or break the session.

Envelopes are taken out of the relay on a second connection logged in as the
recipient (`intercept`) and handed to the recipient's client with
`Client.receive`, as the relay would deliver them, possibly altered."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from client.client import Client
from client.history import UNKNOWN_SENDER
from client.records import Direction, State
from protocol.e2e.sealed import SealedContent, seal, unseal
from protocol.wire.frames import Deliver
from tests.client.helpers import (
    intercept,
    make_client,
    notices,
    online,
    received,
    shut,
    wait_for,
    wait_state,
)
from tests.support import RunningRelay, running_relay


async def _conversation(tmp_path: Path, relay: RunningRelay) -> tuple[Client, Client]:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hello")
    await wait_for(lambda: received(bob, "alice") == ["hello"])
    reply = await bob.send_text("alice", "hi")
    await wait_for(lambda: received(alice, "bob") == ["hi"])
    await wait_state(bob, "alice", reply, State.DELIVERED)
    await bob.disconnect()  # from here on, bob's envelopes go through the test
    return alice, bob


async def _sent_while_away(relay: RunningRelay, alice: Client, bob: Client,
                           *words: str) -> list[Deliver]:
    for text in words:
        message = await alice.send_text("bob", text)
        await wait_state(alice, "bob", message, State.SENT)
    taken = await intercept(relay.url, bob)
    assert len(taken) == len(words)
    return taken


async def _first_contact(relay: RunningRelay, alice: Client, bob: Client, word: str
                         ) -> Deliver:
    """Alice's first message to bob, who is away: bob is given the capability alice's
    client sends first (PROTOCOL.md 9.1), the text is returned."""
    message = await alice.send_text("bob", word)
    await wait_state(alice, "bob", message, State.SENT)
    capability, text = await intercept(relay.url, bob)
    await online(bob)  # a first contact's claimed key is checked with the relay
    assert (await bob.receive(capability)).messages == []
    return text


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _new_id(deliver: Deliver, body: bytes | None = None) -> Deliver:
    return dataclasses.replace(deliver, envelope_id=os.urandom(16),
                               body=deliver.body if body is None else body)


async def test_tampered_envelopes_show_a_placeholder_and_break_nothing(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _conversation(tmp_path, relay)
        [genuine] = await _sent_while_away(relay, alice, bob, "the real text")

        # a flipped byte in the sealed envelope: it does not even open
        result = await bob.receive(_new_id(genuine, _flip(genuine.body, len(genuine.body) // 2)))
        [placeholder] = result.messages
        assert placeholder.state is State.UNDECRYPTABLE and placeholder.text == ""
        assert "not sealed to this key" in placeholder.error
        assert [m.state for m in bob.history(UNKNOWN_SENDER)] == [State.UNDECRYPTABLE]
        assert placeholder.error in [m.error for m in bob.unread()]  # not hidden

        # a flipped byte in the message inside, resealed to bob: the envelope opens
        # and names alice, but the message fails authentication, so "alice" is only a
        # claim: the placeholders go to the unknown sender, collapsed into one row
        inner = unseal(bob.identity, genuine.body)
        for count, index in enumerate((5, len(inner.message) - 1), 2):  # header, ciphertext
            forged = seal(bob.identity.public, SealedContent(
                inner.certificate, inner.kind, _flip(inner.message, index)))
            result = await bob.receive(_new_id(genuine, forged))
            [placeholder] = result.messages
            assert placeholder.contact == UNKNOWN_SENDER and placeholder.count == count
            assert placeholder.state is State.UNDECRYPTABLE
            assert "failed authentication (it claims to come from alice" in placeholder.error
        assert [m.count for m in bob.history(UNKNOWN_SENDER)] == [3]
        assert not [m for m in bob.history("alice") if m.state is State.UNDECRYPTABLE]
        assert bob.contact("alice").unread == 1  # type: ignore[union-attr]

        # the genuine message still decrypts: the session was not changed
        result = await bob.receive(genuine)
        assert [m.text for m in result.messages] == ["the real text"]
        assert received(bob, "alice") == ["hello", "the real text"]
        assert "the real text" not in [m.text for m in bob.history(UNKNOWN_SENDER)]

        await online(bob)
        await bob.send_text("alice", "got it")
        await wait_for(lambda: received(alice, "bob") == ["hi", "got it"])
        await alice.send_text("bob", "good")
        await wait_for(lambda: received(bob, "alice")[-1:] == ["good"])
        await shut(alice, bob)


async def test_replayed_envelope_is_rejected_as_a_duplicate(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _conversation(tmp_path, relay)
        [genuine] = await _sent_while_away(relay, alice, bob, "say it once")
        assert [m.text for m in (await bob.receive(genuine)).messages] == ["say it once"]

        # the same envelope id again (a redelivery) is dropped without a word
        assert (await bob.receive(genuine)).messages == []
        # the same body under a new envelope id (a replay) is refused, visibly
        [notice] = (await bob.receive(_new_id(genuine))).messages
        assert notice.direction is Direction.NOTICE and "duplicate" in notice.text
        assert received(bob, "alice") == ["hello", "say it once"]
        assert bob.contact("alice").unread == 2  # type: ignore[union-attr]

        # and an old message from before bob's reply (an earlier chain) as well
        await online(bob)
        await bob.send_text("alice", "still fine")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["still fine"])
        [notice] = (await bob.receive(_new_id(genuine))).messages
        assert "duplicate" in notice.text
        assert received(bob, "alice") == ["hello", "say it once"]
        await alice.send_text("bob", "next")
        await wait_for(lambda: received(bob, "alice")[-1:] == ["next"])
        await shut(alice, bob)


async def test_replayed_initial_message_is_not_shown_twice(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        first = await _first_contact(relay, alice, bob, "first contact")
        assert [m.text for m in (await bob.receive(first)).messages] == ["first contact"]
        [notice] = (await bob.receive(_new_id(first))).messages
        assert "duplicate" in notice.text
        assert received(bob, "alice") == ["first contact"]
        await bob.send_text("alice", "hello alice")
        await wait_for(lambda: received(alice, "bob") == ["hello alice"])
        await shut(alice, bob)


async def test_withheld_message_shows_a_gap_notice(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _conversation(tmp_path, relay)
        one, two, three = await _sent_while_away(relay, alice, bob, "one", "two", "three")
        await bob.receive(one)
        assert not [n for n in notices(bob, "alice") if "not arrived" in n]
        await bob.receive(three)  # 'two' is withheld
        assert received(bob, "alice") == ["hello", "one", "three"]
        gap = [n for n in notices(bob, "alice") if "not arrived" in n]
        assert gap == ["1 earlier message from alice has not arrived (the message counters "
                       "show a gap)."]
        # when it turns up after all, it still decrypts, once
        assert [m.text for m in (await bob.receive(two)).messages] == ["two"]
        assert received(bob, "alice") == ["hello", "one", "three", "two"]
        assert len([n for n in notices(bob, "alice") if "not arrived" in n]) == 1

        await online(bob)
        await bob.send_text("alice", "all three")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["all three"])
        await shut(alice, bob)


async def test_an_old_initial_message_cannot_set_a_session_up_again(tmp_path: Path) -> None:
    """Once the session an initial message set up has been replaced (twice: neither the
    current nor the previous one), replaying that message is a duplicate, not a new
    session and not the old text shown again."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        first = await _first_contact(relay, alice, bob, "first contact")
        await bob.receive(first)
        for restart in ("second start", "third start"):
            alice.sessions.forget("bob")  # alice starts over
            await alice.send_text("bob", restart)
            await wait_for(functools.partial(_arrived, bob, restart))
        [notice] = (await bob.receive(_new_id(first))).messages
        assert "duplicate" in notice.text
        assert received(bob, "alice").count("first contact") == 1
        await shut(alice, bob)


def _arrived(client: Client, text: str) -> bool:
    return text in received(client, "alice")
