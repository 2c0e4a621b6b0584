"""Sealed sending by default, with real clients on a real relay (issue 12 items 1 and 3,
docs/CLIENT.md "Sealed sending", PROTOCOL.md 16.10): texts and receipts arrive, the
relay's log, database and memory hold nothing that ties a sealed SEND to its sender,
offline recipients, restarts and replays behave as before, rotation cuts one contact
off (who falls back to SEND and still arrives), allow-anyone admits a stranger's first
message sealed, and automatic receipts can wait a random, persisted delay."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from client.client import Client
from client.connection import RelayConnection
from client.records import Direction, State
from protocol.wire.connection import RequestRefused
from protocol.wire.frames import ErrorCode, Frame, SealedOutgoing, SealedSend, Sent, SetCapability
from server import serve
from server.budgets import Budgets, Rate
from server.config import ServerConfig
from server.events import FrameIn, RelayEvent, Stored
from server.relay import Connection, Relay
from server.sqlite_store import DB_FILENAME
from tests.client.helpers import (
    intercept,
    make_client,
    notices,
    online,
    received,
    reopen,
    shut,
    wait_for,
    wait_last,
    wait_state,
)
from tests.support import RunningRelay, running_relay


def frames(events: list[RelayEvent], kind: str, user: str | None = None) -> list[FrameIn]:
    return [e for e in events if isinstance(e, FrameIn) and e.frame_type == kind
            and e.user == user]


async def _pair(tmp_path: Path, url: str, a: str = "alice", b: str = "bob"
                ) -> tuple[Client, Client]:
    """Two clients who wrote to each other once: each holds the other's capability and
    no receipt is still on its way."""
    first = await make_client(tmp_path, a, url)
    second = await make_client(tmp_path, b, url)
    hello = await first.send_text(b, "hello")
    await wait_state(first, b, hello, State.DELIVERED)
    hi = await second.send_text(a, "hi")
    await wait_state(second, a, hi, State.DELIVERED)
    return first, second


def _holds_capability(holder: Client, of: str) -> bool:
    contact = holder.contact(of)
    return contact is not None and contact.capability is not None


def _db_rows(data_dir: Path, table: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return list(db.execute(f"SELECT * FROM {table}"))
    finally:
        db.close()


async def test_sealed_is_the_default_and_nothing_ties_a_sealed_send_to_its_sender(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[RelayEvent] = []
    async with running_relay(tmp_path / "relay") as relay:
        relay.relay.observers.append(events.append)
        alice, bob = await _pair(tmp_path, relay.url)
        assert alice.sealed_sending and bob.sealed_sending  # the default
        assert _holds_capability(alice, "bob") and _holds_capability(bob, "alice")
        # the first message went by the fallback (bob allows no strangers): alice's
        # capability, then her text; after that both sides send sealed only: bob's
        # capability and receipt, his reply, alice's receipt
        assert len(frames(events, "Send", "alice")) == 2
        assert frames(events, "Send", "bob") == []
        assert frames(events, "SealedSend")

        # bob away: alice's texts wait for him on the relay, sent sealed
        await bob.disconnect()
        events.clear()
        caplog.set_level(logging.DEBUG)
        caplog.clear()
        sent = [await alice.send_text("bob", f"sealed {i}") for i in range(3)]
        for message in sent:
            await wait_state(alice, "bob", message, State.SENT)
        stored = [e for e in events if isinstance(e, Stored)]
        assert len(stored) == 3
        ids = {e.envelope_id for e in stored}
        sealed_frames = frames(events, "SealedSend")
        assert sealed_frames  # on a connection with no account: its user is None
        assert not [e for e in events if isinstance(e, FrameIn) and e.user == "alice"]

        # the relay's memory: no per-sender share of the queue, and the sealed budget's
        # buckets are keyed by (recipient, capability hash) only
        shares = relay.relay.budgets.shares
        assert not ids & set(shares.by_id)
        assert not [k for k in shares.pair_count if "alice" in k]
        assert "alice" not in shares.sender_bytes
        bob_capability = alice.contact("bob").capability  # type: ignore[union-attr]
        assert bob_capability is not None
        alice_capability = alice.capabilities.state().capability
        keys = set(relay.relay.budgets.sealed.buckets)
        assert ("bob", hashlib.sha256(bob_capability).digest()) in keys
        assert keys <= {("bob", hashlib.sha256(bob_capability).digest()),  # by recipient
                        ("alice", hashlib.sha256(alice_capability).digest())}  # (bob's)
        # its log
        server_logs = [r.getMessage() for r in caplog.records
                       if not r.name.startswith("blindrelay.client")]
        assert not [line for line in server_logs if "alice" in line]
        # the handler has no way to receive a sender
        assert list(inspect.signature(Relay._sealed_send).parameters) == ["self", "frame"]

        # bob logs in: he gets them all, and his receipts go sealed too
        events.clear()
        await online(bob)
        await wait_last(bob, "alice", "sealed 2")
        for message in sent:
            await wait_state(alice, "bob", message, State.DELIVERED)
        assert frames(events, "Send", "bob") == [] and frames(events, "SealedSend")
        await shut(alice, bob)
    # its database: the stored rows carry no name but the recipient's, no key of alice's
    rows = _db_rows(tmp_path / "relay", "envelopes")
    assert not [r for r in rows for v in r
                if v == "alice" or (isinstance(v, bytes) and alice.identity.public in v)]


async def test_a_relay_restart_loses_no_sealed_envelope(tmp_path: Path,
                                                        unused_port: int) -> None:
    config = ServerConfig(port=unused_port, data_dir=tmp_path / "relay")
    async with serve.running_relay(config) as running:
        alice, bob = await _pair(tmp_path, running.url)
        await bob.disconnect()
        before = await alice.send_text("bob", "before the restart")
        await wait_state(alice, "bob", before, State.SENT)
        await alice.disconnect()
    during = await alice.send_text("bob", "while the relay was down")
    assert during.state is State.SENDING
    events: list[RelayEvent] = []
    async with serve.running_relay(config) as running:
        running.relay.observers.append(events.append)
        await online(alice)
        await wait_state(alice, "bob", during, State.SENT)
        await online(bob)
        await wait_last(bob, "alice", "while the relay was down")
        assert received(bob, "alice")[-2:] == ["before the restart",
                                              "while the relay was down"]
        await wait_state(alice, "bob", during, State.DELIVERED)
        assert frames(events, "Send", "alice") == frames(events, "Send", "bob") == []
        await shut(alice, bob)


async def test_a_replayed_sealed_envelope_is_rejected(tmp_path: Path,
                                                      relay: RunningRelay) -> None:
    """Someone who copied a sealed envelope (and holds bob's capability) sends it again:
    the relay stores it, bob's client shows it once and says a duplicate was dropped."""
    alice, bob = await _pair(tmp_path, relay.url)
    await bob.disconnect()
    message = await alice.send_text("bob", "say it once")
    await wait_state(alice, "bob", message, State.SENT)
    [copy] = await intercept(relay.url, bob)
    capability = alice.contact("bob").capability  # type: ignore[union-attr]
    assert capability is not None
    await online(bob)
    await bob.receive(copy)
    assert received(bob, "alice")[-1] == "say it once"
    conn = await RelayConnection.open(relay.url)  # never logs in
    try:
        await conn.request(SealedSend((SealedOutgoing("bob", capability, copy.body),)), Sent)
    finally:
        await conn.close()
    await wait_for(lambda: any("duplicate" in n for n in notices(bob, "alice")))
    assert received(bob, "alice").count("say it once") == 1
    await shut(alice, bob)


async def test_rotation_cuts_one_contact_off_who_falls_back_and_still_arrives(
        tmp_path: Path, relay: RunningRelay) -> None:
    alice, bob = await _pair(tmp_path, relay.url)
    carol = await make_client(tmp_path, "carol", relay.url)
    hello = await carol.send_text("bob", "hello from carol")
    await wait_state(carol, "bob", hello, State.DELIVERED)
    await wait_for(lambda: _holds_capability(carol, "bob"))
    old = carol.contact("bob").capability  # type: ignore[union-attr]
    assert alice.contact("bob").capability == old  # type: ignore[union-attr]

    assert await bob.rotate_capability(cut=["carol"]) == 1  # alice only
    assert bob.capabilities.held()  # the relay was told at once
    await wait_for(lambda: alice.contact("bob").capability != old)  # type: ignore[union-attr]
    events: list[RelayEvent] = []
    relay.relay.observers.append(events.append)
    await alice.send_text("bob", "alice, still sealed")
    await wait_last(bob, "alice", "alice, still sealed")
    await carol.send_text("bob", "carol, cut off")
    await wait_last(bob, "carol", "carol, cut off")  # it still arrives...
    assert len(frames(events, "Send", "carol")) == 1  # ... by SEND, the relay sees carol
    assert frames(events, "Send", "alice") == []
    assert carol.contact("bob").capability == old  # type: ignore[union-attr]
    cut = bob.contact("carol")
    assert cut is not None and cut.cut_off
    # bob writing to carol does not give her the new capability either
    await bob.send_text("carol", "noted")
    await wait_last(carol, "bob", "noted")
    assert carol.contact("bob").capability == old  # type: ignore[union-attr]
    await shut(alice, bob, carol)


async def test_a_rotation_offline_reaches_the_relay_at_the_next_login(
        tmp_path: Path, relay: RunningRelay) -> None:
    alice, bob = await _pair(tmp_path, relay.url)
    old = alice.contact("bob").capability  # type: ignore[union-attr]
    await bob.disconnect()
    await bob.rotate_capability()
    assert not bob.capabilities.held()
    await online(bob)
    assert bob.capabilities.held()
    await wait_for(lambda: alice.contact("bob").capability != old)  # type: ignore[union-attr]
    events: list[RelayEvent] = []
    relay.relay.observers.append(events.append)
    await alice.send_text("bob", "with the new one")
    await wait_last(bob, "alice", "with the new one")
    assert frames(events, "Send", "alice") == []
    await shut(alice, bob)


async def test_allow_anyone_lets_a_strangers_first_message_arrive_sealed(
        tmp_path: Path, relay: RunningRelay) -> None:
    bob = await make_client(tmp_path, "bob", relay.url)
    dave = await make_client(tmp_path, "dave", relay.url)
    erin = await make_client(tmp_path, "erin", relay.url)
    events: list[RelayEvent] = []
    relay.relay.observers.append(events.append)
    await erin.send_text("bob", "erin, a stranger")  # bob allows no strangers (default)
    await wait_last(bob, "erin", "erin, a stranger")
    # the fallback: the relay saw erin send her capability and her text
    assert len(frames(events, "Send", "erin")) == 2
    await bob.set_allow_anyone(True)
    assert bob.allow_anyone and bob.capabilities.held()
    await dave.send_text("bob", "dave, a stranger")
    await wait_last(bob, "dave", "dave, a stranger")
    assert frames(events, "Send", "dave") == []  # sealed from the first message on
    await shut(bob, dave, erin)


async def test_a_rate_limited_sealed_flush_tries_again_by_itself(tmp_path: Path) -> None:
    """RATE_LIMITED defers (it does not fall back to SEND), and the client tries again
    without anything else happening."""
    budgets = Budgets(sealed_per_capability=Rate(2.0, 4))
    async with running_relay(tmp_path / "relay", budgets=budgets) as relay:
        alice, bob = await _pair(tmp_path, relay.url)
        events: list[RelayEvent] = []
        relay.relay.observers.append(events.append)
        words = [f"burst {i}" for i in range(8)]
        for word in words:
            await alice.send_text("bob", word)
        await wait_for(lambda: received(bob, "alice")[-8:] == words, 20)
        assert frames(events, "Send", "alice") == []
        await shut(alice, bob)


async def test_sealed_sending_off_sends_everything_on_the_logged_in_connection(
        tmp_path: Path, relay: RunningRelay) -> None:
    alice, bob = await _pair(tmp_path, relay.url)
    alice.sealed_sending = False
    alice = await reopen(alice)  # the setting is kept in the profile
    assert not alice.sealed_sending
    events: list[RelayEvent] = []
    relay.relay.observers.append(events.append)
    await alice.send_text("bob", "unsealed")
    await wait_last(bob, "alice", "unsealed")
    assert len(frames(events, "Send", "alice")) == 1
    await shut(alice, bob)


async def test_a_delayed_receipt_waits_across_a_restart_and_holds_nothing_back(
        tmp_path: Path, relay: RunningRelay) -> None:
    alice, bob = await _pair(tmp_path, relay.url)
    bob.receipt_delay = 30.0
    start = time.time()
    message = await alice.send_text("bob", "one")
    await wait_last(bob, "alice", "one")
    [(_, waiting)] = bob.outbox.repo.items()
    assert not waiting.envelope and waiting.deferred  # kept, not encrypted yet
    assert start <= waiting.not_before <= time.time() + 30.0
    # a text bob writes now goes at once, ahead of the receipt
    await bob.send_text("alice", "a reply, not held back")
    await wait_last(alice, "bob", "a reply, not held back")
    assert alice.message(message.row_id).state is State.SENT  # type: ignore[union-attr]
    # a restart keeps the receipt and its time
    bob = await reopen(bob)
    [(_, kept)] = bob.outbox.repo.items()
    assert kept.not_before == waiting.not_before and bob.receipt_delay == 30.0
    # once due (bob's clock moved on), it goes, and alice sees no gap in bob's messages
    bob.clock = lambda: time.time() + 31.0
    await bob.flush_outbox()
    await wait_state(alice, "bob", message, State.DELIVERED)
    assert not [n for n in notices(alice, "bob") if "not arrived" in n]
    assert bob.outbox.repo.items() == []
    await shut(alice, bob)


async def test_a_delayed_receipt_goes_by_itself(tmp_path: Path, relay: RunningRelay) -> None:
    alice, bob = await _pair(tmp_path, relay.url)
    bob.receipt_delay = 0.5
    sent = [await alice.send_text("bob", f"m{i}") for i in range(3)]
    await wait_last(bob, "alice", "m2")
    for message in sent:  # nothing else happens: bob's client wakes for each
        await wait_state(alice, "bob", message, State.DELIVERED)
    assert await bob.mark_read("alice") == 4  # and "hello"
    for message in sent:
        await wait_state(alice, "bob", message, State.READ)
    assert [m.text for m in alice.history("bob") if m.direction is Direction.IN] == ["hi"]
    await shut(alice, bob)


async def test_status_never_shows_a_capability(tmp_path: Path, relay: RunningRelay,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from client.commands import sealed_status

    alice, bob = await _pair(tmp_path, relay.url)
    sealed_status(bob)
    out = capsys.readouterr().out
    mine = bob.capabilities.state().capability
    theirs = bob.contact("alice").capability  # type: ignore[union-attr]
    assert theirs is not None
    for secret in (mine, theirs):
        assert secret.hex() not in out and secret.hex()[:8] not in out
    assert "sealed sending: on" in out and "generation 1, the relay holds it" in out
    assert "contacts given it: 1 of 1" in out
    assert repr(mine) not in repr(bob.capabilities.state())
    assert theirs.hex() not in repr(bob.contact("alice"))
    await asyncio.sleep(0)
    await shut(alice, bob)


async def test_a_fallback_keeps_batching(tmp_path: Path, relay: RunningRelay) -> None:
    """To someone who gave no capability (and allows no strangers) the queue falls back
    to SEND after one refusal, still several envelopes per SEND."""
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url, connect=False)
    await bob.connect()
    await bob.disconnect()  # registered, never writes
    await alice.send_text("bob", "first")
    await alice.disconnect()
    for i in range(10):
        await alice.send_text("bob", f"queued {i}")
    events: list[RelayEvent] = []
    relay.relay.observers.append(events.append)
    await online(alice)
    assert alice.store.outbox() == []
    # one SEALED_SEND of ten refused, the first alone refused, then: it alone, the nine
    assert [e.frame_type for e in events if isinstance(e, FrameIn)
            and e.frame_type in ("Send", "SealedSend")] == ["SealedSend"] * 2 + ["Send"] * 2
    await online(bob)
    await wait_last(bob, "alice", "queued 9")
    assert received(bob, "alice") == ["first"] + [f"queued {i}" for i in range(10)]
    await shut(alice, bob)


class _OlderRelay(Relay):
    """A relay from before sealed sending: it knows neither SEALED_SEND nor
    SET_CAPABILITY."""

    async def _carry_out(self, conn: Connection, frame: Frame) -> Frame:
        if isinstance(frame, SealedSend | SetCapability):
            raise RequestRefused(ErrorCode.UNKNOWN_FRAME_TYPE, "unknown frame type")
        return await super()._carry_out(conn, frame)


async def test_a_relay_without_sealed_sending_still_gets_everything(tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path / "relay")
    async with serve.running_relay(config, _OlderRelay) as running:
        alice = await make_client(tmp_path, "alice", running.url)
        bob = await make_client(tmp_path, "bob", running.url)
        assert not alice.capabilities.held()  # it was refused, and tried again next time
        sent = [await alice.send_text("bob", f"m{i}") for i in range(3)]
        await wait_last(bob, "alice", "m2")
        for message in sent:
            await wait_state(alice, "bob", message, State.DELIVERED)
        await shut(alice, bob)
