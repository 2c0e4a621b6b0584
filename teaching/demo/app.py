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
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from client.events import ContactEvent, Event, MessageEvent
from client.history import UNKNOWN_SENDER
from client.records import Contact, Direction, State
from client.tui.app import CHAT_CSS
from client.tui.chat import ChatPane
from client.tui.composer import Composer
from client.tui.screens import HelpScreen
from server.events import RelayEvent
from server.relay import Relay
from teaching.demo import scenarios
from teaching.demo.server_pane import ServerPane, narrate_event
from teaching.demo.theme import DEFAULT, use_theme
from teaching.demo.world import World, demo_world, hostile_factory
from teaching.hostile import HostileRelay
from teaching.names import COVER_UP, WITNESSED, HostileAct, Scenario

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
    ("Demo", "F2", "switch between Alice, Bob and the relay (in a narrow terminal: one "
                   "chat beside the relay, F2 brings the other)"),
    ("Demo", "F3", "choose a scenario: what a malicious relay can and cannot do"),
    ("Demo", "F4", "everything the narration said so far"),
    ("Demo", "D", "in the relay pane: what the relay can and cannot read of the selected "
                  "envelope (Escape closes it)"),
]
PANES = ("alice", "bob", "server")
TITLES = {"alice": "Alice", "bob": "Bob", "server": "Relay: what the server sees"}
FOCUSED = "▶ "
"""Marks the focused pane's title: named, not only coloured (a projector washes
colours out)."""


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
        body = self.query_one("#story-body", VerticalScroll)
        body.call_after_refresh(body.scroll_end, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)


class DemoChatPane(ChatPane):
    """A chat pane whose person reads only while the pane has the focus: so that the
    class sees 'delivered' before 'read' (a pane left open on screen would otherwise
    turn every message straight to read)."""

    looking = False

    def set_looking(self, looking: bool) -> None:
        self.looking = looking
        if looking:
            self._mark_read_now()

    def _mark_read_now(self) -> None:
        if self.looking:
            super()._mark_read_now()


