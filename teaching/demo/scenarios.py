"""What a malicious relay can and cannot do, as runnable, narrated scenarios.

Each scenario drives real clients through a `HostileRelay` and returns what the users
would notice, so the tests can assert it and the demo can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from client.client import Client
from client.errors import KeyChangeBlocked
from client.history import UNKNOWN_SENDER
from client.records import Direction, Message, State
from protocol.e2e.sealed import unseal
from protocol.e2e.session import Session
from protocol.wire.errors import ProtocolError
from teaching.demo.world import World, wait_until
from teaching.hostile import HostileRelay
from teaching.names import Scenario


@dataclass
class Outcome:
    """What the scenario showed, in plain words and as facts the tests check."""

    name: str
    lesson: str
    facts: dict[str, Any] = field(default_factory=dict)


def texts(client: Client, peer: str) -> list[str]:
    return [m.text for m in client.history(peer) if m.direction is Direction.IN and m.text]


def last(client: Client, peer: str) -> Message:
    return client.history(peer)[-1]


async def say(world: World, sender: str, recipient: str, text: str,
              wait: bool = True) -> Message:
    clients = world.clients()
    message = await clients[sender].send_text(recipient, text)
    world.narrate(f"{sender.capitalize()} sent: {text!r}")
    if wait:
        await wait_until(lambda: text in texts(clients[recipient], sender))
        world.narrate(f"{recipient.capitalize()} decrypted it.")
    if world.pace:
        await asyncio.sleep(world.pace)
    return message


def hostile(world: World) -> HostileRelay:
    assert isinstance(world.relay, HostileRelay)
    return world.relay


async def mitm_first_contact(world: World) -> Outcome:
    relay = hostile(world)
    relay.start_mitm("alice", "bob")
    world.narrate("The relay will answer Alice's first request for Bob's keys with its own.")
    await say(world, "alice", "bob", "Hi Bob, it's Alice. Is this really you?")
    await say(world, "bob", "alice", "Yes, it's me, Bob!")
    alice_sees, _ = world.alice.safety_number("bob")
    bob_sees, _ = world.bob.safety_number("alice")
    world.narrate("Messages flowed both ways, and the relay read every one of them.")
    world.narrate(f"Alice's screen shows safety number {alice_sees.splitlines()[0]} ... and "
                  f"Bob's shows {bob_sees.splitlines()[0]} ...: they DIFFER.")
    world.narrate("A safety number is computed from both identity keys. Alice's is made "
                  "from the relay's fake 'Bob' key, Bob's from the fake 'Alice' key, so "
                  "comparing them (in person, or over another channel) exposes the relay.")
    return Outcome(
        "mitm-first-contact",
        "A relay can impersonate someone at first contact; comparing safety numbers "
        "catches it.",
        {"alice_sees": alice_sees, "bob_sees": bob_sees, "match": alice_sees == bob_sees,
         "alice_got": texts(world.alice, "bob"), "bob_got": texts(world.bob, "alice")})


async def key_swap(world: World) -> Outcome:
    await say(world, "alice", "bob", "Hello Bob")
    await say(world, "bob", "alice", "Hello Alice")
    await hostile(world).claim_new_key("alice", "bob", "Hi, it's Bob on a new phone. "
                                       "Send me the code.")
    await wait_until(lambda: (c := world.alice.contact("bob")) is not None and c.key_changed)
    world.narrate("Alice's client shows a warning: Bob's identity key has changed.")
    blocked = False
    try:
        await world.alice.send_text("bob", "The code is 1234")
    except KeyChangeBlocked:
        blocked = True
        world.narrate("Alice tried to answer: her client refused to send anything until "
                      "she compares safety numbers and accepts the new key.")
    return Outcome(
        "key-swap",
        "A relay can claim a key changed; the client warns loudly and sends nothing to the "
        "new key until the user accepts it.",
        {"blocked": blocked,
         "warning": any("CHANGED" in m.text for m in world.alice.history("bob")),
         "alice_got": texts(world.alice, "bob")})


async def tamper(world: World) -> Outcome:
    await say(world, "alice", "bob", "First message")
    hostile(world).arm_tamper("bob")
    await world.alice.send_text("bob", "This one will be tampered with")
    world.narrate("Alice sent a second message; the relay will flip a bit in it.")
    await wait_until(lambda: any(m.state is State.UNDECRYPTABLE
                                 for m in world.bob.history(UNKNOWN_SENDER)))
    placeholder = next(m for m in world.bob.history(UNKNOWN_SENDER)
                       if m.state is State.UNDECRYPTABLE)
    world.narrate(f"Bob's client shows a placeholder: {placeholder.error}.")
    await say(world, "alice", "bob", "And this one arrives fine")
    world.narrate("Bob's session kept working: the next message decrypted.")
    return Outcome(
        "tamper",
        "A relay can damage ciphertext but not forge it: the change is detected, shown, "
        "and the conversation goes on.",
        {"placeholder": placeholder.error, "bob_got": texts(world.bob, "alice")})


async def replay(world: World) -> Outcome:
    relay = hostile(world)
    before = len(relay.delivered.get("bob", []))
    await say(world, "alice", "bob", "Please transfer 10 euros to Carol")
    await relay.replay("bob", before)
    await wait_until(lambda: any("duplicate" in m.text.lower()
                                 for m in world.bob.history("alice")))
    world.narrate("Bob's client rejected the replayed envelope as a duplicate: the ratchet "
                  "had already used and deleted that message key.")
    got = texts(world.bob, "alice")
    return Outcome(
        "replay",
        "A relay can replay envelopes; each message decrypts once and a replay is "
        "rejected.",
        {"bob_got": got, "times_shown": got.count("Please transfer 10 euros to Carol")})


async def drop(world: World) -> Outcome:
    await say(world, "alice", "bob", "Message one")
    hostile(world).arm_drop("bob")
    dropped = await world.alice.send_text("bob", "Message two (the relay drops this)")
    world.narrate("Alice sent message two; the relay said 'stored' and threw it away.")
    await say(world, "alice", "bob", "Message three")
    await wait_until(lambda: any("not arrived" in m.text for m in world.bob.history("alice")))
    world.narrate("Bob's client noticed: message three's counter says one message came "
                  "before it that never arrived.")
    state = next(m.state for m in world.alice.history("bob") if m.row_id == dropped.row_id)
    return Outcome(
        "drop",
        "A relay can drop messages, but not silently: the ratchet's counters reveal the "
        "gap, and the sender never sees 'delivered'.",
        {"bob_got": texts(world.bob, "alice"), "dropped_state": state.value,
         "gap_notice": any("not arrived" in m.text for m in world.bob.history("alice"))})


async def keep_everything(world: World) -> Outcome:
    relay = hostile(world)
    for i in range(3):
        await say(world, "alice", "bob", f"Secret number {i + 1}")
        await say(world, "bob", "alice", f"Got secret {i + 1}")
    kept = [k for k in relay.kept if k.recipient == "bob"]
    world.narrate(f"The relay secretly kept {len(relay.kept)} envelopes. No cryptography "
                  "can stop a relay from keeping ciphertext; it can only make it useless.")
    world.narrate("Now the relay 'seizes' Bob's device: his identity key and his current "
                  "session state.")
    identity = world.bob.identity
    seized = world.bob.sessions.load("alice").current
    assert seized is not None
    opened = decrypted = 0
    for k in kept:
        try:
            content = unseal(identity, k.body)
        except ProtocolError:
            continue
        opened += 1
        attempt = Session.deserialize(seized.serialize())
        with contextlib.suppress(ProtocolError):
            attempt.decrypt(content.kind, content.message)
            decrypted += 1
    world.narrate(f"With Bob's identity key the relay opened the outer seal of {opened} of "
                  f"{len(kept)} envelopes (learning that they came from Alice), but "
                  f"decrypted {decrypted} messages: the keys for earlier messages were "
                  "deleted as soon as they were used. That is forward secrecy.")
    return Outcome(
        "keep-everything",
        "A relay can keep every ciphertext; with forward secrecy, even seizing a device "
        "later does not decrypt earlier messages.",
        {"kept": len(kept), "opened": opened, "decrypted": decrypted})


SCENARIOS: dict[Scenario, Callable[[World], Awaitable[Outcome]]] = {
    Scenario.MITM_FIRST_CONTACT: mitm_first_contact,
    Scenario.KEY_SWAP: key_swap,
    Scenario.TAMPER: tamper,
    Scenario.REPLAY: replay,
    Scenario.DROP: drop,
    Scenario.KEEP_EVERYTHING: keep_everything,
}
