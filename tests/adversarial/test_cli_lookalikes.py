"""Look-alike names (issue 9, item 17): `a1ice` writing to someone who knows `alice`
gets a warning in the new conversation, `blindrelay send a1ice` warns before it
sends, and the chat app's new-conversation dialog asks twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.commands import EXIT_OK
from client.confusables import lookalikes, skeleton
from client.tui.app import ChatApp
from client.tui.capture import screen_text
from client.tui.chat import ChatScreen
from client.tui.screens import NewConversationScreen
from tests.blindrelay.test_cli import blindrelay
from tests.client.helpers import make_client, notices, received, shut, wait_for
from tests.client.test_app import online, running, type_text
from tests.support import relay_process, running_relay


@pytest.mark.parametrize(("one", "other"), [
    ("alice", "a1ice"), ("mallory", "rnallory"), ("walter", "vvalter"), ("dave", "clave"),
    ("bob", "b0b"), ("sam", "5am"), ("alice", "alice."), ("alice", "alice-"),
    ("zed", "2ed"), ("gus", "9us"), ("bert", "6ert"),
])
def test_look_alike_names_share_a_skeleton(one: str, other: str) -> None:
    assert skeleton(one) == skeleton(other)
    assert lookalikes(other, [one, "carol"]) == [one]


@pytest.mark.parametrize(("one", "other"), [
    ("alice", "alicia"), ("bob", "rob"), ("alice", "alice2"), ("mallory", "mallorie"),
])
def test_different_names_do_not(one: str, other: str) -> None:
    assert skeleton(one) != skeleton(other)
    assert lookalikes(other, [one]) == []
    assert lookalikes(one, [one]) == []  # a name does not look like itself


async def test_a_first_message_from_a_look_alike_name_carries_a_warning(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        fake = await make_client(tmp_path, "a1ice", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        await alice.send_text("carol", "hi carol, alice here")
        await wait_for(lambda: received(carol, "alice") == ["hi carol, alice here"])
        assert not any("Careful" in n for n in notices(carol, "alice"))

        await fake.send_text("carol", "new number, alice here")
        await wait_for(lambda: received(carol, "a1ice") == ["new number, alice here"])
        warnings = [n for n in notices(carol, "a1ice") if "looks like" in n]
        assert warnings == [
            "Careful: a1ice looks like your contact alice, but is a different account. "
            "Check that this is who you think it is before you trust it."]
        await shut(alice, fake, carol)


def test_send_to_a_look_alike_name_warns(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        homes = {name: str(tmp_path / name) for name in ("alice", "a1ice", "carol")}
        for name, home in homes.items():
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == EXIT_OK, made.stderr
        first = blindrelay("send", "alice", "hi", "--home", homes["carol"])
        assert first.returncode == EXIT_OK and "warning" not in first.stderr
        sent = blindrelay("send", "a1ice", "hi", "--home", homes["carol"])
        assert sent.returncode == EXIT_OK, sent.stderr
        assert "blindrelay send: warning: Careful: a1ice looks like your contact alice" \
            in sent.stderr
        again = blindrelay("send", "a1ice", "again", "--home", homes["carol"])
        assert "warning" not in again.stderr  # once, for a new contact


async def test_the_chat_apps_new_conversation_dialog_warns(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        bob = await make_client(tmp_path, "bob", relay.url)
        fake = await make_client(tmp_path, "b0b", relay.url)
        alice = await make_client(tmp_path, "alice", relay.url, connect=False)
        app = ChatApp(alice)
        async with running(app) as (pilot,):
            await online(app)
            await alice.send_text("bob", "hi bob")
            await wait_for(lambda: alice.contact("bob") is not None)

            await pilot.press("ctrl+n")
            await type_text(pilot, "b0b")
            await pilot.press("enter")
            assert isinstance(app.screen, NewConversationScreen)  # not yet
            assert "b0b looks like your contact bob" in screen_text(app)
            await pilot.press("enter")  # the user insists
            assert isinstance(app.screen, ChatScreen)
            await type_text(pilot, "hello")
            await pilot.press("enter")
            await wait_for(lambda: any("looks like your contact bob" in n
                                       for n in notices(alice, "b0b")))

            await pilot.press("ctrl+n")  # a name that is already a contact: no question
            await type_text(pilot, "b0b")
            await pilot.press("enter")
            assert isinstance(app.screen, ChatScreen)
        await shut(bob, fake)
