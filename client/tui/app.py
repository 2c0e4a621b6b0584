"""`blindrelay chat`: the Textual app over an opened `Client`.

The app owns the connection loop (`Client.run`, which reconnects with backoff by
itself) in a worker and turns the library's events into Textual messages; the
screens and widgets live in their own modules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import ClassVar

import rich
from rich.segment import Segments
from rich.traceback import Traceback
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.logging import TextualHandler
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker

from client.client import Client
from client.errors import ClientError, RelayRefused
from client.events import Event
from client.sanitize import one_line
from client.tui.chat import ChatScreen
from client.tui.screens import HelpScreen

QUIT_GRACE = 2.0
"""Seconds the app waits on quit for the client to close its connection."""


CHAT_CSS = Path(__file__).with_name("app.tcss")
"""The chat's stylesheet; the teaching demo loads it too."""


class ChatApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "blindrelay"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class ClientUpdate(Message):
        """A library event, delivered in the app's message queue."""

        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.chat = ChatScreen(client)
        self.stop = asyncio.Event()
        self.relay_worker: Worker[None] | None = None

    def _fatal_error(self) -> None:
        """Textual's report of an uncaught exception, without local variables: its
        default shows them, and a frame of the store's decryption holds the key that
        opens the whole profile. (Errors the app expects are caught in the views and
        shown as notifications; this is the last resort.)"""
        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(
            Segments(self.console.render(traceback, self.console.options)))
        self._close_messages_no_wait()

    def get_default_screen(self) -> Screen[None]:
        return self.chat

    def on_mount(self) -> None:
        self.client.on_event(self._on_client_event)
        self.relay_worker = self.run_worker(self._run_client(), name="relay", group="relay",
                                            exit_on_error=False)

    def _on_client_event(self, event: Event) -> None:
        # Listeners run in this event loop (the client's tasks are started from the
        # worker); the message is handled in order with everything else.
        self.post_message(self.ClientUpdate(event))

    async def on_chat_app_client_update(self, message: ClientUpdate) -> None:
        if not self.chat.is_attached:  # the client's last words while the app closes
            return
        with contextlib.suppress(NoMatches):
            await self.chat.apply(message.event)

    async def _run_client(self) -> None:
        try:
            await self.client.run(self.stop)
        except RelayRefused as exc:
            self.notify(f"The relay refused this profile: {one_line(str(exc))}",
                        title="Offline", severity="error", timeout=30, markup=False)
        except ClientError as exc:
            self.notify(f"Stopped receiving: {one_line(str(exc))}", title="Offline",
                        severity="error", timeout=30, markup=False)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.stop.set()
        if self.relay_worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.relay_worker.wait(), QUIT_GRACE)
        self.exit(0)

    def on_unmount(self) -> None:
        self.stop.set()
        with contextlib.suppress(ValueError):
            self.client.listeners.remove(self._on_client_event)


async def run_chat_async(client: Client) -> int:
    app = ChatApp(client)
    try:
        await app.run_async()
    finally:
        await client.disconnect()
    return app.return_code or 0


def run_chat(client: Client) -> int:
    """Runs the chat app over an opened client until the user quits; the caller
    closes the client afterwards. Library log records go to Textual's devtools log,
    never onto the screen."""
    logger = logging.getLogger("blindrelay")
    handler = TextualHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        return asyncio.run(run_chat_async(client))
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
