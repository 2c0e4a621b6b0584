"""`blindrelay demo`: Alice, Bob and what the relay sees, side by side.

Starts a relay on a free loopback port with a throw-away data directory and two real
clients with their own encrypted profiles; shows both chat views and a live view of
the relay; narrates. With a scenario, the relay turns hostile and the demo plays the
scenario out step by step. Everything it made is deleted on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import ClassVar

from rich.markup import escape
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from client.events import Event, MessageEvent
from client.history import UNKNOWN_SENDER
from client.records import Direction, State
from client.tui.app import CHAT_CSS
from client.tui.chat import ChatPane
from client.tui.screens import HelpScreen
from server.events import RelayEvent
from server.relay import Relay
from teaching.demo import scenarios
from teaching.demo.server_pane import ServerPane, narrate_event
from teaching.demo.theme import DEFAULT, use_theme
from teaching.demo.world import World, demo_world, hostile_factory
from teaching.names import COVER_UP, WITNESSED, Scenario

HONEST = "honest"
UNLOGGED = " --unlogged"
"""A menu entry's suffix: the scenario without the cover-up (teaching.names.COVER_UP)."""
WITNESS = " --witness"
"""A menu entry's suffix: Alice's client requires a witness (teaching.names.WITNESSED)."""
DESCRIPTIONS = {
    HONEST: "An honest relay: chat as Alice and Bob and watch what the relay sees.",
    **{s.value: s.blurb for s in Scenario},
    **{s.value + UNLOGGED: s.blurb + " It does not log that key in the key directory."
       for s in Scenario if s in COVER_UP},
    **{s.value + WITNESS: s.blurb + " Alice's client requires a witness's cosignature."
       for s in Scenario if s in WITNESSED},
}


def parse_choice(choice: str) -> tuple[str, bool, bool]:
    """(scenario or HONEST, cover_up, witnessed) of a menu entry."""
    name = choice.removesuffix(UNLOGGED).removesuffix(WITNESS)
    return name, not choice.endswith(UNLOGGED), choice.endswith(WITNESS)
DEMO_KEYS: list[tuple[str, str, str]] = [
    ("Demo", "F2", "switch between Alice, Bob and the relay"),
    ("Demo", "F3", "choose a scenario: what a malicious relay can and cannot do"),
    ("Demo", "F4", "everything the narration said so far"),
    ("Demo", "D", "in the relay pane: what the relay can and cannot read of the selected "
                  "envelope"),
]
PANES = ("alice", "bob", "server")


