"""The open conversation: title, key-change banner, the message log (`messagelog`,
over the window of `window`), the "▼ N new" line and the composer."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from client.history import UNKNOWN_SENDER
from client.records import Contact, Message
from client.tui.composer import Composer
from client.tui.messagelog import MessageLog
from client.tui.render import display_name, trust_text
from client.tui.window import HistoryLoader, MessageItem

__all__ = ["ConversationView", "HistoryLoader", "KeyChangeBanner", "MessageItem", "MessageLog"]

class KeyChangeBanner(Static):
    """Shown while the open contact has an identity key change not yet accepted."""

    def show_for(self, contact: Contact | None) -> None:
        if contact is None or not contact.key_changed:
            self.display = False
            return
        name = display_name(contact.name)
        self.update(Content.assemble(
            ("⚠ ", "bold"), (f"{name}'s identity key has CHANGED.", "bold"),
            f" This can mean they reinstalled, or that someone is intercepting. Nothing is "
            f"sent to {name} until you compare safety numbers and accept the new key. ",
            ("Press Ctrl+T to compare and accept.", "bold underline")))
        self.display = True


class ConversationView(Vertical):
    """Everything about the open conversation; attributes flow down from the screen,
    the composer posts `Composer.Submitted` up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.name_open: str | None = None
        self.contact: Contact | None = None
        self.drafts: dict[str, str] = {}
        """What was typed and not sent, per conversation, while another is open."""

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(
            ("No conversation open.\n\n", "bold"),
            "Pick one on the left (↑/↓, Enter) or press Ctrl+N to start one by username.\n"
            "Press F1 for every key."), id="welcome")
        yield Static("", id="conversation-title")
        yield KeyChangeBanner("", id="key-banner")
        yield MessageLog(id="log")
        yield Static("", id="new-below", classes="hint")
        yield Composer(id="composer")

    def on_mount(self) -> None:
        self._set_open(False)

    def on_message_log_new_below(self, event: MessageLog.NewBelow) -> None:
        hint = self.query_one("#new-below", Static)
        hint.update(f"▼ {event.count} new: scroll down or press Ctrl+L")
        hint.display = event.count > 0 and self.name_open is not None

    def _set_open(self, is_open: bool) -> None:
        self.query_one("#new-below").display = False
        self.query_one("#welcome").display = not is_open
        for selector in ("#conversation-title", "#log", "#composer"):
            self.query_one(selector).display = is_open
        if not is_open:
            self.query_one(KeyChangeBanner).display = False

    @property
    def log_widget(self) -> MessageLog:
        return self.query_one(MessageLog)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    async def open(self, name: str, contact: Contact | None, loader: HistoryLoader,
                   clock: Callable[[], float]) -> None:
        changed = name != self.name_open
        previous, self.name_open = self.name_open, name
        self._set_open(True)
        self.set_contact(contact)
        if changed:
            self._switch_draft(previous, name)
        await self.log_widget.show(loader, clock)

    def _switch_draft(self, previous: str | None, name: str) -> None:
        """Keeps the composer's text for the conversation being left, and brings back
        the one of the conversation being opened."""
        composer = self.composer
        if previous is not None and composer.text:
            self.drafts[previous] = composer.text
        elif previous is not None:
            self.drafts.pop(previous, None)
        composer.load_text(self.drafts.pop(name, ""))
        composer.move_cursor(composer.document.end)

    def keep_draft(self, name: str, text: str) -> None:
        """Text for a conversation that is not open (a send to it failed): it waits
        there as its draft, unless one is already waiting."""
        if name == self.name_open:
            self.composer.restore(text)
        else:
            self.drafts.setdefault(name, text)

    async def close(self) -> None:
        self.name_open = None
        self.contact = None
        await self.log_widget.clear()
        self._set_open(False)

    def set_contact(self, contact: Contact | None) -> None:
        self.contact = contact
        name = self.name_open or ""
        label, style = trust_text(contact)
        shown = display_name(name)
        self.query_one("#conversation-title", Static).update(
            Content.assemble((shown, "bold"), "  ", (label, style)))
        self.query_one(KeyChangeBanner).show_for(contact)
        composer = self.composer
        composer.disabled = name == UNKNOWN_SENDER
        composer.set_recipient(shown, blocked=contact is not None and contact.key_changed)

    async def put(self, message: Message) -> None:
        if message.contact == self.name_open:
            await self.log_widget.put(message)

    def all_seen(self, unread: list[Message]) -> bool:
        """Whether every one of these unread messages of the open conversation has
        been on screen (only then may they be reported read)."""
        seen = self.log_widget.tracker.seen
        return all(m.row_id in seen for m in unread)
