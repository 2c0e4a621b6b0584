"""The demo as a class sees it (issue 11 items 1-5): the first minute, the layout at
120x36 and 80x24, what the narration and the relay pane say, and each scenario
starting clean. Textual's pilot drives the real demo: a real relay, real clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import DataTable

from blindrelay.cli import main
from client.client import Client
from client.history import UNKNOWN_SENDER
from client.records import Direction, State
from client.tui.capture import screen_text
from client.tui.composer import Composer
from client.tui.screens import NewConversationScreen
from teaching.demo.app import DemoApp, StoryScreen
from teaching.demo.server_pane import ServerPane
from tests.client.helpers import wait_for
from tests.teaching.test_scenarios import run

README = Path(__file__).resolve().parents[2] / "README.md"


def rows(app: DemoApp) -> list[list[str]]:
    table = app.query_one(ServerPane).query_one("#relay-log", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def ready(app: DemoApp) -> None:
    await wait_for(lambda: app.world is not None and app.ready, 30)


def out_state(client: Client, peer: str, text: str) -> State | None:
    return next((m.state for m in client.history(peer)
                 if m.direction is Direction.OUT and m.text == text), None)


def inside(widget: Widget | None, pane_id: str) -> bool:
    while widget is not None:
        if widget.id == pane_id:
            return True
        widget = widget.parent if isinstance(widget.parent, Widget) else None
    return False


# -- item 4: the first minute


async def test_the_first_keystrokes_become_the_first_message() -> None:
    """No Ctrl+N, no username: what the teacher types first, even while the demo is
    still starting, is a message from Alice to Bob."""
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"hi")  # before the relay and the clients are up
        await ready(app)
        await pilot.pause()
        focused = app.focused
        assert isinstance(focused, Composer) and inside(focused, "alice")
        await pilot.press(*" bob", "enter")
        world = app.world
        assert world is not None
        await wait_for(lambda: "hi bob" in [m.text for m in world.bob.history("alice")], 20)
        await pilot.press("ctrl+q")


# -- item 3: tamper is not drop


async def test_tamper_is_told_apart_from_a_drop_in_alices_conversation(
        tmp_path: Path) -> None:
    tampered, lines, _ = await run("tamper", tmp_path / "t")
    dropped, _, _ = await run("drop", tmp_path / "d")
    # in Bob's conversation with Alice: the gap, and that an undecryptable envelope
    # arrived in its place (the sealed sender hides who sent a damaged envelope)
    assert any("could not be decrypted" in n for n in tampered.facts["bob_notices"])
    assert not any("could not be decrypted" in n for n in dropped.facts["bob_notices"])
    assert any("not arrived" in n for n in dropped.facts["bob_notices"])
    # narrated in order: the send, the relay's bit flip, what Bob's client shows
    sent = next(i for i, line in enumerate(lines) if "sends a second message" in line)
    flipped = next(i for i, line in enumerate(lines) if "flipped one bit" in line)
    shown = next(i for i, line in enumerate(lines) if "placeholder" in line)
    assert sent < flipped < shown


# -- item 1: the layout at the sizes a class sees


async def test_at_120x36_every_relay_row_is_shown_in_full() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app)
        world = app.world
        assert world is not None
        await pilot.press(*"meet at noon", "enter")
        await wait_for(lambda: out_state(world.alice, "bob", "meet at noon")
                       in (State.DELIVERED, State.READ), 20)
        await pilot.pause(0.3)
        text = screen_text(app)
        lines = text.splitlines()
        shown = rows(app)
        assert any(r[0] == "stored" and "to bob" in r[1] and "2048 B" in r[1] for r in shown)
        for label, what in [(r[-2], r[-1]) for r in shown[-12:]]:
            assert any(label in line and what in line for line in lines), (label, what)
        assert any(r[0] == "account" and "alice" in r[1] for r in shown)  # registrations
        await pilot.press("ctrl+q")


async def test_at_80x24_one_chat_beside_the_relay_and_the_footer_shows_f1() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app)
        world = app.world
        assert world is not None
        await pilot.press(*"hello", "enter")
        await wait_for(lambda: any(r[0] == "stored" for r in rows(app)), 20)
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "blindrelay · alice" in text and "Relay" in text
        assert "blindrelay · bob" not in text
        assert "f1 help" in text.splitlines()[-1].lower()
        # the newest (a first contact stores alice's capability first, PROTOCOL.md 9.1,
        # and the sealed attempts before the fallback add rows: the oldest scrolls away)
        stored = [r for r in rows(app) if r[0] == "stored"][-1]
        assert any("stored" in line and stored[1] in line for line in text.splitlines())
        await pilot.press("f2")  # Bob: a key away, the relay still beside him
        await pilot.pause()
        text = screen_text(app)
        assert "blindrelay · bob" in text and "Relay" in text
        assert "blindrelay · alice" not in text
        await pilot.press("ctrl+q")


# -- item 2: the narration


async def test_receipts_are_explained_and_delivered_shows_before_read() -> None:
    """Bob's pane is not the focused one: his client says 'delivered', and 'read'
    only once the class switches to him. The narration says what the receipt
    envelopes are."""
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app)
        world = app.world
        assert world is not None
        await pilot.press(*"lunch?", "enter")
        await wait_for(lambda: out_state(world.alice, "bob", "lunch?") is State.DELIVERED, 20)
        await pilot.pause(0.5)
        assert out_state(world.alice, "bob", "lunch?") is State.DELIVERED
        assert "✓✓ delivered" in screen_text(app)
        story = "\n".join(app.narration)
        assert "receipt" in story and "cannot tell" in story
        await pilot.press("f2")  # Bob looks
        await wait_for(lambda: out_state(world.alice, "bob", "lunch?") is State.READ, 20)
        await pilot.press("ctrl+q")


async def test_hostile_actions_are_marked_in_the_relay_pane() -> None:
    app = DemoApp("tamper", pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.outcome is not None, 40)
        await pilot.pause(0.3)
        marked = [r for r in rows(app) if r[0] == "TAMPERED"]
        assert marked and "to bob" in marked[0][1]
        assert "TAMPERED" in screen_text(app)
        await pilot.press("ctrl+q")


async def test_mitm_shows_what_the_relay_read_and_both_safety_numbers(
        tmp_path: Path) -> None:
    outcome, lines, _ = await run("mitm-first-contact", tmp_path)
    assert any("read" in line and "Hi Bob, it's Alice. Is this really you?" in line
               for line in lines if line.startswith("The relay decrypted"))
    header = next(i for i, line in enumerate(lines)
                  if "Alice's screen" in line and "Bob's screen" in line)
    alice_rows = outcome.facts["alice_sees"].splitlines()
    bob_rows = outcome.facts["bob_sees"].splitlines()
    for k, (a, b) in enumerate(zip(alice_rows, bob_rows, strict=True)):
        assert a in lines[header + 1 + k] and b in lines[header + 1 + k]


async def test_keep_everything_says_the_seized_device_holds_the_history(
        tmp_path: Path) -> None:
    _, lines, _ = await run("keep-everything", tmp_path)
    story = "\n".join(lines)
    assert "whole history" in story and "passphrase" in story


async def test_a_wrong_accept_in_key_swap_is_narrated() -> None:
    app = DemoApp("key-swap", pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.outcome is not None, 40)
        world = app.world
        assert world is not None
        world.alice.accept_key("bob")  # what Ctrl+T, A, Y in Alice's pane does
        await wait_for(lambda: any("relay's key" in line and "next message" in line
                                   for line in app.narration), 10)
        await pilot.press("ctrl+q")


# -- item 5: each scenario starts clean


async def test_a_restart_clears_the_relay_pane_and_the_story() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app)
        first = app.world
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("down", "down", "down", "enter")  # honest, mitm, key-swap, tamper
        await wait_for(lambda: app.outcome is not None and app.world is not first, 40)
        await pilot.pause(0.3)
        accounts = [r for r in rows(app) if r[0] == "account"]
        assert len(accounts) == 2  # alice and bob of this run, not of the last one
        await pilot.press("f4")
        await pilot.pause(0.3)
        assert isinstance(app.screen, StoryScreen)
        assert not any("Type in Alice's pane" in line for line in app.screen.lines)
        assert app.screen.lines[0].startswith("The relay flips bits")
        newest = app.screen.lines[-1]
        assert newest[:40] in " ".join(screen_text(app).split())
        await pilot.press("escape")
        await pilot.press("ctrl+q")


async def test_panes_are_named_the_dialog_says_for_whom_and_escape_closes_detail() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app)
        await pilot.pause()
        assert "▶ Alice" in screen_text(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, NewConversationScreen)
        assert "Start a conversation as alice" in screen_text(app)
        await pilot.press("escape")
        await pilot.press(*"ping", "enter")
        await pilot.press("f2")
        await pilot.pause()
        text = screen_text(app)
        assert "▶ Bob" in text and "▶ Alice" not in text
        await pilot.press("f2")
        pane = app.query_one(ServerPane)
        await wait_for(lambda: any(v.typed == "ping" for v in pane.envelopes.values()), 20)
        await pilot.press("d")
        await pilot.pause()
        assert pane.query_one("#relay-detail").display
        await pilot.press("escape")
        await pilot.pause()
        assert not pane.query_one("#relay-detail").display
        await pilot.press("ctrl+q")


def test_demo_text_rejects_nonsense_and_prints_no_reprs(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--text", "--messages", "-3"])
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["demo", "--text", "--scenario", "tamper"]) == 0
    out = capsys.readouterr().out
    assert "The relay flips bits" in out  # --scenario honoured
    assert "sent: “First message”" in out
    assert "sent: '" not in out and "\\n" not in out


def test_the_readme_offers_demo_text_for_slides_and_handouts() -> None:
    text = " ".join(README.read_text().split())
    assert "demo --text" in text and "handout" in text and "slides" in text
    assert UNKNOWN_SENDER  # (the tamper row names the unknown-sender conversation)
    assert "unknown sender" in text
