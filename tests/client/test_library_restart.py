"""Restarts and crashes: the client closed and reopened mid-conversation, the
relay stopped and started again, a receiver killed between storing a message and
acknowledging it, and an outbox that outlives the program."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import pytest

from client.client import Client
from client.events import MessageEvent, StatusEvent
from client.records import Direction, OutboxItem, State
from tests.client.helpers import (
    PASSPHRASE,
    StateLog,
    make_client,
    notices,
    online,
    received,
    reopen,
    shut,
    state_of,
    wait_for,
    wait_last,
    wait_state,
)
from tests.support import ROOT, RelayProcess, running_relay, start_relay_process


async def test_client_restart_mid_conversation(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "before the restart")
        await wait_for(lambda: received(bob, "alice") == ["before the restart"])
        await bob.send_text("alice", "reply before")
        await wait_for(lambda: received(alice, "bob") == ["reply before"])

        # alice quits; bob writes while she is away; she comes back with her passphrase
        await alice.disconnect()
        alice.close()
        await bob.send_text("alice", "while you were away")
        alice = Client.open(tmp_path / "alice", PASSPHRASE)
        assert received(alice, "bob") == ["reply before"]  # history came back from disk
        await online(alice)
        assert received(alice, "bob") == ["reply before", "while you were away"]

        # bob restarts too; the ratchets continue where they were, both ways
        bob = await reopen(bob)
        for turn in range(3):
            await alice.send_text("bob", f"after {turn}")
            await wait_last(bob, "alice", f"after {turn}")
            await bob.send_text("alice", f"reply after {turn}")
            await wait_last(alice, "bob", f"reply after {turn}")
            alice = await reopen(alice)
        assert received(bob, "alice") == ["before the restart", "after 0", "after 1", "after 2"]
        assert not [m for c, n in ((alice, "bob"), (bob, "alice")) for m in c.history(n)
                    if m.state in (State.UNDECRYPTABLE, State.FAILED)]
        await shut(alice, bob)


async def test_outbox_survives_a_restart(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "hello")
        await wait_for(lambda: received(bob, "alice") == ["hello"])

        # offline: a message to a contact with a session is encrypted and queued
        await alice.disconnect()
        queued = await alice.send_text("bob", "written offline")
        assert queued.state is State.SENDING
        assert len(alice.store.outbox()) == 1

        alice = await reopen(alice, connect=False)  # the program quits and starts again
        assert state_of(alice, "bob", queued.row_id) is State.SENDING
        assert len(alice.store.outbox()) == 1
        assert received(bob, "alice") == ["hello"]

        log = StateLog(alice)
        await online(alice)
        await wait_for(lambda: received(bob, "alice") == ["hello", "written offline"])
        await wait_state(alice, "bob", queued, State.DELIVERED)
        assert log.of(queued) == [State.SENT, State.DELIVERED]
        assert alice.store.outbox() == []
        await shut(alice, bob)


async def test_receipts_queued_offline_go_out_after_a_restart(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        sent = await alice.send_text("bob", "read me")
        await wait_state(alice, "bob", sent, State.DELIVERED)
        await bob.disconnect()
        assert await bob.mark_read("alice") == 1  # offline: the READ receipt is queued
        bob = await reopen(bob)
        await wait_state(alice, "bob", sent, State.READ)
        await shut(alice, bob)


async def test_connecting_again_replaces_the_connection(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        shown: list[str] = []
        bob.on_event(lambda e: shown.append(e.message.text)
                     if isinstance(e, MessageEvent) and e.message.direction is Direction.IN
                     else None)
        for _ in range(2):
            await online(bob)  # without disconnecting first
        await wait_for(lambda: relay.relay.connections == 2)  # one each, none left over
        await alice.send_text("bob", "once")
        await wait_for(lambda: received(bob, "alice") == ["once"])
        await bob.send_text("alice", "and back")
        await wait_for(lambda: received(alice, "bob") == ["and back"])
        assert shown == ["once"]
        await shut(alice, bob)
        await wait_for(lambda: relay.relay.connections == 0)


async def _start(data: Path, port: int | None = None) -> RelayProcess:
    args = ("--port", str(port)) if port is not None else ()
    return await asyncio.to_thread(start_relay_process, data, *args)


async def _stop(rp: RelayProcess) -> None:
    assert await asyncio.to_thread(rp.stop) == 0  # SIGTERM: a clean shutdown
    await asyncio.to_thread(rp.proc.communicate)


async def test_server_restart_mid_conversation(tmp_path: Path) -> None:
    """Bob's client runs `Client.run`, which reconnects by itself with backoff; alice's
    is connected by hand and calls `connect()` again once the relay is back."""
    data = tmp_path / "relay"
    rp = await _start(data)
    port = int(rp.url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    runs: list[asyncio.Task[None]] = []
    try:
        alice = await make_client(tmp_path, "alice", rp.url)
        bob = await make_client(tmp_path, "bob", rp.url)  # registered, keys published
        await bob.disconnect()
        statuses: list[str] = []
        bob.on_event(lambda e: statuses.append(e.status) if isinstance(e, StatusEvent)
                     else None)
        runs = [asyncio.create_task(bob.run(stop, max_backoff=0.3))]
        await wait_for(lambda: bob.status == "online")
        first = await alice.send_text("bob", "before")
        await wait_for(lambda: received(bob, "alice") == ["before"])
        reply = await bob.send_text("alice", "reply before")
        await wait_for(lambda: received(alice, "bob") == ["reply before"])
        await wait_state(alice, "bob", first, State.DELIVERED)
        await wait_state(bob, "alice", reply, State.DELIVERED)

        await _stop(rp)
        assert alice.conn is not None
        await asyncio.wait_for(alice.conn.closed.wait(), 10)
        await wait_for(lambda: bob.status == "offline")
        down_a = await alice.send_text("bob", "sent while the relay is down")
        down_b = await bob.send_text("alice", "also while it is down")
        for client, message in ((alice, down_a), (bob, down_b)):
            assert message.state is State.SENDING
            items = [OutboxItem.decode(data) for _, data in client.store.outbox()]
            assert [item.message_row for item in items] == [message.row_id]

        rp = await _start(data, port)  # same data directory, same address
        await online(alice)
        await wait_for(lambda: bob.status == "online")
        await wait_for(lambda: received(bob, "alice") == ["before",
                                                          "sent while the relay is down"])
        await wait_for(lambda: received(alice, "bob") == ["reply before",
                                                          "also while it is down"])
        await wait_state(alice, "bob", down_a, State.DELIVERED)
        await wait_state(bob, "alice", down_b, State.DELIVERED)
        assert statuses.count("online") == 2  # bob's client reconnected by itself

        await alice.send_text("bob", "after")
        await wait_for(lambda: received(bob, "alice")[-1:] == ["after"])
        await bob.send_text("alice", "reply after")
        await wait_for(lambda: received(alice, "bob")[-1:] == ["reply after"])
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), 10)
        assert bob.status == "offline"
        await shut(alice, bob)
    finally:
        stop.set()
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        with contextlib.suppress(Exception):
            await _stop(rp)


async def _run_receiver_until_crash(home: Path) -> int:
    """Runs a receiving client as a process that dies between commit and ACK."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.client.receiver_process", str(home), PASSPHRASE.decode(),
        "exit-before-ack", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 75, err.decode()
    return proc.returncode


