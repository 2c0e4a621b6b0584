"""Group chats in the client library against a real relay (PROTOCOL.md 21.4-21.6):
create, chat, remove (the removed member reads nothing after), add, rename, leave,
restarts of clients and of the relay, and two members' commits racing for one epoch."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from client import groups as groups_module
from client.client import Client
from client.errors import ConnectionDropped, KeyChangeBlocked, Refused
from client.group_records import GroupStatus
from client.groups import KEY_PACKAGE_TARGET, NOT_THEIR_KEY, GroupView
from client.records import Direction
from protocol.e2e.mls import committing
from tests.client.helpers import PASSPHRASE, make_client, online, reopen, shut, wait_for
from tests.client.test_library_restart import _run_receiver_until_crash
from tests.support import RelayProcess, running_relay, start_relay_process


def texts(client: Client, group_id: bytes) -> list[tuple[str, str]]:
    return [(m.sender, m.text) for m in client.groups.history(group_id, 1000)
            if m.direction is not Direction.NOTICE]


def notices(client: Client, group_id: bytes) -> list[str]:
    return [m.text for m in client.groups.history(group_id, 1000)
            if m.direction is Direction.NOTICE]


def joined(client: Client, group_id: bytes) -> bool:
    return client.groups.record(group_id) is not None


def member_names(view: GroupView) -> list[str]:
    return [m.name for m in view.members]


async def test_three_users_create_chat_remove_and_add(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        dave = await make_client(tmp_path, "dave", relay.url)

        view = await alice.groups.create("friends", ["bob", "carol"])
        gid = view.group_id
        assert member_names(view) == ["alice", "bob", "carol"]
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))
        assert bob.groups.find("friends").name == "friends"
        assert "You were added to the group friends with alice, carol." in notices(bob, gid)

        await alice.groups.send_text(gid, "hello all")
        await wait_for(lambda: texts(bob, gid) == [("alice", "hello all")]
                       and texts(carol, gid) == [("alice", "hello all")])
        await carol.groups.send_text(gid, "hi from carol")
        await wait_for(lambda: texts(bob, gid)[-1:] == [("carol", "hi from carol")])
        # every member sees the same group: the epoch authenticators agree
        codes = {c.groups.find("friends").code for c in (alice, bob, carol)}
        assert len(codes) == 1
        # members' keys are their identity keys, checked like one-to-one contacts
        trust = {m.name: m.trust for m in bob.groups.find("friends").members}
        assert trust == {"alice": "unverified", "bob": "you", "carol": "unverified"}

        await alice.groups.remove(gid, "carol")
        await wait_for(lambda: carol.groups.record(gid).status  # type: ignore[union-attr]
                       is GroupStatus.REMOVED)
        await wait_for(lambda: "carol was removed by alice." in notices(bob, gid))
        assert "alice removed you from the group." in notices(carol, gid)
        await bob.groups.send_text(gid, "carol cannot read this")
        await alice.groups.add(gid, ["dave"])
        await wait_for(lambda: joined(dave, gid))
        await wait_for(lambda: "alice added dave." in notices(bob, gid))
        await dave.groups.send_text(gid, "dave here")
        await wait_for(lambda: texts(bob, gid)[-1:] == [("dave", "dave here")])
        await wait_for(lambda: texts(alice, gid)[-1:] == [("dave", "dave here")])
        await asyncio.sleep(0.3)
        assert ("bob", "carol cannot read this") not in texts(carol, gid)
        assert ("dave", "dave here") not in texts(carol, gid)
        assert texts(dave, gid) == [("dave", "dave here")]  # nothing from before he came
        assert member_names(bob.groups.find("friends")) == ["alice", "bob", "dave"]
        await shut(alice, bob, carol, dave)


async def test_rename_leave_and_self_update(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        gid = (await alice.groups.create("team", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))

        await bob.groups.rename(gid, "the team")
        await wait_for(lambda: "bob renamed the group to the team." in notices(alice, gid)
                       and carol.groups.find("the team").epoch == 2)
        before = alice.groups.find("the team").code
        await carol.groups.self_update(gid)
        await wait_for(lambda: "carol updated their keys." in notices(alice, gid))
        assert alice.groups.find("the team").code != before

        await carol.groups.leave(gid)  # alice (the lowest leaf) commits it
        await wait_for(lambda: carol.groups.record(gid).status  # type: ignore[union-attr]
                       is GroupStatus.REMOVED)
        await wait_for(lambda: "carol left the group." in notices(bob, gid))
        assert member_names(bob.groups.find("the team")) == ["alice", "bob"]
        await bob.groups.send_text(gid, "just us")
        await wait_for(lambda: texts(alice, gid)[-1:] == [("bob", "just us")])
        await shut(alice, bob, carol)


async def test_restarts_of_clients_and_relay_lose_nothing(tmp_path: Path) -> None:
    relay: RelayProcess = await asyncio.to_thread(start_relay_process, tmp_path / "relay")
    port = relay.url.rsplit(":", 1)[1]
    try:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url, connect=False)
        await online(carol)  # her KeyPackages are on the relay
        await carol.disconnect()
        gid = (await alice.groups.create("g", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid))
        await alice.groups.send_text(gid, "one")
        bob = await reopen(bob)
        await wait_for(lambda: texts(bob, gid) == [("alice", "one")])

        await asyncio.to_thread(relay.stop)  # SIGTERM: a clean shutdown
        await asyncio.to_thread(relay.proc.communicate)
        relay = await asyncio.to_thread(start_relay_process, tmp_path / "relay", "--port", port)
        alice = await reopen(alice)
        bob = await reopen(bob)
        await bob.groups.send_text(gid, "two")
        await wait_for(lambda: texts(alice, gid)[-1:] == [("bob", "two")])
        await online(carol)  # offline all along: her Welcome and both messages wait
        await wait_for(lambda: texts(carol, gid) == [("alice", "one"), ("bob", "two")])
        carol = await reopen(carol)
        await carol.groups.send_text(gid, "three")
        await wait_for(lambda: texts(alice, gid)[-1:] == [("carol", "three")]
                       and texts(bob, gid)[-1:] == [("carol", "three")])
        await shut(alice, bob, carol)
    finally:
        await asyncio.to_thread(relay.stop)
        await asyncio.to_thread(relay.proc.communicate)


async def test_commits_racing_for_one_epoch(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "blindrelay.client")
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        dave = await make_client(tmp_path, "dave", relay.url)
        gid = (await alice.groups.create("race", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))
        # both commit at epoch 1: bob builds his commit before alice's reaches him (his
        # deliveries are held back); the relay admits alice's, refuses bob's, and bob
        # processes the winner's commit and tries again on the next epoch
        gate = asyncio.Event()
        receive = bob.groups.receive

        async def held(*args: Any, **kwargs: Any) -> bool:
            await gate.wait()
            return await receive(*args, **kwargs)

        bob.groups.receive = held  # type: ignore[method-assign]
        await alice.groups.rename(gid, "renamed")
        adding = asyncio.create_task(bob.groups.add(gid, ["dave"]))
        await wait_for(lambda: "group commit lost its epoch" in caplog.text)
        assert not adding.done()
        gate.set()
        await adding
        await wait_for(lambda: all(c.groups.record(gid) is not None
                                   and c.groups.find(gid.hex()).epoch == 3
                                   for c in (alice, bob, carol, dave)))
        views = [c.groups.find(gid.hex()) for c in (alice, bob, carol, dave)]
        assert {v.name for v in views} == {"renamed"}
        assert {v.code for v in views} == {views[0].code}
        assert member_names(views[0]) == ["alice", "bob", "carol", "dave"]
        await carol.groups.send_text(gid, "after the race")
        await wait_for(lambda: all(texts(c, gid)[-1:] == [("carol", "after the race")]
                                   for c in (alice, bob, dave)))
        await shut(alice, bob, carol, dave)


def _hold(client: Client) -> asyncio.Event:
    """Holds back what the relay delivers to `client` until the returned event is set
    (the timing of a real network, made deterministic)."""
    gate = asyncio.Event()
    receive = client.groups.receive

    async def held(*args: Any, **kwargs: Any) -> bool:
        await gate.wait()
        return await receive(*args, **kwargs)

    client.groups.receive = held  # type: ignore[method-assign]
    return gate


async def test_a_message_sent_just_before_a_commit_is_still_read(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        gid = (await alice.groups.create("g", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))
        gate = _hold(bob)  # bob has not seen alice's commit when he writes
        await alice.groups.self_update(gid)
        await bob.groups.send_text(gid, "written at the old epoch")
        await wait_for(lambda: texts(alice, gid) == [("bob", "written at the old epoch")]
                       and texts(carol, gid) == [("bob", "written at the old epoch")])
        gate.set()
        await wait_for(lambda: bob.groups.find("g").epoch == 2)
        await bob.groups.send_text(gid, "and at the new one")
        await wait_for(lambda: texts(carol, gid)[-1:] == [("bob", "and at the new one")])
        await shut(alice, bob, carol)


async def test_a_message_that_overtakes_the_welcome_is_read_after_it(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        dave = await make_client(tmp_path, "dave", relay.url)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        welcome_gate = asyncio.Event()
        send_welcome = alice.groups._send_welcome

        async def late_welcome(*args: Any) -> None:
            await welcome_gate.wait()
            await send_welcome(*args)

        alice.groups._send_welcome = late_welcome  # type: ignore[method-assign,assignment]
        adding = asyncio.create_task(alice.groups.add(gid, ["dave"]))
        await wait_for(lambda: member_names(bob.groups.find("g")) == ["alice", "bob", "dave"])
        await bob.groups.send_text(gid, "welcome dave")  # reaches dave before his Welcome
        await asyncio.sleep(0.3)
        assert not joined(dave, gid)
        welcome_gate.set()
        await adding
        await wait_for(lambda: texts(dave, gid) == [("bob", "welcome dave")])
        await shut(alice, bob, dave)


@pytest.mark.parametrize("someone_writes", [True, False])
async def test_a_commit_whose_answer_was_lost_is_settled(tmp_path: Path,
                                                         someone_writes: bool) -> None:
    """The relay admitted alice's commit but the connection dropped before SENT: she
    must not stay behind. Bob's next message shows her the group moved on with it;
    with nobody writing, sending it again at the next connection settles it."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        group_send = alice.groups._group_send

        async def lost_answer(conn: Any, recipients: list[str], message: bytes) -> Any:
            await group_send(conn, recipients, message)
            raise ConnectionDropped("the connection dropped")

        alice.groups._group_send = lost_answer  # type: ignore[method-assign]
        with pytest.raises(ConnectionDropped):
            await alice.groups.rename(gid, "renamed")
        del alice.groups._group_send
        await alice.disconnect()
        await wait_for(lambda: bob.groups.find(gid.hex()).name == "renamed")
        if someone_writes:
            await bob.groups.send_text(gid, "at epoch 2")
        await online(alice)
        await wait_for(lambda: alice.groups.find(gid.hex()).epoch == 2)
        assert alice.groups.find(gid.hex()).name == "renamed"
        if someone_writes:
            await wait_for(lambda: texts(alice, gid) == [("bob", "at epoch 2")])
        await alice.groups.send_text(gid, "in step")
        await wait_for(lambda: texts(bob, gid)[-1:] == [("alice", "in step")])
        await shut(alice, bob)


