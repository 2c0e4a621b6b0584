"""Issue 9 A.4/A.5: what the chat app reports as read, how the message log follows
new messages, and typing from the conversation list. Real apps, real clients, a
real relay on loopback, real key presses (helpers from test_app)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widget import Widget

from client.client import Client
from client.records import Direction, Message, State
from client.tui.app import ChatApp
from client.tui.capture import screen_text
from client.tui.composer import Composer
from client.tui.conversation import MessageLog
from client.tui.seen import SeenTracker
from tests.client.helpers import make_client, wait_for
from tests.client.test_app import contact_list, online, running, shown, shown_texts
from tests.support import BURSTS, running_relay


def sent_state(sender: Client, name: str, text: str) -> State:
    return next(m.state for m in sender.history(name, 1000)
                if m.direction is Direction.OUT and m.text == text)


def focused(app: ChatApp) -> Widget | None:
    return app.chat.focused


def at_bottom(log: MessageLog) -> bool:
    return log.scroll_y >= log.max_scroll_y - 1


async def settle(seconds: float = 0.6) -> None:
    """Longer than the app's read delay, so a wrongly sent receipt would be sent."""
    await asyncio.sleep(seconds)


async def test_scrolled_up_a_new_message_is_not_read_until_seen(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", rate_per_second=10_000,
                             rate_burst=10_000, budgets=BURSTS) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        for i in range(40):
            await alice.send_text("bob", f"earlier {i}")
        b = ChatApp(bob)
        async with running(b, size=(80, 20)) as (pb,):
            await online(b)
            await wait_for(lambda: contact_list(b).unread("alice") == 40)
            await pb.press("enter")
            log = b.chat.query_one(MessageLog)
            # opened at the first unread message: the rest is below, not read yet
            await wait_for(lambda: "earlier 0" in shown_texts(b))
            await pb.pause()
            await settle()
            assert bob.contact("alice").unread == 40  # type: ignore[union-attr]
            assert sent_state(alice, "bob", "earlier 0") is not State.READ
            assert "new: scroll down or press Ctrl+L" in screen_text(b)
            # reading down to the end marks them read
            log.focus()
            for _ in range(20):
                await pb.press("pagedown")
                await pb.pause(0.05)
            await wait_for(lambda: bob.contact("alice").unread == 0)  # type: ignore[union-attr]
            await wait_for(lambda: sent_state(alice, "bob", "earlier 39") is State.READ)
            assert "new: scroll down" not in screen_text(b)

            # scrolled up, a new message stays unread and is announced below
            await pb.press("home")
            await pb.pause()
            assert not log.following
            await alice.send_text("bob", "while you look away")
            await wait_for(lambda: "while you look away" in [m.text for m in log.messages])
            await pb.pause()
            await settle()
            assert bob.contact("alice").unread == 1  # type: ignore[union-attr]
            assert sent_state(alice, "bob", "while you look away") is not State.READ
            assert "▼ 1 new: scroll down or press Ctrl+L" in screen_text(b)

            # Ctrl+L brings it into view: now it is read
            await pb.press("ctrl+l")
            await wait_for(lambda: bob.contact("alice").unread == 0)  # type: ignore[union-attr]
            await wait_for(
                lambda: sent_state(alice, "bob", "while you look away") is State.READ)
            await pb.pause()
            assert "▼ 1 new" not in screen_text(b)
        await alice.disconnect()
        alice.close()


async def test_a_burst_of_own_messages_ends_at_the_last_each_once(tmp_path: Path) -> None:
    """150 messages submitted from the composer as fast as the app takes them, while
    scrolled up in a conversation longer than the screen."""
    async with running_relay(tmp_path / "relay", rate_per_second=10_000,
                             rate_burst=10_000, budgets=BURSTS) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        for i in range(30):
            await alice.send_text("bob", f"before {i}")
        b = ChatApp(bob)
        async with running(b, size=(80, 24)) as (pb,):
            await online(b)
            await wait_for(lambda: contact_list(b).unread("alice") == 30)
            await pb.press("enter")
            await wait_for(lambda: "before 29" in shown_texts(b))
            log = b.chat.query_one(MessageLog)
            log.focus()
            await pb.press("end")
            await pb.pause()
            await pb.press("home")  # even scrolled up, your own sends bring you down
            await pb.pause()
            assert not at_bottom(log)
            composer = b.chat.query_one(Composer)
            for i in range(150):
                composer.post_message(Composer.Submitted(composer, f"burst {i:03d}"))
            await wait_for(lambda: shown_texts(b)[-1:] == ["burst 149"], 30)
            await wait_for(lambda: all(i.message.state is not State.SENDING
                                       for i in shown(b)), 30)
            await pb.pause()
            await pb.pause()
            rows = [i.message.row_id for i in shown(b)]
            assert len(rows) == len(set(rows)), "a message is shown twice"
            texts = [t for t in shown_texts(b) if t.startswith("burst")]
            assert texts == [f"burst {i:03d}" for i in range(150)]
            assert at_bottom(log)
            assert "burst 149" in screen_text(b)
        await alice.disconnect()
        alice.close()


