"""Group chats in the chat app, driven with Textual's pilot (issue 13's done-when):
three people create a group, chat, remove one member (who can no longer read what is
sent after) and add another, with real key presses, real clients and a real relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.binding import Binding

from client.client import Client
from client.group_records import GroupStatus
from client.tui.app import ChatApp
from client.tui.capture import screen_text
from client.tui.groups import GroupInfoScreen, GroupMembersBar, NewGroupScreen
from client.tui.keys import BINDING_NAMES, HELP_KEYS
from tests.client.helpers import PASSPHRASE, make_client, wait_for
from tests.client.test_app import contact_list, online, running, shown_texts, type_text
from tests.support import running_relay, start_relay_process


def group_texts(app: ChatApp) -> list[str]:
    return shown_texts(app)


async def test_three_people_create_chat_remove_and_add_in_the_app(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        clients = [await make_client(tmp_path, n, relay.url, connect=False)
                   for n in ("alice", "bob", "carol", "dave")]
        a, b, c, d = (ChatApp(x) for x in clients)
        alice, bob, carol, dave = clients
        async with running(a, b, c, d, size=(100, 30)) as (pa, pb, pc, pd):
            await online(a, b, c, d)

            # alice creates the group from the app: Ctrl+G, a name, the members
            await pa.press("ctrl+g")
            assert isinstance(a.screen, NewGroupScreen)
            await type_text(pa, "climbing")
            await pa.press("enter")
            await type_text(pa, "bob carol")
            await pa.press("enter")
            await wait_for(lambda: bool(alice.groups.all()))
            gid = alice.groups.all()[0].group_id
            key = "#group:" + gid.hex()
            await wait_for(lambda: a.chat.current == key)
            await pa.pause()
            assert "# climbing" in screen_text(a)  # in the list, and open
            bar = a.chat.query_one(GroupMembersBar)
            assert "bob (unchecked)" not in str(bar.render())
            assert "bob (unverified)" in str(bar.render())

            # bob and carol find it in their lists with an unread line, and open it
            for app, pilot in ((b, pb), (c, pc)):
                await wait_for(lambda app=app: contact_list(app).unread(key) >= 1)  # type: ignore[misc]
                contact_list(app).highlighted = contact_list(app).get_option_index(key)
                await pilot.press("enter")
                await wait_for(lambda app=app: app.chat.current == key)  # type: ignore[misc]
                await wait_for(lambda app=app: any(  # type: ignore[misc]
                    "You were added to the group climbing" in t for t in group_texts(app)))

            # they chat
            await type_text(pa, "who is in on saturday")
            await pa.press("enter")
            await wait_for(lambda: "who is in on saturday" in group_texts(b)
                           and "who is in on saturday" in group_texts(c))
            await type_text(pb, "me")
            await pb.press("enter")
            await wait_for(lambda: "me" in group_texts(a) and "me" in group_texts(c))
            await pa.pause()
            assert "bob  me" in screen_text(a)  # the sender's name on the line

            # the same code on every member's group screen
            codes = []
            for app, pilot in ((a, pa), (b, pb), (c, pc)):
                await pilot.press("ctrl+t")
                assert isinstance(app.screen, GroupInfoScreen)
                codes.append(app.screen.view.code)
                await pilot.press("escape")
            assert len(set(codes)) == 1

            # alice removes carol; carol is told and reads nothing after
            await type_text(pa, "/remove carol")
            await pa.press("enter")
            await wait_for(lambda: "carol was removed by alice." in group_texts(b))
            await wait_for(lambda: "alice removed you from the group." in group_texts(c))
            assert carol.groups.record(gid).status is GroupStatus.REMOVED  # type: ignore[union-attr]
            assert c.chat.pane.conversation.composer.disabled
            await type_text(pb, "carol is out")
            await pb.press("enter")
            await wait_for(lambda: "carol is out" in group_texts(a))

            # alice adds dave, who sees the group from then on
            await type_text(pa, "/add dave")
            await pa.press("enter")
            await wait_for(lambda: "alice added dave." in group_texts(b))
            await wait_for(lambda: contact_list(d).unread(key) >= 1)
            contact_list(d).highlighted = contact_list(d).get_option_index(key)
            await pd.press("enter")
            await type_text(pd, "hi all")
            await pd.press("enter")
            await wait_for(lambda: "hi all" in group_texts(a) and "hi all" in group_texts(b))
            assert "who is in on saturday" not in group_texts(d)
            assert len({x.groups.find(gid.hex()).code for x in (alice, bob, dave)}) == 1

            assert "carol is out" not in group_texts(c)
            assert "hi all" not in group_texts(c)
            assert all(m.text not in ("carol is out", "hi all")
                       for m in carol.groups.history(gid, 1000))
            await pb.pause()
            members = str(b.chat.query_one(GroupMembersBar).render())
            assert "dave" in members and "carol" not in members


def test_group_keys_are_in_the_help() -> None:
    documented = {k for _, keys, _ in HELP_KEYS for k in keys.replace("/", " ").split()}
    for cls in (NewGroupScreen, GroupInfoScreen):
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding)
            assert BINDING_NAMES[binding.key] in documented
    assert BINDING_NAMES["ctrl+g"] in documented


async def test_group_chat_survives_restarts_of_the_relay_and_of_an_app(tmp_path: Path) -> None:
    """The relay (a real process) restarts on its port and the apps reconnect by
    themselves; then Bob quits and opens the app again: nothing in the group is lost."""
    data = tmp_path / "relay"
    relay = await asyncio.to_thread(start_relay_process, data)
    port = relay.url.rsplit(":", 1)[1]
    try:
        alice = await make_client(tmp_path, "alice", relay.url, connect=False)
        bob = await make_client(tmp_path, "bob", relay.url, connect=False)
        a, b = ChatApp(alice), ChatApp(bob)
        async with running(a, b, size=(100, 30)) as (pa, pb):
            await online(a, b)
            await pa.press("ctrl+g")
            await type_text(pa, "pair")
            await pa.press("enter")
            await type_text(pa, "bob")
            await pa.press("enter")
            await wait_for(lambda: bool(alice.groups.all()))
            gid = alice.groups.all()[0].group_id
            key = "#group:" + gid.hex()
            await wait_for(lambda: a.chat.current == key)
            await type_text(pa, "before the restart")
            await pa.press("enter")
            await wait_for(lambda: contact_list(b).unread(key) >= 1)

            await asyncio.to_thread(relay.stop)
            await asyncio.to_thread(relay.proc.communicate)
            relay = await asyncio.to_thread(start_relay_process, data, "--port", port)
            await wait_for(lambda: a.client.status == "online" and b.client.status == "online",
                           30)
            await type_text(pa, "after the relay restart")
            await pa.press("enter")
            await wait_for(lambda: any(m.text == "after the relay restart"
                                       for m in bob.groups.history(gid)))
        bob = Client.open(tmp_path / "bob", PASSPHRASE)  # bob quit; he opens the app again
        b = ChatApp(bob)
        alice = Client.open(tmp_path / "alice", PASSPHRASE)
        a = ChatApp(alice)
        async with running(a, b, size=(100, 30)) as (pa, pb):
            await online(a, b)
            contact_list(b).highlighted = contact_list(b).get_option_index(key)
            await pb.press("enter")
            await wait_for(lambda: "before the restart" in group_texts(b)
                           and "after the relay restart" in group_texts(b))
            await type_text(pb, "all here")
            await pb.press("enter")
            await wait_for(lambda: any(m.text == "all here" for m in alice.groups.history(gid)))
    finally:
        await asyncio.to_thread(relay.stop)
        await asyncio.to_thread(relay.proc.communicate)