class ScenarioMenu(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Container(id="scenario-dialog", classes="dialog"):
            yield Static("Run the demo with...", classes="dialog-title")
            yield OptionList(*(Option(f"{name}: {text}", id=name)
                               for name, text in DESCRIPTIONS.items()), id="scenarios")
            yield Static("Enter starts it (the demo restarts from scratch) · Escape cancels",
                         classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class StoryScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f4,q", "close", "Close")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Container(id="story-dialog", classes="dialog"):
            yield Static("The story so far", classes="dialog-title")
            with VerticalScroll(id="story-body"):
                yield Static(escape("\n".join(f"- {line}" for line in self.lines)))
            yield Static("Escape closes", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#story-body", VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)


class DemoApp(App[int]):
    CSS_PATH = [str(CHAT_CSS), "demo.tcss"]  # noqa: RUF012
    TITLE = "blindrelay demo"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "next_pane", "Switch pane"),
        Binding("f3", "scenario_menu", "Scenarios"),
        Binding("f4", "story", "Story so far"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class Update(Message):
        def __init__(self, who: str, event: Event | RelayEvent) -> None:
            super().__init__()
            self.who = who
            self.event = event

    def __init__(self, scenario: str | None = None, pace: float = 1.2,
                 unlogged: bool = False, witness: bool = False) -> None:
        super().__init__()
        self.scenario = scenario or HONEST
        if unlogged and self.scenario + UNLOGGED in DESCRIPTIONS:
            self.scenario += UNLOGGED
        if witness and self.scenario + WITNESS in DESCRIPTIONS:
            self.scenario += WITNESS
        self.pace = pace
        self.world: World | None = None
        self.restart = asyncio.Event()
        self.quitting = False
        self.active = 0
        self.outcome: scenarios.Outcome | None = None
        self.narration: list[str] = []
        self.lesson = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            yield Container(id="alice", classes="pane -active")
            yield Container(id="bob", classes="pane")
            yield ServerPane(id="server", classes="pane")
        yield Static("Starting...", id="narration")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._run(), name="world", exit_on_error=False)

    # -- the world and its scenario

    def narrate(self, text: str) -> None:
        """The narration line: the newest sentences, and a scenario's lesson kept on top
        once it is drawn."""
        self.narration.append(text)
        lines = self.narration[-(2 if self.lesson else 3):]
        if self.lesson:
            lines = [f"Lesson: {self.lesson} (F3: another scenario)", *lines]
        with contextlib.suppress(Exception):
            self.query_one("#narration", Static).update(escape("\n".join(lines)))

    async def _run(self) -> None:
        while not self.quitting:
            self.restart.clear()
            self.lesson = ""
            choice = self.scenario
            name, cover_up, witnessed = parse_choice(choice)
            factory: Callable[..., Relay] = Relay if name == HONEST else \
                hostile_factory(name, self.narrate, cover_up, witnessed)
            self.narrate(DESCRIPTIONS[choice])
            async with demo_world(self.narrate, factory,
                                  observe=self._forwarder("relay")) as world:
                self.world = world
                for who, client in world.clients().items():
                    client.on_event(self._forwarder(who))
                    slot = self.query_one(f"#{who}", Container)
                    await slot.remove_children()
                    await slot.mount(ChatPane(client, id=f"{who}-chat"))
                self._focus_pane(self.active)
                if name == HONEST:
                    self.narrate("Type in Alice's pane (Ctrl+N, then 'bob') and watch the "
                                 "relay pane; F2 switches panes, F3 picks a scenario.")
                else:
                    await self._play(name, world)
                await self.restart.wait()
                self.world = None
                for who in ("alice", "bob"):
                    await self.query_one(f"#{who}", Container).remove_children()
            self.narrate("Everything the demo made has been deleted.")

    async def _play(self, name: str, world: World) -> None:
        world.pace = self.pace
        await asyncio.sleep(self.pace)
        try:
            self.outcome = await scenarios.SCENARIOS[Scenario(name)](world)
            await asyncio.sleep(self.pace)
            self.lesson = self.outcome.lesson
            self.narrate("The scenario is over; the panes stay live.")
        except Exception as exc:
            self.narrate(f"The scenario stopped: {exc}")

    # -- events from the clients and the relay

    def _forwarder(self, who: str) -> Callable[[Event | RelayEvent], None]:
        def forward(event: Event | RelayEvent) -> None:
            self.post_message(self.Update(who, event))

        return forward

    async def on_demo_app_update(self, message: Update) -> None:
        event = message.event
        if isinstance(event, RelayEvent):
            self.query_one(ServerPane).add_event(event, time.time())
            sentence = narrate_event(event)
            if sentence is not None:
                self.narrate(sentence)
            return
        try:
            pane = self.query_one(f"#{message.who}-chat", ChatPane)
        except Exception:
            return  # the pane is being replaced (a scenario restarts the demo)
        await pane.apply(event)
        if isinstance(event, MessageEvent):
            m = event.message
            if pane.current is None and m.contact != UNKNOWN_SENDER:
                # in the demo each person has the conversation open, as in a classroom
                await pane.open_conversation(m.contact)
            if m.direction is Direction.OUT and m.state is State.SENT:
                self.query_one(ServerPane).note_typed(m.contact, m.text)

    # -- keys

    def _focus_pane(self, index: int) -> None:
        self.active = index % len(PANES)
        for i, who in enumerate(PANES):
            self.query_one(f"#{who}").set_class(i == self.active, "-active")
        target = self.query_one(f"#{PANES[self.active]}")
        with contextlib.suppress(Exception):
            if PANES[self.active] == "server":
                self.query_one(ServerPane).query_one("#relay-log").focus()
            else:
                target.query_one("ContactList").focus()

    def action_next_pane(self) -> None:
        self._focus_pane(self.active + 1)

    def action_scenario_menu(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.scenario = name
                self.restart.set()

        self.push_screen(ScenarioMenu(), chosen)

    def action_story(self) -> None:
        if not isinstance(self.screen, StoryScreen):
            self.push_screen(StoryScreen(list(self.narration)))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(DEMO_KEYS))

    async def action_quit(self) -> None:
        self.quitting = True
        self.restart.set()
        for worker in self.workers:
            if worker.name == "world":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker.wait(), 10)
        self.exit(0)


def run_demo(scenario: str | None = None, pace: float = 1.2, unlogged: bool = False,
             witness: bool = False, theme: str = DEFAULT) -> int:
    app = DemoApp(scenario, pace, unlogged, witness)
    use_theme(app, theme)  # teaching.demo.theme: the projector's high-contrast light theme
    app.run()
    return app.return_code or 0