async def test_the_log_stays_at_the_bottom_across_resizes(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", rate_per_second=10_000,
                             rate_burst=10_000, budgets=BURSTS) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        for i in range(30):
            await alice.send_text("bob", f"line {i}")
        b = ChatApp(bob)
        async with running(b, size=(100, 30)) as (pb,):
            await online(b)
            await wait_for(lambda: contact_list(b).unread("alice") == 30)
            await pb.press("enter")
            log = b.chat.query_one(MessageLog)
            await pb.press("ctrl+l")
            await pb.pause()
            assert at_bottom(log)
            for size in ((60, 14), (45, 12), (120, 40), (70, 16)):
                await pb.resize_terminal(*size)
                await pb.pause()
                await pb.pause()
                assert at_bottom(log), size
                assert log.following
            # a message longer than the view: its start is shown, and it is not read
            # until its end has been on screen
            long_text = "\n".join(f"long {i}" for i in range(40))
            await alice.send_text("bob", long_text)
            await wait_for(lambda: long_text in shown_texts(b))
            await wait_for(lambda: "long 0" in screen_text(b))  # its start, on a busy machine too
            await settle()
            assert sent_state(alice, "bob", long_text) is not State.READ
            await pb.press("ctrl+l")
            await wait_for(lambda: sent_state(alice, "bob", long_text) is State.READ)
            # a message of your own always follows
            b.chat.query_one(Composer).focus()
            await pb.press(*"sent by me")
            await pb.press("enter")
            await wait_for(lambda: shown_texts(b)[-1:] == ["sent by me"])
            await pb.pause()
            await pb.pause()
            assert at_bottom(log)
        await alice.disconnect()
        alice.close()


async def test_typing_in_the_list_goes_to_the_composer_and_drafts_are_kept(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        carol = await make_client(tmp_path, "carol", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        await bob.disconnect()
        await alice.send_text("bob", "from alice")
        await carol.send_text("bob", "from carol")
        b = ChatApp(bob)
        async with running(b) as (pb,):
            await online(b)
            await wait_for(lambda: len(contact_list(b).contacts) == 2)
            composer = b.chat.query_one(Composer)
            # nothing open yet: typing opens the highlighted conversation and goes on
            assert focused(b) is contact_list(b)
            await pb.press(*"hello")
            await wait_for(lambda: composer.text == "hello")
            first = b.chat.current
            assert first is not None and focused(b) is composer
            # the list has focus again (Escape): typing still lands in the composer
            await pb.press("escape")
            assert focused(b) is contact_list(b)
            await pb.press(*" there")
            assert composer.text == "hello there"
            assert focused(b) is composer

            # each conversation keeps its own draft
            await pb.press("ctrl+down")
            second = b.chat.current
            assert second not in (None, first)
            assert composer.text == ""
            await pb.press(*"other draft")
            await pb.press("ctrl+up")
            assert b.chat.current == first
            assert composer.text == "hello there"
            await pb.press("ctrl+down")
            assert composer.text == "other draft"
            await pb.press("enter")  # sent: no draft left behind for it
            await wait_for(lambda: "other draft" in shown_texts(b))
            await pb.press("ctrl+up", "ctrl+down")
            assert composer.text == ""
        for client in (alice, carol):
            await client.disconnect()
            client.close()


def test_a_message_is_seen_once_its_first_and_last_lines_were_visible() -> None:
    tracker = SeenTracker()
    tall = Message("alice", Direction.IN, "x", State.RECEIVED, unread=True, row_id=1)
    short = Message("alice", Direction.IN, "y", State.RECEIVED, unread=True, row_id=2)
    mine = Message("alice", Direction.OUT, "z", State.SENT, row_id=3)
    tracker.track([tall, short, mine])
    assert tracker.pending == {1, 2}
    # lines 0-29 are the tall message, 30 the short one; the view shows 10 lines
    assert not tracker.observe(1, 0, 30, 0, 10)  # its start only
    assert not tracker.observe(2, 30, 31, 0, 10)  # not on screen
    assert not tracker.observe(1, 0, 30, 10, 20)  # its middle
    assert tracker.observe(1, 0, 30, 21, 31)  # scrolled to its end: seen
    assert tracker.observe(2, 30, 31, 21, 31)
    assert tracker.seen == {1, 2} and not tracker.pending
    tracker.track([short])  # loaded again: already seen
    assert not tracker.pending
