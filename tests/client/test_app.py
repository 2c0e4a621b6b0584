"""The chat app driven with Textual's pilot: real clients, a real relay on a loopback
port, real key presses. Two (or three) apps run side by side in one event loop.

Snapshots are plain-text renderings of the screen (client.tui.capture) in
tests/client/snapshots/; refresh them with BLINDRELAY_UPDATE_SNAPSHOTS=1 after a
deliberate change to the look of the app, and read the diff before committing.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import segno
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.widgets import Static
from textual.widgets._toast import Toast

from client.client import Client
from client.history import UNKNOWN_SENDER
from client.records import Direction, Message, State, Trust
from client.tui.app import ChatApp
from client.tui.capture import screen_text
from client.tui.chat import ChatPane, ChatScreen
from client.tui.composer import NEWLINE_KEYS, SEND_KEYS, Composer
from client.tui.contacts import ContactList
from client.tui.conversation import KeyChangeBanner, MessageItem, MessageLog
from client.tui.keys import BINDING_NAMES, HELP_KEYS
from client.tui.render import qr_text, state_label, undecryptable_text
from client.tui.screens import (
    AcceptKeyScreen,
    HelpScreen,
    NewConversationScreen,
    SafetyNumberScreen,
)
from client.tui.status import StatusBar
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.kt.verifier import anchor_sizes, open_head
from tests.client.helpers import make_client, texts, wait_for
from tests.support import BURSTS, running_relay

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOON = 1_767_268_800.0  # 2026-01-01 12:00 UTC: a fixed clock for what snapshots show


# -- helpers


@contextlib.asynccontextmanager
async def running(*apps: ChatApp, size: tuple[int, int] = (80, 24),
                  notifications: bool = False) -> AsyncIterator[list[Pilot[int]]]:
    """Runs several apps at once; waits until each is online."""
    async with contextlib.AsyncExitStack() as stack:
        pilots = [await stack.enter_async_context(
            app.run_test(size=size, notifications=notifications)) for app in apps]
        yield pilots
        for app in apps:  # what a user's Ctrl+Q does before the app exits
            app.stop.set()
    for app in apps:
        await app.client.disconnect()
        app.client.close()


async def online(*apps: ChatApp) -> None:
    await wait_for(lambda: all(a.query_one(StatusBar).status == "online" for a in apps))


async def type_text(pilot: Pilot[int], text: str) -> None:
    """Presses one key per character (Ctrl+J for a line break)."""
    await pilot.press(*("ctrl+j" if ch == "\n" else ch for ch in text))


def shown(app: ChatApp) -> list[MessageItem]:
    return list(app.query(MessageItem))


def shown_texts(app: ChatApp) -> list[str]:
    return [item.message.text for item in shown(app)]


def toasts(app: ChatApp) -> list[str]:
    return [str(toast._notification.message) for toast in app.screen.query(Toast)]


def contact_list(app: ChatApp) -> ContactList:
    return app.chat.query_one(ContactList)


def banner(app: ChatApp) -> KeyChangeBanner:
    return app.chat.query_one(KeyChangeBanner)


def pin_anchors(client: Client) -> None:
    """Fixed roots at the head's anchor sizes (the relay's keys and openings are random,
    so the directory codes on the safety-number screen would be too)."""
    state = client.directory.state()
    assert state is not None
    size = open_head(client.directory.keys(state), state.head_note, cosigned=False).size
    state.anchors = {n: bytes([n]) * 32 for n in anchor_sizes(size)}
    client.directory.repo.save(state)


def pin_identity(client: Client, seed: bytes) -> None:
    """A fixed identity key (before the first connect registers it), so that safety
    numbers and QR codes in snapshots are the same on every run."""
    client.profile.identity_seed = seed
    client.identity = IdentityKeyPair.from_seed(seed)
    client._save_profile()


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("BLINDRELAY_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}: run with BLINDRELAY_UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8").removesuffix("\n")
    if text != expected:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), text.splitlines(),
                                              "snapshot", "now", lineterm=""))
        pytest.fail(f"{name} differs from its snapshot:\n{diff}")




# -- two people chatting


async def test_two_apps_chat_with_real_key_presses(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url, connect=False)
        bob = await make_client(tmp_path, "bob", relay.url, connect=False)
        a, b = ChatApp(alice), ChatApp(bob)
        async with running(a, b) as (pa, pb):
            await online(a, b)

            # alice starts a conversation by username and sends
            await pa.press("ctrl+n")
            assert isinstance(a.screen, NewConversationScreen)
            await type_text(pa, "bob")
            await pa.press("enter")
            await type_text(pa, "hello bob")
            await pa.press("enter")
            await wait_for(lambda: "hello bob" in shown_texts(a))
            assert a.chat.query_one(Composer).text == ""

            # bob's list shows alice with one unread message; opening clears it
            await wait_for(lambda: contact_list(b).unread("alice") == 1)
            await pb.pause()
            assert "alice  1" in screen_text(b)
            assert shown(b) == []
            await pb.press("enter")  # the list has focus and alice highlighted
            await wait_for(lambda: "hello bob" in shown_texts(b))
            incoming = next(i for i in shown(b) if i.message.text == "hello bob")
            assert incoming.message.direction is Direction.IN
            await wait_for(lambda: contact_list(b).unread("alice") == 0)
            assert bob.contact("alice").unread == 0  # type: ignore[union-attr]

            # the read receipt reaches alice: her message shows "read"
            def alice_state() -> State:
                return next(i for i in shown(a) if i.message.text == "hello bob").message.state

            await wait_for(lambda: alice_state() is State.READ)
            await pa.pause()
            assert "hello bob  ✓✓ read" in screen_text(a)

            # bob answers on two lines (Ctrl+J adds the line break, Enter sends)
            await type_text(pb, "hi alice\nsecond line")
            assert b.chat.query_one(Composer).text == "hi alice\nsecond line"
            await pb.press("enter")
            await wait_for(lambda: "hi alice\nsecond line" in shown_texts(a))
            assert "hi alice\nsecond line" in texts(alice.history("bob"))
            # alice has the conversation open, so it is read at once
            await wait_for(lambda: all(m.state is State.READ for m in bob.history("alice")
                                       if m.direction is Direction.OUT))
            await wait_for(lambda: contact_list(a).unread("bob") == 0)

            # both safety-number screens show the same 60 digits
            await pa.press("ctrl+t")
            await pb.press("ctrl+t")
            assert isinstance(a.screen, SafetyNumberScreen)
            assert isinstance(b.screen, SafetyNumberScreen)
            digits_a = str(a.screen.query_one("#safety-digits", Static).render())
            digits_b = str(b.screen.query_one("#safety-digits", Static).render())
            assert digits_a == digits_b
            assert len([c for c in digits_a if c.isdigit()]) == 60
            assert digits_a == alice.safety_number("bob")[0]
            qr = str(a.screen.query_one("#safety-qr", Static).render())
            assert "█" in qr and "▀" in qr

            # bob marks alice verified from the screen
            await pb.press("v")
            assert isinstance(b.screen, ChatScreen)
            assert bob.contact("alice").trust is Trust.VERIFIED  # type: ignore[union-attr]
            await wait_for(lambda: "You marked alice as verified." in shown_texts(b))
            await pb.pause()
            assert "✓ alice" in screen_text(b)
            await pa.press("escape")
            assert isinstance(a.screen, ChatScreen)


async def test_key_change_banner_blocks_sending_until_accepted(tmp_path: Path) -> None:
    """The honest way to change a contact's key under one relay's unique usernames:
    alice talks to bob on relay A; then her profile (same home, same identity) is
    pointed at relay B, where a different person registered 'bob'. To alice that is
    exactly what a reinstall, or an interception, looks like."""
    async with running_relay(tmp_path / "relay-a") as relay_a, \
            running_relay(tmp_path / "relay-b") as relay_b:
        alice = await make_client(tmp_path, "alice", relay_a.url)
        bob = await make_client(tmp_path, "bob", relay_a.url)
        await alice.send_text("bob", "hi")
        await wait_for(lambda: "hi" in texts(bob.history("alice")))
        await alice.disconnect()
        alice.profile.server = relay_b.url
        alice.profile.registered = False  # she registers her identity on B
        alice.profile.signed_prekey_created = 0.0  # and publishes a signed prekey there
        alice._save_profile()
        new_bob = await make_client(tmp_path / "elsewhere", "bob", relay_b.url, connect=False)

        a, nb = ChatApp(alice), ChatApp(new_bob)
        async with running(a, nb, notifications=True) as (pa, pnb):
            await online(a, nb)
            await pa.press("enter")  # opens bob, her only conversation
            assert not banner(a).display

            # still sealed to the old key: the new bob cannot even see who sent it, and
            # his app lists a placeholder with the reason instead of dropping it
            await type_text(pa, "are you there")
            await pa.press("enter")
            await wait_for(lambda: any(m.state is State.UNDECRYPTABLE
                                       for m in new_bob.history(UNKNOWN_SENDER)))
            await wait_for(lambda: UNKNOWN_SENDER in contact_list(nb).contacts)
            await pnb.pause()
            assert "unknown sender" in screen_text(nb)
            await pnb.press("enter")
            await wait_for(lambda: any(i.message.state is State.UNDECRYPTABLE
                                       for i in shown(nb)))
            await pnb.pause()
            assert "⚠ could not be decrypted:" in screen_text(nb)

            # the new bob writes: alice sees the banner, the marker and the message
            await pnb.press("ctrl+n")
            await type_text(pnb, "alice")
            await pnb.press("enter")
            await type_text(pnb, "new phone, same bob")
            await pnb.press("enter")
            await wait_for(lambda: banner(a).display)
            await wait_for(lambda: "new phone, same bob" in shown_texts(a))
            await pa.pause()
            screen = screen_text(a)
            assert "bob's identity key has CHANGED." in screen
            assert "⚠ bob" in screen
            assert "IDENTITY KEY CHANGED" in screen

            # sending is refused with a notification; the text goes back in the composer
            await type_text(pa, "is it you?")
            await pa.press("enter")
            await wait_for(lambda: any("identity key has changed" in t for t in toasts(a)))
            await wait_for(lambda: a.chat.query_one(Composer).text == "is it you?")
            assert "is it you?" not in texts(alice.history("bob"))
            assert banner(a).display  # still there: only accepting removes it

            # the safety-number screen shows the new key's digits; accept, confirm
            await pa.press("ctrl+t")
            assert isinstance(a.screen, SafetyNumberScreen)
            digits = str(a.screen.query_one("#safety-digits", Static).render())
            assert digits == new_bob.safety_number("alice")[0]
            assert "CHANGED" in screen_text(a)
            await pa.press("v")  # verifying a key not yet accepted is refused
            assert isinstance(a.screen, SafetyNumberScreen)
            await pa.press("a")
            assert isinstance(a.screen, AcceptKeyScreen)
            await pa.press("y")
            await wait_for(lambda: isinstance(a.screen, ChatScreen))
            await wait_for(lambda: not banner(a).display)
            assert not alice.contact("bob").key_changed  # type: ignore[union-attr]
            await pa.pause()
            assert "CHANGED." not in screen_text(a).split("\n")[2]

            # the restored text now goes to the new bob, decrypted on his side
            a.chat.query_one(Composer).focus()
            await pa.press("enter")
            await wait_for(lambda: "is it you?" in shown_texts(nb))
        bob.close()


async def test_send_errors_are_notifications(tmp_path: Path, unused_port: int) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url, connect=False)
        carol = await make_client(tmp_path, "carol", f"ws://127.0.0.1:{unused_port}",
                                  connect=False)
        a, c = ChatApp(alice), ChatApp(carol)
        async with running(a, c, notifications=True) as (pa, pc):
            await online(a)

            # the dialog refuses names that cannot exist, and yourself
            await pa.press("ctrl+n")
            await type_text(pa, "X!")
            await pa.press("enter")
            assert isinstance(a.screen, NewConversationScreen)
            assert "invalid username" in screen_text(a)
            await pa.press("escape")
            assert isinstance(a.screen, ChatScreen)

            # a user the relay does not know
            await pa.press("ctrl+n")
            await type_text(pa, "nobody")
            await pa.press("enter")
            await type_text(pa, "anyone?")
            await pa.press("enter")
            await wait_for(lambda: any("no user 'nobody'" in t for t in toasts(a)))
            assert a.is_running

            # offline: the status bar says so, and sending explains why it failed
            await wait_for(lambda: c.query_one(StatusBar).status == "offline")
            await pc.pause()
            assert "○ offline" in screen_text(c).splitlines()[0]
            await pc.press("ctrl+n")
            await type_text(pc, "alice")
            await pc.press("enter")
            await type_text(pc, "hello?")
            await pc.press("enter")
            await wait_for(lambda: any("not connected" in t for t in toasts(c)))
            assert c.chat.query_one(Composer).text == "hello?"
            assert c.is_running


async def test_long_conversation_keeps_a_window_mounted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window logic at a smaller scale (the real one opens on 100 messages and
    keeps at most 200 mounted) so that the conversation is quick to build."""
    monkeypatch.setattr(MessageLog, "INITIAL", 30)
    monkeypatch.setattr(MessageLog, "PAGE", 15)
    monkeypatch.setattr(MessageLog, "MAX_MOUNTED", 60)
    total = 100
    async with running_relay(tmp_path / "relay", rate_per_second=10_000,
                             rate_burst=10_000, budgets=BURSTS) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        for i in range(total):
            await bob.send_text("alice", f"message {i:03d}")
        await wait_for(lambda: sum(m.direction is Direction.IN
                                   for m in alice.history("bob", total + 10)) == total, 30)
        await alice.disconnect()

        a = ChatApp(alice)
        async with running(a) as (pa,):
            await online(a)
            log = a.chat.query_one(MessageLog)
            started = time.perf_counter()
            await pa.press("enter")
            await wait_for(lambda: bool(shown(a)))
            assert time.perf_counter() - started < 5
            assert log.mounted_count == MessageLog.INITIAL
            assert shown_texts(a)[-1] == f"message {total - 1:03d}"
            # all unread: it opens on the first unread message it loaded, not past it
            first = total - MessageLog.INITIAL
            await wait_for(lambda: f"message {first:03d}" in screen_text(a))
            assert f"message {total - 1:03d}" not in screen_text(a)
            await pa.press("ctrl+l")
            await pa.pause()
            assert f"message {total - 1:03d}" in screen_text(a)

            # Ctrl+O walks back a page at a time; never more than the window mounted
            seen_first = False
            for _ in range(12):
                await pa.press("ctrl+o")
                await pa.pause()
                assert log.mounted_count <= MessageLog.MAX_MOUNTED
                if "message 000" in shown_texts(a):
                    seen_first = True
                    break
            assert seen_first
            await pa.pause()
            assert "start of the conversation" in screen_text(a)
            assert log.mounted_count == MessageLog.MAX_MOUNTED
            assert f"message {total - 1:03d}" not in shown_texts(a)  # unmounted, kept as data

            # scrolling to the bottom walks forward again
            log.focus()
            for _ in range(12):
                if not log.more_below:
                    break
                await pa.press("end")
                await pa.pause(0.05)
                assert log.mounted_count <= MessageLog.MAX_MOUNTED
            assert not log.more_below
            assert shown_texts(a)[-1] == f"message {total - 1:03d}"

            # back at the newest, a new message is mounted at the bottom
            await pa.press("ctrl+o", "ctrl+o", "ctrl+l")
            assert log.mounted_count == MessageLog.INITIAL
            await bob.send_text("alice", "fresh")
            await wait_for(lambda: shown_texts(a)[-1:] == ["fresh"])
            assert log.mounted_count <= MessageLog.MAX_MOUNTED
        await bob.disconnect()
        bob.close()


