"""The chat view: status bar, conversation list and the open conversation.

`ChatPane` turns user intent into library calls (sending in a worker, marking read,
verifying, accepting a key) and library events into widget updates. `ChatScreen` is
the pane plus a footer, for `blindrelay chat`; the teaching demo shows two panes
side by side."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from client.client import Client
from client.errors import (
    ClientError,
    ConnectionDropped,
    KeyChangeBlocked,
    NotConnected,
    RelayRefused,
    UnknownContact,
)
from client.events import ContactEvent, Event, KtAlert, MessageEvent, StatusEvent
from client.history import UNKNOWN_SENDER
from client.records import Message
from client.sanitize import one_line
from client.tui.composer import Composer
from client.tui.contacts import EMPTY_ID, ContactList
from client.tui.conversation import ConversationView, MessageLog
from client.tui.groups import GroupsUI, GroupUpdate, is_group
from client.tui.screens import NewConversationScreen, SafetyNumberScreen
from client.tui.status import StatusBar

log = logging.getLogger("blindrelay.tui")

VIEW_ERRORS = (ClientError,)
"""Errors a view handler shows as a notification instead of letting the app die: the
client's one root (a damaged store row raises `CorruptStore`, a `StoreError`, which is a
`ClientError`)."""

READ_DELAY = 0.15
"""Seconds to gather incoming messages in the open conversation before marking them
read (one receipt for a burst)."""


def send_error_text(name: str, exc: Exception) -> str:
    """What the notification says when a message could not be sent. The error's own
    text may quote a relay or a peer: it is shown on one line, controls made visible
    (and the notification is never parsed as markup)."""
    detail = one_line(str(exc))
    if isinstance(exc, KeyChangeBlocked):
        return (f"Not sent: {name}'s identity key has changed. Press Ctrl+T to compare "
                "safety numbers and accept the new key.")
    if isinstance(exc, ConnectionDropped):
        return f"Not sent: the connection dropped while fetching {name}'s keys. Try again."
    if isinstance(exc, NotConnected):
        return f"Not sent: not connected to the relay (needed to fetch {name}'s keys). {detail}"
    if isinstance(exc, UnknownContact):
        return f"Not sent: the relay has no user {name!r}."
    return f"Not sent: {detail}"


class ChatPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_conversation", "New chat"),
        Binding("ctrl+g", "new_group", "New group", show=False),  # in the help (F1)
        Binding("ctrl+t", "safety_number", "Safety no."),
        Binding("ctrl+up,alt+up", "switch(-1)", "Previous", show=False),
        Binding("ctrl+down,alt+down", "switch(1)", "Next", show=False),
        Binding("ctrl+o", "older", "Older", show=False),
        Binding("ctrl+l", "latest", "Latest", show=False),
        Binding("escape", "focus_contacts", "Contacts", show=False),
    ]

    def __init__(self, client: Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.current: str | None = None
        self._send_lock = asyncio.Lock()
        self._read_timer: Timer | None = None
        self.groups = GroupsUI(self)  # group chats (client/tui/groups.py)

    def compose(self) -> ComposeResult:
        yield StatusBar(self.client.username, id="status")
        with Horizontal(id="main"):
            yield ContactList(id="contacts")
            yield ConversationView(id="conversation")

    @property
    def contact_list(self) -> ContactList:
        return self.query_one(ContactList)

    @property
    def conversation(self) -> ConversationView:
        return self.query_one(ConversationView)

    def on_mount(self) -> None:
        self.query_one(StatusBar).set_status(self.client.status)
        self.contact_list.focus()
        try:
            self.contact_list.set_contacts(self.client.contacts())
            if self.client.history(UNKNOWN_SENDER, 1):
                self.contact_list.note_conversation(UNKNOWN_SENDER)
        except VIEW_ERRORS as exc:
            self.report("read the conversation list", exc)
        try:
            self.groups.mount()
        except VIEW_ERRORS as exc:
            self.report("read the groups", exc)
        for notice in self.client.store.notices:  # damaged rows moved aside (store.py)
            self.store_notice(notice)
        self.client.store.on_notice = self.store_notice

    def on_unmount(self) -> None:
        self.groups.unmount()

    async def on_group_update(self, message: GroupUpdate) -> None:
        try:
            await self.groups.apply(message.event)
        except VIEW_ERRORS as exc:
            self.report("show a group update", exc)

    def store_notice(self, notice: str) -> None:
        """A damaged or rolled-back profile row was moved aside: said once, as a toast."""
        self.notify(one_line(notice), title="Profile damaged", severity="warning",
                    timeout=30, markup=False)

    def report(self, what: str, exc: Exception) -> None:
        """A library error in a view handler, shown instead of crashing the app."""
        log.warning("could not %s: %s", what, exc)
        self.notify(f"Could not {what}: {one_line(str(exc))}", title="Error",
                    severity="error", timeout=20, markup=False)

    # -- library events (the app forwards them here)

    async def apply(self, event: Event) -> None:
        try:
            await self._apply(event)
        except VIEW_ERRORS as exc:
            self.report("show an update", exc)

    async def _apply(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            self.query_one(StatusBar).set_status(event.status, event.detail)
        elif isinstance(event, ContactEvent):
            self.contact_list.put(event.contact)
            if event.contact.name == self.current:
                self.conversation.set_contact(event.contact)
        elif isinstance(event, MessageEvent):
            await self._apply_message(event.message)
        elif isinstance(event, KtAlert):  # loud: the relay's directory did not add up
            self.notify(one_line(event.text), title="KEY DIRECTORY ALERT", severity="error",
                        timeout=120, markup=False)

    async def _apply_message(self, message: Message) -> None:
        self.contact_list.note_conversation(message.contact, message.stored_at)
        await self.conversation.put(message)

    def on_message_log_seen(self, event: MessageLog.Seen) -> None:
        """Unread messages of the open conversation have been on screen."""
        event.stop()
        self._schedule_read()

    # -- opening conversations

    async def open_conversation(self, name: str) -> None:
        try:
            await self._open_conversation(name)
        except VIEW_ERRORS as exc:
            self.report("open the conversation", exc)

    async def _open_conversation(self, name: str) -> None:
        if is_group(name):
            await self.groups.open(name)
            return
        self.groups.left()
        self.current = name
        self.contact_list.set_current(name)
        client = self.client

        def loader(before: int | None, limit: int) -> list[Message]:
            try:
                return client.history(name, limit, before)
            except ClientError as exc:
                self.report("read these messages", exc)
                return []

        await self.conversation.open(name, client.contact(name), loader, lambda: client.clock())
        if name != UNKNOWN_SENDER:
            self.conversation.composer.focus()

    def _schedule_read(self) -> None:
        if self._read_timer is not None:
            self._read_timer.stop()
        self._read_timer = self.set_timer(READ_DELAY, self._mark_read_now)

    def _mark_read_now(self) -> None:
        if self.current is not None:
            self.run_worker(self._mark_read(self.current), group="read")

    async def _mark_read(self, name: str) -> None:
        """Marks the conversation read, but only once every unread message in it has
        been on screen. The check and the library call run without an await between
        them, so no message can arrive unseen in between."""
        try:
            if is_group(name):
                await self.groups.mark_read(name)
                return
            contact = self.client.contact(name)
            if contact is None or name != self.current:
                return
            unread = [m for m in self.client.history(name, max(200, contact.unread * 2))
                      if m.unread]
            if not (unread or contact.unread) or not self.conversation.all_seen(unread):
                return
            await self.client.mark_read(name)
        except (RelayRefused, NotConnected) as exc:
            log.info("marking %s read failed: %s", name, exc)
        except VIEW_ERRORS as exc:
            self.report("mark the conversation read", exc)

    @on(ContactList.Typed)
    async def typed_in_list(self, event: ContactList.Typed) -> None:
        """A key typed while the list has focus goes to the composer of the open
        conversation (opening the highlighted one first if none is open)."""
        event.stop()
        if self.current is None:
            highlighted = self.contact_list.highlighted_option
            if highlighted is None or highlighted.id in (None, EMPTY_ID):
                return
            await self.open_conversation(highlighted.id)
        composer = self.conversation.composer
        if composer.disabled:
            return
        composer.focus()
        composer.insert(event.character)

    @on(ContactList.Opened)
    async def contact_opened(self, event: ContactList.Opened) -> None:
        await self.open_conversation(event.name)

    # -- sending

    @on(Composer.Submitted)
    def submitted(self, event: Composer.Submitted) -> None:
        event.stop()
        if self.current is None:
            self.notify("Open a conversation first (Ctrl+N starts one).", severity="warning",
                        markup=False)
            event.composer.restore(event.text)
            return
        self.run_worker(self._send(self.current, event.text.rstrip("\n")), group="send")

    async def _send(self, name: str, text: str) -> None:
        async with self._send_lock:
            try:
                if is_group(name):
                    await self.groups.send(name, text)
                else:
                    await self.client.send_text(name, text)
            except ClientError as exc:
                self._send_failed(name, text, exc)
            except Exception as exc:  # the app must outlive any library bug
                log.exception("sending to %s failed", name)
                self._send_failed(name, text, exc)

    def _send_failed(self, name: str, text: str, exc: Exception) -> None:
        self.notify(send_error_text(name, exc), title="Message not sent", severity="error",
                    timeout=10, markup=False)
        self.conversation.keep_draft(name, text)

    # -- actions

    def action_new_conversation(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.run_worker(self.open_conversation(name), group="open")

        self.app.push_screen(NewConversationScreen(self.client.username, self._lookalikes),
                             chosen)

    def action_new_group(self) -> None:
        self.groups.new_group()

    def _lookalikes(self, name: str) -> list[str]:
        """Contacts a new name looks like (none for a name already a contact)."""
        try:
            return [] if self.client.contact(name) else self.client.trust.lookalikes(name)
        except ClientError:
            return []

    def action_safety_number(self) -> None:
        try:
            self._safety_number()
        except VIEW_ERRORS as exc:
            self.report("show the safety number", exc)

    def _safety_number(self) -> None:
        name = self.current
        if is_group(name):  # the members and the group's code
            self.groups.info()
            return
        contact = self.client.contact(name) if name and name != UNKNOWN_SENDER else None
        if name is None or contact is None:
            self.notify("Open a conversation with someone first: safety numbers exist once "
                        "you have their key (after the first message).", severity="warning",
                        markup=False)
            return
        digits, payload = self.client.safety_number(name)

        def done(result: str | None) -> None:
            try:
                if result == "verify":
                    self.client.verify(name)
                    self.notify(f"{name} is now verified.", severity="information",
                                markup=False)
                elif result == "accept":
                    self.client.accept_key(name)
                    self.notify(f"Accepted {name}'s new key. Compare safety numbers again to "
                                "verify it.", severity="warning", markup=False)
            except VIEW_ERRORS as exc:
                self.report("change the contact's trust", exc)

        self.app.push_screen(SafetyNumberScreen(contact, digits, payload,
                                                self.client.directory.anchors()), done)

    async def action_switch(self, step: int) -> None:
        name = self.contact_list.move(step)
        if name is not None and name != self.current:
            await self.open_conversation(name)

    async def action_older(self) -> None:
        log_widget = self.query_one(MessageLog)
        if not await log_widget.load_older(keep_position=False):
            log_widget.scroll_home(animate=False)

    async def action_latest(self) -> None:
        await self.query_one(MessageLog).jump_to_latest()

    def action_focus_contacts(self) -> None:
        self.contact_list.focus()


class ChatScreen(Screen[None]):
    """`blindrelay chat`'s one screen: a chat pane and the footer."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.pane = ChatPane(client, id="chat-pane")

    def compose(self) -> ComposeResult:
        yield self.pane
        yield Footer()

    def on_mount(self) -> None:
        self.pane.contact_list.focus()

    def on_screen_resume(self) -> None:
        """Back from a dialog: what the dialog covered counts as seen only now."""
        self.pane.conversation.log_widget.call_after_refresh(
            self.pane.conversation.log_widget.note_visible)

    @property
    def current(self) -> str | None:
        return self.pane.current

    async def apply(self, event: Event) -> None:
        await self.pane.apply(event)
