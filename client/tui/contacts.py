"""The conversation list: one row per contact with a trust marker and the unread
count, most recent activity first."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from client.records import Contact
from client.tui.render import contact_row

EMPTY_ID = "-empty-"


class ContactList(OptionList):
    class Opened(Message):
        """The user chose a conversation (Enter or click)."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class Typed(Message):
        """The user typed a printable character here: it is meant for the composer."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.contacts: dict[str, Contact] = {}
        self.current: str | None = None
        self.group_rows: dict[str, Callable[[bool], Content]] = {}
        """Rows drawn by the groups' view (client/tui/groups.py), by conversation key."""

    def ordered(self) -> list[Contact]:
        return sorted(self.contacts.values(), key=lambda c: (-c.last_activity, c.name))

    def set_contacts(self, contacts: list[Contact]) -> None:
        self.contacts = {c.name: c for c in contacts}
        self._rebuild()

    def put(self, contact: Contact) -> None:
        self.contacts[contact.name] = contact
        self._rebuild()

    def note_conversation(self, name: str, when: float = 0.0) -> None:
        """Lists a conversation that has messages but no contact (yet): envelopes
        nobody could be named for, or a first message that could not be decrypted,
        so that no placeholder is out of reach."""
        if name not in self.contacts:
            self.put(Contact(name, b"", last_activity=when))

    def set_current(self, name: str | None) -> None:
        self.current = name
        self._rebuild()

    def unread(self, name: str) -> int:
        contact = self.contacts.get(name)
        return contact.unread if contact is not None else 0

    def _rebuild(self) -> None:
        highlighted = self.highlighted_option.id if self.highlighted_option else None
        contacts = self.ordered()
        if not contacts:
            self.set_options([Option("No conversations yet.\nCtrl+N starts one.",
                                     id=EMPTY_ID, disabled=True)])
            return
        self.set_options(Option(self.group_rows[c.name](c.name == self.current)
                                if c.name in self.group_rows
                                else contact_row(c, current=c.name == self.current), id=c.name)
                         for c in contacts)
        keep = highlighted if highlighted in self.contacts else self.current
        self.highlighted = self.get_option_index(keep) if keep in self.contacts else 0

    def move(self, step: int) -> str | None:
        """The name `step` rows away from the open conversation, wrapping around."""
        names = [c.name for c in self.ordered()]
        if not names:
            return None
        if self.current not in names:
            return names[0 if step > 0 else -1]
        return names[(names.index(self.current) + step) % len(names)]

    def on_key(self, event: events.Key) -> None:
        """Typing in the list is typing a message: the pane moves it to the composer
        (the list's own keys are arrows, Home/End, PgUp/PgDn and Enter)."""
        if event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.post_message(self.Typed(event.character))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id and event.option.id != EMPTY_ID:
            self.post_message(self.Opened(event.option.id))
