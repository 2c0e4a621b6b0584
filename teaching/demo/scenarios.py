"""What a malicious relay can and cannot do, as runnable, narrated scenarios.

Each scenario drives real clients through a `HostileRelay` and returns what the users
would notice, so the tests can assert it and the demo can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.client import Client
from client.errors import DirectoryRefused, KeyChangeBlocked
from client.events import KtAlert, KtAlertKind
from client.history import UNKNOWN_SENDER
from client.records import Direction, Message, State
from protocol.e2e.content import Text, decode_content
from protocol.e2e.mls import state
from protocol.e2e.mls.framing import MLSMessage
from protocol.e2e.mls.group import Group
from protocol.e2e.padding import unpad
from protocol.e2e.sealed import unseal
from protocol.e2e.session import Session
from protocol.wire import tls
from protocol.wire.errors import ProtocolError
from protocol.wire.kt.evidence import verify_evidence
from server.witness import open_witness, running_witness
from server.witnessing import Witnesses
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


def notices(client: Client, peer: str) -> list[str]:
    return [m.text for m in client.history(peer) if m.direction is Direction.NOTICE]


def last(client: Client, peer: str) -> Message:
    return client.history(peer)[-1]


async def say(world: World, sender: str, recipient: str, text: str,
              wait: bool = True) -> Message:
    clients = world.clients()
    message = await clients[sender].send_text(recipient, text)
    world.narrate(f"{sender.capitalize()} sent: “{text}”")
    if wait:
        await wait_until(lambda: text in texts(clients[recipient], sender))
        world.narrate(f"{recipient.capitalize()} decrypted it.")
    if world.pace:
        await asyncio.sleep(world.pace)
    return message


def hostile(world: World) -> HostileRelay:
    assert isinstance(world.relay, HostileRelay)
    return world.relay


FIRST_CONTACT = "the first-contact lookup proof"
"""Client check 1 (PROTOCOL.md 19.8): a served key is used only if a lookup proof binds
the name to it (at first contact, and for a changed key)."""
OWNER_MONITORING = "owner monitoring"
"""Client check 2: each client reads the directory's entries under its own name."""
WITNESS = "the witness's cosignature"
"""Client check 4 (PROTOCOL.md 19.11): with a witness configured, only checkpoints it
cosigned are accepted."""
GOSSIP = "gossip consistency"
"""Client check 3: each message carries its sender's newest checkpoint; the receiver
checks it is the same history as its own."""


def verify_evidence_text(path: Path) -> str:
    """What `blindrelay kt verify-evidence PATH` prints, word for word."""
    from client.commands import kt_verify_evidence

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        kt_verify_evidence(path)
    return out.getvalue()


async def wait_alert(world: World, who: str, *kinds: KtAlertKind,
                     timeout: float = 10.0) -> KtAlert:
    """The first key directory alert of one of `kinds` that `who`'s client raised."""
    def found() -> KtAlert | None:
        return next((a for a in world.alerts.get(who, []) if a.kind in kinds), None)

    await wait_until(lambda: found() is not None, timeout)
    alert = found()
    assert alert is not None
    return alert


def show_evidence(world: World, who: str, alert: KtAlert, check: str,
                  why_none: str = "") -> dict[str, Any]:
    """Narrates which check caught the relay and what the evidence proves (the output
    of `blindrelay kt verify-evidence`); returns the facts for the tests."""
    world.narrate(f"CAUGHT by {check}: {who.capitalize()}'s client raised a key directory "
                  f"alert ({alert.kind.value}).")
    facts: dict[str, Any] = {"caught_by": check, "alert": alert.kind.value,
                             "evidence": None, "conclusive": None}
    if alert.evidence is None:
        world.narrate(f"It left no evidence file{why_none}.")
        return facts
    path = alert.evidence
    finding = verify_evidence(path.read_bytes())
    text = verify_evidence_text(path)
    world.narrate(f"Evidence file: {path} ({path.stat().st_size} bytes, signed statements "
                  "of the relay that anyone can check without trusting "
                  f"{who.capitalize()}'s client).")
    world.narrate(f"$ blindrelay kt verify-evidence {path.name}")
    for line in text.splitlines():
        world.narrate(f"  {line.strip()}")
    if finding.conclusive:
        world.narrate("Conclusive: only the holder of the relay's log key could have signed "
                      "both statements. The relay cannot talk its way out of this file.")
    else:
        world.narrate("Not conclusive on its own: the file PROVES what the relay's directory "
                      "says (the relay signed it); why that is wrong is "
                      f"{who.capitalize()}'s testimony.")
        if any("RESET" in line for line in finding.proven):
            world.narrate("And a RESET the owner never asked for is the relay's own public "
                          "admission that the old key did not sign the change.")
    facts.update(evidence=str(path), conclusive=finding.conclusive, verify_output=text,
                 proven=finding.proven, testimony=finding.testimony)
    return facts


