"""Sender certificates end to end (issue 12 item 2; PROTOCOL.md 10 and 20), with a real
relay and real clients: a first message names its sender by certificate, so the
recipient no longer asks the relay whose key it is (LOOKUP_IDENTITY); a forged sender
name, even delivered with a valid capability, is never shown under the real user's
name; a message that waited longer than a certificate lives still arrives, attributed;
and a relay whose certificate key changed is refused, loudly."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from client.certificates import CertKeyChanged
from client.client import Client
from client.connection import RelayConnection
from client.errors import Refused
from client.events import KtAlertKind
from client.history import UNKNOWN_SENDER
from client.records import State
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.wire.certificates import issue, signer_from_seed
from protocol.wire.frames import Ok, SealedOutgoing, SealedSend, Sent, SetCapability
from server.events import FrameIn, RelayEvent
from tests.client.helpers import (
    alerts_of,
    intercept,
    make_client,
    online,
    received,
    shut,
    wait_for,
    wait_last,
    wait_state,
)
from tests.support import RunningRelay, running_relay


def unknown_reasons(client: Client) -> list[str]:
    """The unknown-sender rows' reasons (consecutive unread ones collapse into one row
    that names the latest)."""
    return [m.error for m in client.history(UNKNOWN_SENDER, 1000)]


def unknown_count(client: Client) -> int:
    return sum(m.count for m in client.history(UNKNOWN_SENDER, 1000))


async def sealed_send(url: str, recipient: str, capability: bytes, body: bytes) -> None:
    """One envelope on a connection that never logs in (PROTOCOL.md 16.10)."""
    conn = await RelayConnection.open(url)
    try:
        await conn.request(SealedSend((SealedOutgoing(recipient, capability, body),)), Sent)
    finally:
        await conn.close()


async def test_first_contact_asks_the_relay_nothing_about_the_sender(tmp_path: Path) -> None:
    """bob learns who wrote from alice's certificate: the relay sees no LOOKUP_IDENTITY
    from anyone, and bob pins the key the certificate (and the directory) vouch for."""
    async with running_relay(tmp_path / "relay") as relay:
        frames: list[RelayEvent] = []
        relay.relay.observers.append(frames.append)
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello bob")
        await wait_last(bob, "alice", "hello bob")
        await bob.send_text("alice", "hello alice")
        await wait_last(alice, "bob", "hello alice")
        seen = {e.frame_type for e in frames if isinstance(e, FrameIn)}
        assert {"Send", "GetCertificate", "CertKey", "KtLookup"} <= seen
        assert "LookupIdentity" not in seen
        contact = bob.contact("alice")
        assert contact is not None and contact.identity == alice.identity.public
        await shut(alice, bob)


async def _alice_and_bob(tmp_path: Path, relay: RunningRelay) -> tuple[Client, Client]:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hi bob")
    await wait_last(bob, "alice", "hi bob")
    await bob.send_text("alice", "hi alice")
    await wait_last(alice, "bob", "hi alice")
    return alice, bob


async def test_forged_senders_with_a_valid_capability_are_never_attributed(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _alice_and_bob(tmp_path, relay)
        mallory = await make_client(tmp_path, "mallory", relay.url)
        # bob lets his contacts send sealed: mallory holds a valid capability
        capability = os.urandom(32)
        assert bob.conn is not None
        await bob.conn.request(SetCapability(False, hashlib.sha256(capability).digest()), Ok)

        # mallory takes alice's real certificate from a message she sent him
        await mallory.disconnect()
        await alice.send_text("mallory", "hello mallory")
        # (a first contact: alice's capability comes first, PROTOCOL.md 9.1)
        _capability, to_mallory = await intercept(relay.url, mallory)
        stolen = unseal(mallory.identity, to_mallory.body).certificate
        assert unseal(mallory.identity, to_mallory.body).sender == "alice"

        # a message alice really sent bob (taken from the relay, delivered sealed: it
        # arrives as hers), whose bytes only the relay could re-seal
        await bob.disconnect()
        sent = await alice.send_text("bob", "the genuine one")
        [genuine] = await intercept(relay.url, bob)
        inner = unseal(bob.identity, genuine.body)
        await online(bob)
        await sealed_send(relay.url, "bob", capability, genuine.body)
        await wait_last(bob, "alice", "the genuine one")
        await wait_state(alice, "bob", sent, State.DELIVERED)
        await wait_for(lambda: alice.store.outbox() == bob.store.outbox() == [])
        history = [(m.direction, m.text, m.state) for m in bob.history("alice")]
        alice_key = alice.identity.public

        async def deliver(body: bytes, reason: str) -> None:
            before = unknown_count(bob)
            await sealed_send(relay.url, "bob", capability, body)
            await wait_for(lambda: unknown_count(bob) == before + 1)
            assert reason in unknown_reasons(bob)[-1], unknown_reasons(bob)[-1]

        # 1. alice's certificate replayed with mallory's own first (PreKey) message
        mallory_id = IdentityKeyPair.generate()
        assert mallory.conn is None
        conn = await RelayConnection.open(relay.url)
        await conn.register("mallory2", mallory_id)
        bundle = await conn.fetch_bundle("bob")
        await conn.close()
        session = Session.initiate(mallory_id, bundle)
        kind, message = session.encrypt(b"\x01\x01" + bytes(24) + b"\x00\x00\x00\x05forge")
        assert kind is MessageKind.PREKEY
        await deliver(seal(bob.identity.public, SealedContent(stolen, kind, message)),
                      "made with another identity key (someone is impersonating alice)")
        # 2. ... with a ratchet message of mallory's (it authenticates in no session)
        kind, message = session.encrypt(b"more")
        ratchet = PreKeyMessage.decode(message).message.encode()
        await deliver(seal(bob.identity.public, SealedContent(
            stolen, MessageKind.RATCHET, ratchet)), "claims to come from alice")
        # 3. alice's genuine message (re-sealed) under a certificate signed by another key
        other = issue(os.urandom(32), "alice", alice_key, int(time.time()) + 3600)
        await deliver(seal(bob.identity.public, SealedContent(other, inner.kind, inner.message)),
                      "not signed by the relay's certificate key")
        # 4. ... under one the relay's own key signed, expired before it was stored
        # received_at is coarse (rounded down, PROTOCOL.md 16.5): a certificate counts
        # as expired when the relay stored the message only if it expired before the
        # start of that window
        granularity = relay.relay.received_at_granularity
        expired = issue(relay.relay._cert_sign, "alice", alice_key,
                        int(time.time()) // granularity * granularity - 1)
        await deliver(seal(bob.identity.public, SealedContent(expired, inner.kind,
                                                               inner.message)),
                      "expired when the relay stored")
        # 5. a valid certificate for alice, but for a key that is not hers
        wrong_key = issue(relay.relay._cert_sign, "alice", mallory_id.public,
                          int(time.time()) + 3600)
        await deliver(seal(bob.identity.public, SealedContent(wrong_key, inner.kind,
                                                               inner.message)),
                      "not the one pinned for alice")

        # nothing reached alice's conversation; her key is the one bob pinned
        assert [(m.direction, m.text, m.state) for m in bob.history("alice")] == history
        contact = bob.contact("alice")
        assert contact is not None and contact.identity == alice_key
        assert not contact.key_changed
        assert bob.contact("mallory2") is None
        # alice's conversation with bob goes on
        await alice.send_text("bob", "still me")
        await wait_last(bob, "alice", "still me")
        await shut(alice, bob, mallory)


async def test_a_message_older_than_a_certificate_still_arrives_attributed(
        tmp_path: Path) -> None:
    """Certificates live an hour here. alice queues a message offline and sends it two
    hours later: it is sealed when it leaves, with a certificate fetched at that login.
    Then bob stays offline for two hours: his client checks the certificate at the time
    the relay stored the message, not at his own time."""
    async with running_relay(tmp_path / "relay") as relay:
        relay.relay.certificate_lifetime = 3600
        later = 0.0
        relay.relay.clock = lambda: time.time() + later
        alice, bob = await _alice_and_bob(tmp_path, relay)
        alice.clock = bob.clock = lambda: time.time() + later
        bob.certificate_check_interval = 0.1  # the timer notices the jumps at once
        await bob.disconnect()
        await online(bob)

        await alice.disconnect()
        queued = await alice.send_text("bob", "written offline")
        later = 2 * 3600.0
        await online(alice)
        await wait_last(bob, "alice", "written offline")
        await wait_state(alice, "bob", queued, State.DELIVERED)

        await bob.disconnect()
        await alice.send_text("bob", "while bob was away")
        later = 4 * 3600.0
        await online(bob)
        await wait_last(bob, "alice", "while bob was away")
        assert received(bob, "alice")[-2:] == ["written offline", "while bob was away"]
        assert unknown_reasons(bob) == []
        await shut(alice, bob)


async def test_a_changed_relay_certificate_key_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _alice_and_bob(tmp_path, relay)
        pinned = bob.certificates.pinned_key()
        assert pinned == relay.relay.cert_public_key
        await alice.disconnect()
        alice.close()
        await bob.disconnect()
        # the relay (or whoever answers at its address) now signs with another key
        relay.relay._cert_sign, relay.relay.cert_public_key = signer_from_seed(os.urandom(32))
        alerts = alerts_of(bob)
        await online(bob)
        assert [a.kind for a in alerts] == [KtAlertKind.CERT_KEY_CHANGED]
        assert "NOT the one pinned" in alerts[0].text
        assert bob.certificates.pinned_key() == pinned  # never re-pinned silently
        try:
            await bob.send_text("alice", "must not go")
        except CertKeyChanged as exc:
            assert isinstance(exc, Refused) and "certificate key" in str(exc)
        else:
            raise AssertionError("sending went on with a changed certificate key")
        assert bob.store.outbox() == []
        # what arrives with a certificate under the new key is not attributed: carol
        # joins now, so she pins the new key and her client seals with it
        carol = await make_client(tmp_path, "carol", relay.url)
        await carol.send_text("bob", "under the new key")  # after her capability (9.1)
        await wait_for(lambda: unknown_count(bob) == 2)
        assert "not signed by the relay's certificate key" in unknown_reasons(bob)[0]
        assert bob.contact("carol") is None
        await shut(carol, bob)


async def test_outbox_rows_sealed_by_older_versions_are_still_sent(tmp_path: Path) -> None:
    """Rows written before sealing moved to flush time hold sealed bytes: they go out
    as they are (client/records.py OutboxItem)."""
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _alice_and_bob(tmp_path, relay)
        await alice.disconnect()
        message = await alice.send_text("bob", "from an older version")
        [(row, item)] = [(r, i) for r, i in alice.outbox.repo.items()
                         if i.message_row == message.row_id]
        certificate = alice.certificates.current()
        assert certificate is not None and not item.sealed
        old = seal(item.identity, SealedContent(certificate, MessageKind(item.kind),
                                                item.message))
        with alice.store.transaction():  # the row as an older version wrote it
            alice.outbox.repo.delete(row)
            alice.store.add_outbox(
                b'{"envelope":"%s","message_row":%d,"recipient":"bob"}'
                % (old.hex().encode(), message.row_id))
        [legacy] = [i for _, i in alice.outbox.repo.items() if i.message_row == message.row_id]
        assert legacy.sealed and legacy.envelope == old
        await online(alice)
        await wait_last(bob, "alice", "from an older version")
        await wait_state(alice, "bob", message, State.DELIVERED)
        await shut(alice, bob)



async def test_no_certificate_is_fetched_because_of_a_send(tmp_path: Path) -> None:
    """A GET_CERTIFICATE just before a send would tie the send to the account by
    timing: sends never cause one. With no valid certificate left, the message waits in
    the outbox until one is fetched at the next login (or by the timer)."""
    async with running_relay(tmp_path / "relay") as relay:
        alice, bob = await _alice_and_bob(tmp_path, relay)
        frames: list[RelayEvent] = []
        relay.relay.observers.append(frames.append)

        def fetched() -> int:
            return sum(1 for e in frames if isinstance(e, FrameIn)
                       and e.frame_type == "GetCertificate" and e.user == "alice")

        for n in range(3):
            await alice.send_text("bob", f"text {n}")
        await wait_last(bob, "alice", "text 2")
        assert fetched() == 0

        # three days later (by alice's clock and the relay's): her certificate has
        # expired; nothing is fetched for the send, and the message waits
        alice.clock = relay.relay.clock = lambda: time.time() + 3 * 24 * 3600
        waiting = await alice.send_text("bob", "after a long sleep")
        assert fetched() == 0
        assert alice.message(waiting.row_id).state is State.SENDING  # type: ignore[union-attr]
        assert len(alice.store.outbox()) == 1
        await alice.disconnect()
        await online(alice)  # the login fetches a fresh one, then the outbox goes
        assert fetched() == 1
        await wait_last(bob, "alice", "after a long sleep")
        await shut(alice, bob)