@pytest.mark.parametrize("first_contact", [True, False],
                         ids=["initial-message", "mid-conversation"])
async def test_crash_between_receive_and_ack(tmp_path: Path, first_contact: bool) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        before: list[str] = []
        if not first_contact:
            await alice.send_text("bob", "earlier")
            await wait_for(lambda: received(bob, "alice") == ["earlier"])
            reply = await bob.send_text("alice", "earlier reply")
            await wait_for(lambda: received(alice, "bob") == ["earlier reply"])
            await wait_state(bob, "alice", reply, State.DELIVERED)  # nothing left for bob
            before = ["earlier"]
        await shut(bob)

        sent = await alice.send_text("bob", "the message in flight")
        await wait_state(alice, "bob", sent, State.SENT)
        await _run_receiver_until_crash(tmp_path / "bob")

        # the crash left the envelope unacknowledged: the relay still holds it. A first
        # contact starts with alice's delivery capability (PROTOCOL.md 9.1): that is the
        # initial message, which sets bob's session up, and the crash comes after it
        queued = await relay.relay.storage.queued("bob", 0, 10)
        assert len(queued) == (2 if first_contact else 1)
        assert state_of(alice, "bob", sent.row_id) is State.SENT

        bob = Client.open(tmp_path / "bob", PASSPHRASE)
        # ... and the page it ended in was committed before the crash: mid-conversation
        # that is the message; a first contact's two envelopes may have come as one page
        # (the initial message waits for the key directory, then both commit together)
        committed = received(bob, "alice")[len(before):]
        assert received(bob, "alice")[:len(before)] == before
        assert committed == ["the message in flight"] or (first_contact and committed == [])
        contact = bob.contact("alice")
        assert contact is not None and contact.capability is not None
        shown: list[str] = []
        bob.on_event(lambda e: shown.append(e.message.text)
                     if isinstance(e, MessageEvent) and e.message.direction is Direction.IN
                     else None)
        await online(bob)  # the relay redelivers; the copy is dropped, and acknowledged
        assert shown == ([] if committed else ["the message in flight"])
        assert received(bob, "alice") == [*before, "the message in flight"]
        assert not [n for n in notices(bob, "alice") if "duplicate" in n]
        assert await relay.relay.storage.queued("bob", 0, 10) == []
        # the delivery receipt committed with the message went out from the outbox
        await wait_state(alice, "bob", sent, State.DELIVERED)

        # the ratchets are in step: the conversation continues both ways
        for turn in range(2):
            await bob.send_text("alice", f"bob {turn}")
            await wait_last(alice, "bob", f"bob {turn}")
            await alice.send_text("bob", f"alice {turn}")
            await wait_last(bob, "alice", f"alice {turn}")
        assert not [m for c, n in ((alice, "bob"), (bob, "alice")) for m in c.history(n)
                    if m.state is State.UNDECRYPTABLE]
        await shut(alice, bob)