# -- the key table


def test_help_lists_every_binding() -> None:
    documented = {key for _, keys, _ in HELP_KEYS for key in re.split(r"\s*/\s*|\s+", keys)}
    classes: list[type[DOMNode]] = [ChatApp, ChatPane, NewConversationScreen,
                                    SafetyNumberScreen, AcceptKeyScreen, HelpScreen]
    keys = {key for cls in classes for binding in cls.BINDINGS
            for key in (binding.key if isinstance(binding, Binding) else binding[0]).split(",")}
    keys |= set(SEND_KEYS) | {"ctrl+j"}
    for key in sorted(keys):
        assert BINDING_NAMES[key] in documented, f"{key} is not in the help"
    assert "ctrl+j" in NEWLINE_KEYS


def test_qr_text_draws_every_module() -> None:
    """Two modules per character cell, upper and lower half; decoding the glyphs
    back gives segno's matrix, quiet zone included."""
    payload = "BLINDRELAY-SAFETY:0:" + "AB" * 64
    lines = qr_text(payload, border=2).split("\n")
    halves = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}
    rows: list[list[int]] = []
    for line in lines:
        rows.append([halves[ch][0] for ch in line])
        rows.append([halves[ch][1] for ch in line])
    matrix = [list(r) for r in segno.make(payload, error="L", boost_error=False).matrix]
    size = len(matrix)
    assert len(lines[0]) == size + 4
    assert [r[2:-2] for r in rows[2:2 + size]] == matrix
    assert not any(any(r) for r in rows[:2] + rows[2 + size:])