async def monitor(world: World, who: str) -> None:
    """One owner-monitoring pass of `who`'s client, narrated."""
    world.narrate(f"{who.capitalize()}'s client checks the directory's entries under "
                  f"{'her' if who == 'alice' else 'his'} own name, as it does after every "
                  "login and every ten minutes (the demo runs it now).")
    await world.clients()[who].kt_monitor()


def side_by_side(left_title: str, left: str, right_title: str, right: str) -> list[str]:
    """Two safety numbers in two columns, as narration lines (indented: printed as
    they are)."""
    lines, rights = left.splitlines(), right.splitlines()
    width = max(len(left_title), *(len(x) for x in lines)) + 4
    rows = [f"  {left_title:<{width}}{right_title}"]
    rows += [f"  {a:<{width}}{b}" for a, b in zip(lines, rights, strict=False)]
    return rows


async def mitm_first_contact(world: World) -> Outcome:
    relay = hostile(world)
    relay.start_mitm("alice", "bob")
    world.narrate("The relay will answer Alice's first request for Bob's keys with its own.")
    if not relay.cover_up:
        return await _mitm_unlogged(world)
    await say(world, "alice", "bob", "Hi Bob, it's Alice. Is this really you?")
    world.narrate("Alice's client looked Bob up in the key directory before using the key: "
                  "the lookup proof VERIFIED, because the relay had logged its key (as an "
                  "operator RESET of Bob's account). Bob's client did the same for "
                  "'Alice'.")
    await say(world, "bob", "alice", "Yes, it's me, Bob!")
    alice_sees, _ = world.alice.safety_number("bob")
    bob_sees, _ = world.bob.safety_number("alice")
    world.narrate("Messages flowed both ways, and the relay read every one of them.")
    world.narrate("The safety numbers on the two screens DIFFER: comparing them would "
                  "expose the relay, but almost nobody compares.")
    for line in side_by_side("Alice's screen, with bob", alice_sees,
                             "Bob's screen, with alice", bob_sees):
        world.narrate(line)
    await monitor(world, "bob")
    alert = await wait_alert(world, "bob", KtAlertKind.FOREIGN_BINDING)
    facts = show_evidence(world, "bob", alert, OWNER_MONITORING)
    world.narrate("To pass Alice's first-contact check the relay HAD to log its key; that "
                  "log entry is exactly what Bob's client watches. Either way it is caught.")
    return Outcome(
        "mitm-first-contact",
        "A relay can hand out its own key at first contact, but to pass the client's "
        "directory check it must log it, and the owner's own client catches the entry.",
        {"alice_sees": alice_sees, "bob_sees": bob_sees, "match": alice_sees == bob_sees,
         "alice_got": texts(world.alice, "bob"), "bob_got": texts(world.bob, "alice"),
         "logged": list(relay.logged), **facts})


async def _mitm_unlogged(world: World) -> Outcome:
    """mitm-first-contact without the cover-up: the fake key is not in the directory."""
    text = "Hi Bob, it's Alice. Is this really you?"
    refused: DirectoryRefused | None = None
    try:
        await world.alice.send_text("bob", text)
    except DirectoryRefused as exc:
        refused = exc
    if refused is None:
        raise RuntimeError("Alice's client used a key the directory does not bind")
    world.narrate("Alice's client looked Bob up in the key directory before using the key "
                  "the relay served: the directory binds bob to ANOTHER key. It sent "
                  "nothing, and shows a blocking warning in the conversation.")
    facts = show_evidence(world, "alice", refused.alert, FIRST_CONTACT)
    return Outcome(
        "mitm-first-contact",
        "A relay that hands out its own key without logging it is caught at first "
        "contact: the client uses no key the directory does not prove.",
        {"sent": False, "bob_got": texts(world.bob, "alice"),
         "warning": any("KEY DIRECTORY WARNING" in m.text
                        for m in world.alice.history("bob")), **facts})


