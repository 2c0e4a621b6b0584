"""Dialogs: start a conversation, the safety number (digits and QR), accepting a
changed key, and the help screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from client.records import Contact
from client.sanitize import one_line
from client.tui.keys import HELP_KEYS
from client.tui.render import display_name, qr_text, trust_text
from protocol.wire.errors import InvalidUsername
from protocol.wire.usernames import USERNAME_RULE, check_username


class NewConversationScreen(ModalScreen[str | None]):
    """Asks for a username; dismisses with it, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, own_username: str,
                 lookalikes: Callable[[str], list[str]] | None = None) -> None:
        """`lookalikes(name)`: existing contacts a new name looks like (a warning,
        and a second Enter to go on)."""
        super().__init__()
        self.own_username = own_username
        self.lookalikes = lookalikes
        self._warned: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="new-dialog", classes="dialog"):
            yield Static(Content(f"Start a conversation as {one_line(self.own_username)}"),
                         classes="dialog-title")
            yield Input(placeholder="their username", id="new-name")
            yield Static(f"Usernames: {USERNAME_RULE}.", classes="dialog-hint")
            yield Static("", id="new-error", classes="dialog-error")
            yield Static("Enter opens · Escape cancels", classes="dialog-hint")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip().lower()
        error = self.query_one("#new-error", Static)
        try:
            check_username(name)
        except InvalidUsername as exc:
            error.update(Content(one_line(str(exc))))
            return
        if name == self.own_username:
            error.update("That is you: pick someone else.")
            return
        similar = self.lookalikes(name) if self.lookalikes is not None else []
        if similar and self._warned != name:
            self._warned = name
            error.update(Content(one_line(
                f"{name} looks like your contact {' and '.join(similar)} but is a "
                f"different account. Enter again to write to {name} anyway.")))
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AcceptKeyScreen(ModalScreen[bool]):
    """The last question before trusting a changed identity key."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "Accept"),
                Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.contact_name = name

    def compose(self) -> ComposeResult:
        name = display_name(self.contact_name)
        with Vertical(id="accept-dialog", classes="dialog"):
            yield Static(Content(f"Accept {name}'s new identity key?"), classes="dialog-title")
            yield Static(Content(
                f"Do this only after comparing the safety number with {name} over a channel "
                f"you trust. Messages will then go to the new key, and {name} stays "
                "unverified until you verify again."))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept (Y)", variant="error", id="accept-yes")
                yield Button("Cancel (N)", id="accept-no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept-yes")


class SafetyNumberScreen(ModalScreen[str | None]):
    """The 60 digits and the QR code of a contact's (new) key. Dismisses with
    "verify", "accept" (already confirmed) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("v", "verify", "Mark verified"),
                Binding("a", "accept", "Accept new key"),
                Binding("escape", "close", "Close")]

    def __init__(self, contact: Contact, digits: str, payload: str,
                 directory: list[str] | None = None) -> None:
        super().__init__()
        self.contact = contact
        self.digits = digits
        self.payload = payload
        self.directory = directory or []
        """Key directory codes (PROTOCOL.md 19.8): equal for the same size on both
        screens unless the relay showed the two of you different directories."""

    def compose(self) -> ComposeResult:
        contact, name = self.contact, display_name(self.contact.name)
        label, style = trust_text(contact)
        with Horizontal(id="safety"):
            with VerticalScroll(id="safety-info"):
                yield Static(Content.assemble(("Safety number with ", "bold"),
                                              (name, "bold $accent")), classes="dialog-title")
                yield Static(Content.styled(label, style))
                yield Static(self.digits, id="safety-digits")
                if self.directory:
                    yield Static("Key directory, " + " · ".join(self.directory),
                                 id="safety-directory", markup=False)
                if contact.key_changed:
                    yield Static(Content.assemble(
                        (f"{name}'s identity key CHANGED. ", "bold $text-error"),
                        "These digits are for the NEW key. Compare them with "
                        f"{name} over a channel you trust; if they match, press A to "
                        "accept the new key."), id="safety-changed")
                else:
                    yield Static(
                        f"Compare these 60 digits with {name}'s screen, in person or over a "
                        "channel you trust, or scan the code. If they match, press V to mark "
                        f"{name} verified.", classes="dialog-text")
                keys = "A accept new key · Esc close" if contact.key_changed else \
                    "V mark verified · Esc close"
                yield Static(keys, classes="dialog-hint")
            yield Static(qr_text(self.payload), id="safety-qr")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers only what applies: verify, or accept a changed key."""
        if action == "verify":
            return not self.contact.key_changed
        if action == "accept":
            return self.contact.key_changed
        return True

    def action_verify(self) -> None:
        if self.contact.key_changed:
            self.notify("Accept the new key first (A).", severity="warning", markup=False)
            return
        self.dismiss("verify")

    def action_accept(self) -> None:
        if not self.contact.key_changed:
            self.notify(f"{display_name(self.contact.name)}'s key has not changed.",
                        severity="information", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss("accept")

        self.app.push_screen(AcceptKeyScreen(self.contact.name), answered)

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "close", "Close")]

    def __init__(self, extra: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__()
        self.keys = [*(extra or []), *HELP_KEYS]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                where = ""
                for place, keys, what in self.keys:
                    if place != where:
                        yield Static(place, classes="help-place")
                        where = place
                    with Horizontal(classes="help-row"):
                        yield Static(keys, classes="help-keys")
                        yield Static(what, classes="help-what")
            yield Static("↑/↓ scroll · Escape closes this help.", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