async def test_crash_between_a_pages_commit_and_its_ack(tmp_path: Path) -> None:
    """Envelopes waiting at login are handled as one page: one transaction, then one
    ACK. A crash between the two loses none of them and shows none twice."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await alice.send_text("bob", "earlier")
        await wait_for(lambda: received(bob, "alice") == ["earlier"])
        reply = await bob.send_text("alice", "earlier reply")
        await wait_state(bob, "alice", reply, State.DELIVERED)
        await shut(bob)

        texts = [f"page {i}" for i in range(5)]
        sent = [await alice.send_text("bob", text) for text in texts]
        for message in sent:
            await wait_state(alice, "bob", message, State.SENT)
        await _run_receiver_until_crash(tmp_path / "bob")
        assert len(await relay.relay.storage.queued("bob", 0, 10)) == 5  # none acked

        bob = Client.open(tmp_path / "bob", PASSPHRASE)
        committed = received(bob, "alice")[1:]
        assert committed and committed == texts[:len(committed)]  # in order, no gap
        shown: list[str] = []
        bob.on_event(lambda e: shown.append(e.message.text)
                     if isinstance(e, MessageEvent) and e.message.direction is Direction.IN
                     else None)
        await online(bob)  # the copies are recognised, acknowledged and not shown
        await wait_for(lambda: received(bob, "alice") == ["earlier", *texts])
        assert shown == texts[len(committed):]
        assert not [n for n in notices(bob, "alice") if "duplicate" in n]
        for message in sent:
            await wait_state(alice, "bob", message, State.DELIVERED)
        for _ in range(100):  # the quiet ACK gets no answer: the relay deletes them soon
            if not await relay.relay.storage.queued("bob", 0, 10):
                break
            await asyncio.sleep(0.02)
        assert await relay.relay.storage.queued("bob", 0, 10) == []
        await shut(alice, bob)