async def key_swap(world: World) -> Outcome:
    relay = hostile(world)
    await say(world, "alice", "bob", "Hello Bob")
    await say(world, "bob", "alice", "Hello Alice")
    lure = "Hi, it's Bob on a new phone. Send me the code."
    await relay.claim_new_key("alice", "bob", lure)
    if not relay.cover_up:
        alert = await wait_alert(world, "alice", KtAlertKind.KEY_MISMATCH,
                                 KtAlertKind.NOT_IN_DIRECTORY)
        world.narrate("Alice's client looked the 'new' key up in the key directory: the "
                      "directory still binds Bob to his old key. The message was rejected "
                      "as an impostor's; Alice never sees it as Bob's.")
        facts = show_evidence(world, "alice", alert, FIRST_CONTACT)
        return Outcome(
            "key-swap",
            "A relay that claims a new key without logging it is caught at once: the "
            "client accepts no key the directory does not prove.",
            {"alice_got": texts(world.alice, "bob"), **facts})
    await wait_until(lambda: (c := world.alice.contact("bob")) is not None and c.key_changed)
    notice = next((m.text for m in world.alice.history("bob") if "CHANGED" in m.text), "")
    world.narrate("Alice's client shows a warning: Bob's identity key has changed, and the "
                  "key directory confirms it only as a RESET by the relay's operator: "
                  "Bob's old key did NOT sign the change.")
    blocked = False
    try:
        await world.alice.send_text("bob", "The code is 1234")
    except KeyChangeBlocked:
        blocked = True
        world.narrate("Alice tried to answer: her client refused to send anything until "
                      "she compares safety numbers and accepts the new key.")
    await monitor(world, "bob")
    alert = await wait_alert(world, "bob", KtAlertKind.FOREIGN_BINDING)
    facts = show_evidence(world, "bob", alert, OWNER_MONITORING)
    return Outcome(
        "key-swap",
        "A relay can claim a key changed; the client warns and sends nothing to it, and "
        "the RESET the relay had to log is caught by the owner's own client.",
        {"blocked": blocked, "warning": bool(notice), "reset_shown": "RESET" in notice,
         "alice_got": texts(world.alice, "bob"), "logged": list(relay.logged), **facts})


async def split_view(world: World) -> Outcome:
    relay = hostile(world)
    if not relay.witnessed:
        return await _split_view(world, relay)
    witness = open_witness(world.workdir / "witness", [relay.directory.signer.verifier],
                           "witness.example")
    async with running_witness(witness) as running:
        relay.witnesses = Witnesses((running.url,))
        await relay.publish_head()
        world.alice.directory.set_witnesses([witness.cosigner.verifier.encode()])
        world.narrate("Alice's client is configured with a witness (her school runs one, "
                      "`blindrelay witness`): it accepts only checkpoints the witness "
                      "cosigned, and the witness cosigns a checkpoint only if it extends "
                      "the last one it cosigned. The relay sends it every new checkpoint.")
        return await _split_view(world, relay)


async def _split_view(world: World, relay: HostileRelay) -> Outcome:
    await say(world, "alice", "bob", "Hi Bob")
    await say(world, "bob", "alice", "Hi Alice")
    world.narrate("Alice and Bob already talk: each message carries, inside the encryption, "
                  "the sender's newest directory checkpoint.")
    split = relay.start_split_view("alice", "carol")
    carol = await world.add_client("carol")
    entry = split.base
    world.narrate(f"Carol joined: the real directory logged her key as entry {entry}. In the "
                  f"fork shown to Alice, entry {entry} binds carol to the relay's key.")
    await carol.kt_monitor()
    world.narrate("Carol's client checked her own entry: it is hers, since the relay shows "
                  "Carol the real directory. Owner monitoring has nothing to catch.")
    if relay.witnessed:
        return await _witness_refuses(world, entry)
    await world.alice.send_text("carol", "Hi Carol, it's Alice. Welcome!")
    read = [_text_of(t) for s, r, t in relay.opened  # texts (not her capability, 9.1)
            if (s, r) == ("alice", "carol") and isinstance(decode_content(t), Text)]
    world.narrate("Alice wrote to Carol. Her client looked Carol up and the proof verified, "
                  f"against the fork. The relay decrypted the message: “{read[-1]}”.")
    await monitor(world, "bob")
    await say(world, "bob", "alice", "Did you see that Carol joined?", wait=False)
    world.narrate("Bob's message carries his newest checkpoint, from the real directory. "
                  "Alice's client checks it against its own, asking the relay for a "
                  "consistency proof where the sizes differ.")
    alert = await wait_alert(world, "alice", KtAlertKind.FORK)
    facts = show_evidence(world, "alice", alert, GOSSIP)
    return Outcome(
        "split-view",
        "A relay can show one person a forked directory, but it signs both: the first "
        "message from someone shown the real one proves the fork.",
        {"fork_at": entry, "relay_read": read, **facts})