async def test_key_packages_are_kept_on_the_relay_and_used_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        pool = bob.groups._pool()
        assert pool.one_time() == KEY_PACKAGE_TARGET and pool.last_resort() is not None
        assert all(p.uploaded for p in pool.packages.values())
        before = set(pool.packages)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        after = set(bob.groups._pool().packages)
        assert len(before - after) == 1 and not after - before  # its private keys deleted
        monkeypatch.setattr(groups_module, "KEY_PACKAGE_LOW", KEY_PACKAGE_TARGET)
        bob = await reopen(bob)  # below the (raised) low mark: topped up after login
        assert bob.groups._pool().one_time() == KEY_PACKAGE_TARGET
        await shut(alice, bob)


async def test_a_member_whose_key_changed_is_not_added(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        await alice.send_text("bob", "hi")  # bob's key is pinned
        gid = (await alice.groups.create("g", ["carol"])).group_id
        await bob.link.require().delete_account(bob.identity)  # bob starts over
        await shut(bob)
        bob = await make_client(tmp_path / "again", "bob", relay.url)
        with pytest.raises(KeyChangeBlocked):
            await alice.groups.add(gid, ["bob"])
        assert member_names(alice.groups.find("g")) == ["alice", "carol"]
        assert alice.contact("bob").key_changed  # type: ignore[union-attr]
        await shut(alice, bob, carol)


async def test_a_self_update_comes_by_itself_after_the_period(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        bob = await reopen(bob, connect=False)
        bob.groups.self_update_period = 0.0
        await online(bob)
        await wait_for(lambda: alice.groups.find("g").epoch == 2)
        assert "bob updated their keys." in notices(alice, gid)
        await shut(alice, bob)


@pytest.mark.parametrize("what", ["text", "commit"])
async def test_crash_between_storing_and_acknowledging(tmp_path: Path, what: str) -> None:
    """Bob's process dies right after a group message committed and before its ACK:
    the relay delivers it again, and it is neither lost nor applied twice."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        await shut(bob)
        if what == "text":
            await alice.groups.send_text(gid, "in flight")
        else:
            await alice.groups.self_update(gid)
        assert await _run_receiver_until_crash(tmp_path / "bob") == 75
        bob = Client.open(tmp_path / "bob", PASSPHRASE)
        await online(bob)
        assert bob.groups.find("g").epoch == (1 if what == "text" else 2)
        assert texts(bob, gid) == ([("alice", "in flight")] if what == "text" else [])
        assert not [n for n in notices(bob, gid) if "could not be read" in n]
        await alice.groups.send_text(gid, "after")
        await wait_for(lambda: texts(bob, gid)[-1:] == [("alice", "after")])
        await shut(alice, bob)


async def test_removing_a_member_who_asked_to_leave_carries_out_the_leave(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        gid = (await alice.groups.create("g", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))
        await alice.disconnect()  # the member who would carry the leave out is away
        await carol.groups.leave(gid)
        await wait_for(lambda: "carol asked to leave the group." in notices(bob, gid))
        await bob.groups.remove(gid, "carol")  # the pending leave, not a second Remove
        await wait_for(lambda: carol.groups.record(gid).status  # type: ignore[union-attr]
                       is GroupStatus.REMOVED)
        assert "You left the group." in notices(carol, gid)
        await online(alice)  # her own commit of the leave loses to bob's: no harm
        await wait_for(lambda: member_names(alice.groups.find("g")) == ["alice", "bob"])
        await bob.groups.send_text(gid, "still here")
        await wait_for(lambda: texts(alice, gid)[-1:] == [("bob", "still here")])
        await shut(alice, bob, carol)


async def test_a_member_that_claims_a_contacts_name_is_flagged_not_believed(
        tmp_path: Path) -> None:
    """Alice adds a leaf that calls itself bob but holds her own key: Carol's client
    checks it in the key directory, flags it in the group and keeps trusting the real
    bob (no key change is recorded for him)."""
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        await carol.send_text("bob", "hi bob")  # carol has bob's real key pinned
        gid = (await alice.groups.create("g", ["carol"])).group_id
        await wait_for(lambda: joined(carol, gid))
        fake = committing.new_key_package(committing.Identity.generate(b"bob"))
        await alice.groups._commit(gid, lambda g: committing.commit(
            g, adds=[fake.key_package]), "added a fake bob")
        await wait_for(lambda: "alice added bob." in notices(carol, gid))
        await wait_for(lambda: any("calls itself bob" in n for n in notices(carol, gid)))
        trust = {m.name: m.trust for m in carol.groups.find("g").members}
        assert trust["bob"] == NOT_THEIR_KEY
        assert not carol.contact("bob").key_changed  # type: ignore[union-attr]
        with pytest.raises(Refused, match="calls itself bob"):
            await carol.groups.send_text(gid, "to whom?")
        await carol.send_text("bob", "still you")  # one-to-one is untouched
        await shut(alice, bob, carol)


async def test_a_leave_nobody_carried_out_is_committed_by_the_next_member_to_log_in(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        gid = (await alice.groups.create("g", ["bob", "carol"])).group_id
        await wait_for(lambda: joined(bob, gid) and joined(carol, gid))
        await alice.disconnect()  # the member who would carry it out at once is away
        await carol.groups.leave(gid)
        await wait_for(lambda: "carol asked to leave the group." in notices(bob, gid))
        await asyncio.sleep(0.3)
        assert member_names(bob.groups.find("g")) == ["alice", "bob", "carol"]
        bob = await reopen(bob)  # bob's next login carries it out
        await wait_for(lambda: carol.groups.record(gid).status  # type: ignore[union-attr]
                       is GroupStatus.REMOVED)
        assert member_names(bob.groups.find("g")) == ["alice", "bob"]
        await online(alice)
        await wait_for(lambda: member_names(alice.groups.find("g")) == ["alice", "bob"])
        await shut(alice, bob, carol)


async def test_a_group_message_shows_the_relay_only_its_length_bucket(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        gid = (await alice.groups.create("g", ["bob"])).group_id
        await wait_for(lambda: joined(bob, gid))
        sizes: list[int] = []
        group_send = alice.groups._group_send

        async def measured(conn: Any, recipients: list[str], message: bytes) -> Any:
            sizes.append(len(message))  # what GROUP_SEND carries to the relay
            return await group_send(conn, recipients, message)

        alice.groups._group_send = measured  # type: ignore[method-assign]
        for text in ("a", "b" * 120, "c" * 200):  # content: 30 bytes + the text
            await alice.groups.send_text(gid, text)
        assert sizes[0] == sizes[1] < sizes[2]  # one 160-byte bucket, then the next
        await wait_for(lambda: [t for _, t in texts(bob, gid)] == ["a", "b" * 120, "c" * 200])
        await shut(alice, bob)