def test_state_labels_are_words_not_only_glyphs() -> None:
    def label(state: State, error: str = "") -> str:
        return state_label(Message("bob", Direction.OUT, "x", state, error=error))[0]

    assert [label(s) for s in (State.SENDING, State.SENT, State.DELIVERED, State.READ)] == \
        ["◷ sending", "✓ sent", "✓✓ delivered", "✓✓ read"]
    assert label(State.FAILED, "QUEUE_FULL") == "✗ failed: QUEUE_FULL"
    broken = Message("bob", Direction.IN, "", State.UNDECRYPTABLE,
                     error="could not be decrypted: failed authentication")
    assert undecryptable_text(broken) == "⚠ could not be decrypted: failed authentication"
    other = Message("bob", Direction.IN, "", State.UNDECRYPTABLE, error="unreadable content")
    assert undecryptable_text(other) == "⚠ could not be decrypted: unreadable content"


# -- snapshots at 80x24


async def test_snapshots_80x24(tmp_path: Path, utc: None) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        alice = await make_client(tmp_path, "alice", relay.url, connect=False)
        bob = await make_client(tmp_path, "bob", relay.url, connect=False)
        carol = await make_client(tmp_path, "carol", relay.url, connect=False)
        pin_identity(alice, bytes(range(32)))
        pin_identity(bob, bytes(range(32, 64)))
        for client in (alice, bob, carol):
            client.clock = lambda: NOON
        a, b = ChatApp(alice), ChatApp(bob)
        async with running(a, b) as (pa, pb):
            await online(a, b)
            await carol.connect()
            await carol.send_text("alice", "are we still on for lunch?")
            await wait_for(lambda: contact_list(a).unread("carol") == 1)

            await pa.press("ctrl+n")
            await type_text(pa, "bob")
            await pa.press("enter")
            await type_text(pa, "hello bob")
            await pa.press("enter")
            await wait_for(lambda: contact_list(b).unread("alice") == 1)
            await pb.press("enter")
            await type_text(pb, "hi alice\nthe relay only sees ciphertext")
            await pb.press("enter")
            await wait_for(lambda: all(
                m.state is State.READ for c, n in ((alice, "bob"), (bob, "alice"))
                for m in c.history(n) if m.direction is Direction.OUT))
            await pa.press("ctrl+t", "v")
            await wait_for(lambda: "You marked bob as verified." in shown_texts(a))
            await pa.pause()
            assert_snapshot("chat_80x24", screen_text(a))

            pin_anchors(bob)  # the directory's roots are random: fixed for the snapshot
            await pb.press("ctrl+t")
            await pb.pause()
            assert_snapshot("safety_number_80x24", screen_text(b))

            await pa.press("f1")
            await pa.pause()
            assert_snapshot("help_80x24", screen_text(a))

            # close help; the next conversation is carol's, and opening it reads it
            await pa.press("escape")
            assert isinstance(a.screen, ChatScreen)
            await pa.press("ctrl+down")
            assert a.chat.current == "carol"
            await wait_for(lambda: contact_list(a).unread("carol") == 0)
            assert "are we still on for lunch?" in shown_texts(a)
            await pa.press("alt+up")
            assert a.chat.current == "bob"
            await pa.press("escape")
            assert a.chat.focused is contact_list(a)
        await carol.disconnect()
        carol.close()