async def tamper(world: World) -> Outcome:
    await say(world, "alice", "bob", "First message")
    hostile(world).arm_tamper("bob")
    world.narrate("Alice sends a second message; the relay is set to flip a bit in it.")
    await world.alice.send_text("bob", "This one will be tampered with")
    await wait_until(lambda: any(m.state is State.UNDECRYPTABLE
                                 for m in world.bob.history(UNKNOWN_SENDER)))
    placeholder = next(m for m in world.bob.history(UNKNOWN_SENDER)
                       if m.state is State.UNDECRYPTABLE)
    world.narrate("Bob's client shows a placeholder in its 'unknown sender' conversation: "
                  f"{placeholder.error}. A damaged envelope hides even who sent it: the "
                  "sender's name is sealed inside.")
    await say(world, "alice", "bob", "And this one arrives fine")
    world.narrate("Bob's session kept working: the next message decrypted. Its counter "
                  "shows one message from Alice missing before it, and Bob's conversation "
                  "with Alice says so, and that an envelope that could not be decrypted "
                  "arrived in between: unlike a drop, something did arrive, damaged.")
    return Outcome(
        "tamper",
        "A relay can damage ciphertext but not forge it: the change is detected, shown, "
        "and the conversation goes on.",
        {"placeholder": placeholder.error, "bob_got": texts(world.bob, "alice"),
         "bob_notices": notices(world.bob, "alice")})


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
         "gap_notice": any("not arrived" in m.text for m in world.bob.history("alice")),
         "bob_notices": notices(world.bob, "alice")})


async def keep_everything(world: World) -> Outcome:
    relay = hostile(world)
    for i in range(3):
        await say(world, "alice", "bob", f"Secret number {i + 1}")
        await say(world, "bob", "alice", f"Got secret {i + 1}")
    kept = [k for k in relay.kept if k.recipient == "bob"]
    # Bob's device is seized once he has taken every one of them (acknowledged, so
    # committed: his client's receipts and pages arrive a moment after the texts); an
    # envelope still waiting would be a future message, not the past.
    waiting = {k.body for k in kept}
    for _ in range(500):
        queued = await relay.storage.queued("bob", 0, len(waiting) + 64)
        if not waiting & {env.body for env in queued}:
            break
        await asyncio.sleep(0.02)
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
    world.narrate("But a seized device holds more than keys: Bob's client keeps his whole "
                  "history in his profile, every message he sent and received, encrypted "
                  "under a key derived from his passphrase (Argon2id). With the passphrase, "
                  "or a weak one guessed, the seizer reads all of it: forward secrecy "
                  "protects what the relay kept, not what the device keeps.")
    return Outcome(
        "keep-everything",
        "A relay can keep every ciphertext; with forward secrecy, even seizing a device "
        "later does not decrypt earlier messages.",
        {"kept": len(kept), "opened": opened, "decrypted": decrypted})


def _text_of(plaintext: bytes) -> str:
    """The text of a decrypted message (unwrapped from its gossiped checkpoint)."""
    content = decode_content(plaintext)
    return content.text if isinstance(content, Text) else type(content).__name__