class DemoApp(App[int]):
    CSS_PATH = [str(CHAT_CSS), "demo.tcss"]  # noqa: RUF012
    TITLE = "blindrelay demo"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [  # F1 first: the footer cuts off its end
        Binding("f1", "help", "Help"),
        Binding("f2", "next_pane", "Pane"),
        Binding("f3", "scenario_menu", "Scenarios"),
        Binding("f4", "story", "Story"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class Update(Message):
        def __init__(self, who: str, event: Event | RelayEvent | HostileAct) -> None:
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
        """What the narration said in the current run (F4 shows it)."""
        self.lesson = ""
        self.typed_early = ""
        """Keys typed before Alice's composer existed: they become her first message."""
        self.send_early = False
        self.told: set[str] = set()
        """Explanations given once per run (what the receipts are, ...)."""
        self.ready = False
        """The chat panes are up, each with its conversation open."""
        self.key_changed: dict[tuple[str, str], bool] = {}
        """(whose client, contact): whether it showed the contact's key as changed."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            yield Container(id="alice", classes="pane -active -shown")
            yield Container(id="bob", classes="pane")
            yield ServerPane(id="server", classes="pane")
        yield Static("Starting...", id="narration")
        yield Footer()

    def on_mount(self) -> None:
        self._title_panes()
        self.run_worker(self._run(), name="world", exit_on_error=False)

    def on_key(self, event: events.Key) -> None:
        """While the demo starts, what the teacher types is kept for Alice's composer
        (the chat panes are disabled until then, so the keys reach the app)."""
        if self.ready:
            if self.focused is None and PANES[self.active] != "server":
                chat = self.query_one(f"#{PANES[self.active]}-chat", ChatPane)
                if event.is_printable and event.character and chat.current is not None:
                    event.stop()
                    chat.conversation.composer.focus()
                    chat.conversation.composer.insert(event.character)
            return
        if event.key == "enter":
            self.send_early = bool(self.typed_early.strip())
        elif event.is_printable and event.character:
            self.typed_early += event.character
        elif event.key == "backspace":
            self.typed_early = self.typed_early[:-1]
        else:
            return
        event.stop()

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
            self.outcome = None
            self.narration = []
            self.told = set()
            self.ready = False
            self.key_changed = {}
            self.query_one(ServerPane).clear()
            choice = self.scenario
            name, cover_up, witnessed = parse_choice(choice)
            factory: Callable[..., Relay] = Relay if name == HONEST else \
                hostile_factory(name, self.narrate, cover_up, witnessed)
            self.narrate(DESCRIPTIONS[choice])
            async with demo_world(self.narrate, factory,
                                  observe=self._forwarder("relay")) as world:
                self.world = world
                if isinstance(world.relay, HostileRelay):
                    world.relay.marks.append(self._forwarder("relay"))
                for who, client in world.clients().items():
                    client.on_event(self._forwarder(who))
                    slot = self.query_one(f"#{who}", Container)
                    await slot.remove_children()
                    # disabled until ready: no focus, so early keys reach on_key
                    await slot.mount(DemoChatPane(client, id=f"{who}-chat", disabled=True))
                # each person has the conversation with the other open, as in a class
                for who, other in (("alice", "bob"), ("bob", "alice")):
                    chat = self.query_one(f"#{who}-chat", ChatPane)
                    await chat.open_conversation(other)
                    chat.disabled = False
                self.ready = True
                self._focus_pane(self.active)
                await self._type_early()
                if name == HONEST:
                    self.narrate("Type a message as Alice: Enter sends it to Bob; watch the "
                                 "relay pane. F2 switches panes, F3 picks a scenario.")
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

    async def _type_early(self) -> None:
        """What was typed while the demo started goes into Alice's composer (and out,
        if Enter was pressed too)."""
        text, send = self.typed_early, self.send_early
        self.typed_early, self.send_early = "", False
        if not text:
            return
        composer = self.query_one("#alice-chat", ChatPane).conversation.composer
        composer.insert(text)
        if send:
            composer.clear()
            composer.post_message(Composer.Submitted(composer, text))

    # -- events from the clients and the relay

    def _forwarder(self, who: str) -> Callable[[Event | RelayEvent | HostileAct], None]:
        def forward(event: Event | RelayEvent | HostileAct) -> None:
            self.post_message(self.Update(who, event))

        return forward

    async def on_demo_app_update(self, message: Update) -> None:
        event = message.event
        if isinstance(event, HostileAct):
            self.query_one(ServerPane).add_act(event)
            return
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
        if isinstance(event, ContactEvent):
            self._accepted(message.who, event.contact)
        if isinstance(event, MessageEvent):
            m = event.message
            if pane.current is None and m.contact != UNKNOWN_SENDER:
                # in the demo each person has the conversation open, as in a classroom
                await pane.open_conversation(m.contact)
            if m.direction is Direction.OUT and m.state is State.SENT:
                self.query_one(ServerPane).note_typed(m.contact, m.text)
            if m.direction is Direction.IN and m.state is State.RECEIVED:
                self._explain_receipts(message.who, m.contact)
            if m.direction is Direction.OUT and m.state is State.DELIVERED:
                self._explain_delivered(message.who, m.contact)

    def _tell_once(self, key: str, text: str) -> None:
        if key not in self.told:
            self.told.add(key)
            self.narrate(text)

    def _explain_receipts(self, who: str, sender: str) -> None:
        if sender == UNKNOWN_SENDER:
            return
        me, them = who.capitalize(), sender.capitalize()
        self._tell_once("receipts", (
            f"{me}'s client now sends {them} a 'delivered' receipt, and a 'read' one once "
            f"{me} has looked: encrypted like any message, in the same 2048-byte size "
            "class, so the relay cannot tell a receipt from a text by its size or bytes "
            "(only guess from the timing: a send right after a delivery). Those are the "
            f"envelopes stored for {them} right after."))

    def _explain_delivered(self, who: str, recipient: str) -> None:
        self._tell_once("delivered", (
            f"{who.capitalize()}'s message shows 'delivered': {recipient.capitalize()}'s "
            f"device has it. 'Read' follows when {recipient.capitalize()} looks, which in "
            f"this demo means when {recipient.capitalize()}'s pane has the focus (F2)."))

    def _accepted(self, who: str, contact: Contact) -> None:
        """key-swap: accepting the relay's 'new' key is a mistake the class should see
        the consequence of."""
        was = self.key_changed.get((who, contact.name), False)
        self.key_changed[(who, contact.name)] = contact.key_changed
        name, _, _ = parse_choice(self.scenario)
        if name == Scenario.KEY_SWAP.value and was and not contact.key_changed:
            peer = contact.name.capitalize()
            self.narrate(f"{who.capitalize()} ACCEPTED the new key. It is the relay's key: "
                         f"{who.capitalize()}'s next message to {peer} is encrypted to the "
                         f"relay's key, so the relay reads it and {peer} never gets it. "
                         "This is why the client asks to compare safety numbers first.")

    # -- keys

    def _title_panes(self) -> None:
        for i, who in enumerate(PANES):
            self.query_one(f"#{who}").border_title = \
                (FOCUSED if i == self.active else "") + TITLES[who]

    def _focus_pane(self, index: int) -> None:
        """Focuses a pane. In a narrow terminal one chat shows beside the relay: the
        one focused last."""
        self.active = index % len(PANES)
        who = PANES[self.active]
        for i, other in enumerate(PANES):
            self.query_one(f"#{other}").set_class(i == self.active, "-active")
        if who != "server":
            for other in ("alice", "bob"):
                self.query_one(f"#{other}").set_class(other == who, "-shown")
        self._title_panes()
        target = self.query_one(f"#{who}")
        with contextlib.suppress(Exception):
            if who == "server":
                self.query_one(ServerPane).query_one("#relay-log").focus()
            else:
                chat = target.query_one(ChatPane)
                if chat.current is not None:
                    chat.conversation.composer.focus()
                else:
                    chat.contact_list.focus()
        for chat in self.query(DemoChatPane):
            chat.set_looking(chat.id == f"{who}-chat")

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