async def test_message_log_at_full_scale() -> None:
    """The real window sizes over a 5,000-message history (plain records from a
    loader, as the store would hand them): opening mounts only the newest 100 and
    paging never keeps more than 200 mounted."""
    history = [Message("bob", Direction.IN, f"message {i}", State.RECEIVED,
                       stored_at=NOON, row_id=i + 1) for i in range(5000)]

    def loader(before: int | None, limit: int) -> list[Message]:
        older = [m for m in history if before is None or m.row_id < before]
        return older[-limit:]

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield MessageLog()

    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(MessageLog)
        started = time.perf_counter()
        await log.show(loader, lambda: NOON)
        await pilot.pause()
        assert time.perf_counter() - started < 3
        assert log.mounted_count == MessageLog.INITIAL == 100
        for _ in range(6):
            assert await log.load_older(keep_position=False)
            await pilot.pause()
            assert log.mounted_count <= MessageLog.MAX_MOUNTED == 200
        assert len(log.messages) == 400  # loaded so far, as data
        assert log.mounted_count == 200
        assert next(i.message.text for i in app.query(MessageItem)) == "message 4600"
        await log.jump_to_latest()
        await pilot.pause()
        assert [i.message.text for i in app.query(MessageItem)][-1] == "message 4999"
        assert log.mounted_count == 100


def test_the_library_never_imports_the_ui() -> None:
    """The app is a view over the library, never the other way round."""
    code = ("import json, sys\n"
            "import client.client, client.records, client.store, client.connection\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {"textual", "client.tui"} & loaded