async def _witness_refuses(world: World, entry: int) -> Outcome:
    """split-view with a witness: the fork's checkpoint carries no cosignature."""
    refused: DirectoryRefused | None = None
    try:
        await world.alice.send_text("carol", "Hi Carol, it's Alice. Welcome!")
    except DirectoryRefused as exc:
        refused = exc
    if refused is None:
        raise RuntimeError("Alice's client accepted a checkpoint the witness never cosigned")
    world.narrate("Alice's client refused the fork's checkpoint: the witness did not cosign "
                  "it. Nothing was sent to the relay's key. The fork was stopped before "
                  "Alice relied on it, not found out afterwards.")
    facts = show_evidence(world, "alice", refused.alert, WITNESS,
                          ": a checkpoint without a cosignature proves nothing against "
                          "the relay, and Alice's client keeps its last cosigned head. The "
                          "witness prevents; gossip (the default split-view) proves")
    return Outcome(
        "split-view",
        "A witness cosigns one history only: a client that requires its cosignature "
        "refuses a forked directory before relying on it.",
        {"fork_at": entry, "sent": False, "relay_read": [], **facts})


def _group_texts(client: Client, group_id: bytes) -> list[str]:
    return [m.text for m in client.groups.history(group_id, 1000)
            if m.direction is Direction.IN and m.text]


def _try_read(group: Group, body: bytes) -> str | None:
    """What a stolen group state makes of a kept message: its text, or None. (A
    commit is followed too, as the thief would, when the copy can.)"""
    try:
        message = MLSMessage.read(tls.Reader(body))
        content = group.handle(message).content.body
    except (ProtocolError, ValueError):
        return None
    if isinstance(content, bytes):
        item = decode_content(unpad(content))
        return item.text if isinstance(item, Text) else None
    return None


async def groups(world: World) -> Outcome:
    """Three people in an MLS group (PROTOCOL.md 21): what the relay sees of it, a
    removed member who can read nothing after, and a copied device that the next
    self-update shuts out (post-compromise security)."""
    relay = hostile(world)
    alice, bob = world.alice, world.bob
    carol = await world.add_client("carol")
    world.narrate("Carol registered too. Each of them uploaded KeyPackages: one-time group "
                  "keys, like prekeys, signed with their identity key.")
    view = await alice.groups.create("trio", ["bob", "carol"])
    gid = view.group_id
    await wait_until(lambda: all(c.groups.record(gid) is not None for c in (bob, carol)))
    world.narrate("Alice created the group 'trio' with Bob and Carol. Its name is inside "
                  "the encrypted group context: the relay never sees it.")

    async def group_say(client: Client, who: str, text: str,
                        readers: tuple[Client, ...]) -> None:
        await client.groups.send_text(gid, text)
        world.narrate(f"{who} wrote to the group: “{text}”")
        await wait_until(lambda: all(text in _group_texts(r, gid) for r in readers))
        if world.pace:
            await asyncio.sleep(world.pace)

    await group_say(alice, "Alice", "Hello trio!", (bob, carol))
    await group_say(carol, "Carol", "Hi both", (alice, bob))

    # -- Carol is removed
    await alice.groups.remove(gid, "carol")
    await wait_until(lambda: carol.groups.record(gid).status.value == "removed"  # type: ignore[union-attr]
                     and "carol" not in [m.name for m in bob.groups.find(gid.hex()).members])
    world.narrate("Alice removed Carol: one commit, sent to Bob and to Carol. Carol's client "
                  "learnt that it was removed, and could not follow into the new epoch.")
    carol_state = state.deserialize(carol.groups.record(gid).state)  # type: ignore[union-attr]
    await group_say(bob, "Bob", "Carol cannot read this", (alice,))
    secret = relay.kept_group[-1]
    carol_read = _try_read(carol_state, secret.body)
    world.narrate("The relay kept that message; even handed to Carol's client with every "
                  f"key Carol still holds, it reads as: {carol_read or 'nothing'}. Carol is "
                  "out for good.")

    # -- Bob's device is copied, then healed by a self-update
    record = bob.groups.record(gid)
    assert record is not None
    stolen = state.deserialize(record.state)
    world.narrate("Now someone copies Bob's device: his group state, with every key in it "
                  "for this epoch.")
    await group_say(alice, "Alice", "Before the heal", (bob,))
    before = _try_read(stolen, relay.kept_group[-1].body)
    world.narrate(f"With the copy, the thief reads the relay's kept copy: “{before}”. A "
                  "stolen state reads what is sent until the keys change.")
    await bob.groups.self_update(gid)
    await wait_until(lambda: alice.groups.find(gid.hex()).epoch == bob.groups.find(
        gid.hex()).epoch)
    world.narrate("Bob's client made a self-update: a commit with fresh keys for his leaf, "
                  "encrypted to the others. It happens by itself every 7 days, and on "
                  "demand (blindrelay group update).")
    healing = relay.kept_group[-1]
    followed = _try_read(stolen, healing.body) is not None or stolen.epoch > secret.epoch + 1
    await group_say(alice, "Alice", "After the heal", (bob,))
    after = _try_read(stolen, relay.kept_group[-1].body)
    world.narrate(f"The thief's copy cannot follow the self-update: its new secrets were "
                  f"made fresh on Bob's device and encrypted only to the other members, so "
                  f"“After the heal” reads as: {after or 'nothing'}. That is post-compromise "
                  "security: the group healed.")

    seen = relay.kept_group
    groups_seen = {k.group_id for k in seen if k.group_id}
    commits = [k for k in seen if k.commit]
    world.narrate(f"What the relay saw: {len(seen)} group messages, one group id "
                  f"({len(groups_seen)} distinct), {len(commits)} commits with their epochs, "
                  "and the recipients each sender named (so who was in the group at each "
                  "message: that Carol is gone shows in the lists). Not the group's name, "
                  "not a word of the texts, not what any commit changed.")
    return Outcome(
        "groups",
        "In an MLS group a removed member reads nothing after, and a copied device is "
        "shut out by the next self-update; the relay sees the traffic, not the group.",
        {"carol_read": carol_read, "thief_before": before, "thief_after": after,
         "thief_followed": followed, "bob_got": _group_texts(bob, gid),
         "carol_got": _group_texts(carol, gid), "group_ids": len(groups_seen),
         "commits": len(commits), "kept": len(seen),
         "recipients": [k.recipients for k in seen]})


