"""`blindrelay demo` driven by Textual's pilot: real clients, a real relay, real keys."""

from __future__ import annotations

import functools

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from client.tui.capture import screen_text
from client.tui.chat import ChatPane
from client.tui.conversation import MessageItem
from client.tui.screens import NewConversationScreen
from server.events import LoggedIn
from teaching.demo.app import DemoApp, StoryScreen
from teaching.demo.server_pane import MAX_ROWS, ServerPane
from tests.client.helpers import wait_for


async def test_alice_types_bob_reads_and_the_relay_pane_shows_ciphertext() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.world is not None and len(app.query("ChatPane")) == 2, 20)
        world = app.world
        assert world is not None
        workdir = world.workdir
        await pilot.pause()
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, NewConversationScreen)
        await pilot.press(*"bob", "enter")
        await pilot.press(*"meet at noon", "enter")
        await wait_for(lambda: any(m.text == "meet at noon"
                                   for m in world.bob.history("alice")), 20)
        pane = app.query_one(ServerPane)
        await wait_for(lambda: any(v.typed == "meet at noon" for v in pane.envelopes.values()))
        await pilot.pause()
        text = screen_text(app)
        assert "stored" in text and "envelope " in text
        # in Alice's and in Bob's pane (each has the conversation open), never the relay's
        for who in ("alice", "bob"):
            chat = app.query_one(f"#{who}-chat", ChatPane)
            await wait_for(functools.partial(_shows, chat, "meet at noon"))
        table = pane.query_one("#relay-log", DataTable)
        cells = [str(c) for i in range(table.row_count) for c in table.get_row_at(i)]
        assert cells and not any("meet at noon" in c for c in cells)
        # the relay pane's detail view: what it can and cannot read
        await pilot.press("f2", "f2")  # alice -> bob -> relay
        view = next(v for v in pane.envelopes.values() if v.typed == "meet at noon")
        detail = "\n".join(ServerPane.render_detail(view))
        assert "to: bob" in detail and "the text" in detail and "meet at noon" in detail
        await pilot.press("d")
        await pilot.pause()
        assert "The relay CAN read" in screen_text(app)
        await pilot.press("ctrl+q")
    assert not workdir.exists()


async def test_a_scenario_runs_from_the_menu_at_80x24() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.world is not None, 20)
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("down", "down", "down", "enter")  # honest, mitm, key-swap, tamper
        await wait_for(lambda: app.outcome is not None, 30)
        assert app.outcome is not None and app.outcome.name == "tamper"
        await pilot.pause()
        text = screen_text(app)
        assert "Lesson:" in text
        assert "(F3: another scenario)" in text
        await pilot.press("f4")
        await pilot.pause()
        assert "The story so far" in screen_text(app)
        assert isinstance(app.screen, StoryScreen)
        assert any("flipped one bit" in line for line in app.screen.lines)
        await pilot.press("escape")
        await pilot.press("ctrl+q")


def _shows(chat: ChatPane, text: str) -> bool:
    return text in [item.message.text for item in chat.query(MessageItem)]


class _PaneOnly(App[None]):
    def compose(self) -> ComposeResult:
        yield ServerPane()


async def test_the_relay_pane_keeps_its_newest_rows_past_the_cap() -> None:
    """A busy relay (eight people in metadata-harvest) adds more rows than the pane
    keeps: the oldest go, and the pane keeps taking new ones."""
    app = _PaneOnly()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ServerPane)
        for number in range(MAX_ROWS + 10):
            pane.add_event(LoggedIn(f"user{number}", 0), 0.0)
        await pilot.pause()
        table = pane.query_one(DataTable)
        assert table.row_count == MAX_ROWS
        assert "user409" in str(table.get_row_at(MAX_ROWS - 1)[1])