SCENARIOS: dict[Scenario, Callable[[World], Awaitable[Outcome]]] = {
    Scenario.MITM_FIRST_CONTACT: mitm_first_contact,
    Scenario.KEY_SWAP: key_swap,
    Scenario.TAMPER: tamper,
    Scenario.REPLAY: replay,
    Scenario.DROP: drop,
    Scenario.KEEP_EVERYTHING: keep_everything,
    Scenario.SPLIT_VIEW: split_view,
    Scenario.GROUPS: groups,
}


async def metadata_harvest(world: World) -> Outcome:
    """The relay records everything it can observe live while a scripted group chats
    (teaching/harvest.py), then draws the contact graph it reconstructs, for each
    configuration: authenticated sending, sealed sending, sealed with receipt delays."""
    from teaching.harvest import (
        CONFIGS,
        USERS,
        HarvestingRelay,
        contact_graph,
        play_group,
    )

    relay = world.relay
    assert isinstance(relay, HarvestingRelay)
    for name in USERS:
        if name not in world.clients():
            await world.add_client(name)
    clients = {name: world.clients()[name] for name in USERS}
    rng = random.Random(HARVEST_SEED)
    truth = contact_graph(rng)
    world.narrate(f"Eight people, {len(truth)} pairs of contacts among them. First they make "
                  "contact (each pair one message each way); then they chat, in turn under "
                  + ", ".join(f"'{c.name}'" for c in CONFIGS) + ". The relay records what "
                  "it sees: connections and their addresses, logins, every frame in and "
                  "out with its time, recipients, sizes and capabilities. Each phase is "
                  "analysed on its own recording.")
    result = await play_group(relay, clients, truth, rng, CONFIGS, messages=24,
                              mean_gap=0.3, say=world.narrate)
    world.narrate("All eight users connected from one address here (loopback, as behind "
                  "one NAT, proxy or Tor exit). Sealed sending does not hide the address: "
                  "with one of their own each, every sealed SEND comes from its sender's "
                  "address and the relay attributes each one (bench/metadata.py measures "
                  "both).")
    return Outcome(
        "metadata-harvest",
        "Encryption hides what is said, not who talks to whom: a relay that sees the "
        "sender's login knows the whole graph; sealed sending leaves it timing and "
        "addresses to guess from.",
        {"truth": sorted(truth), "first_contact": result.first_contact,
         "phases": {p.config.name: p for p in result.phases}})


HARVEST_SEED = 12
"""The demo's group: the same contact graph and chat every time it runs."""

SCENARIOS[Scenario.METADATA_HARVEST] = metadata_harvest
