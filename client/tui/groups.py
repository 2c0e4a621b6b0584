"""Group chats in the chat app (issue 13 item 5): groups in the conversation list,
the open group's members with each one's trust, system lines for joins, leaves and
renames, and the group's epoch authenticator as a code to compare (Ctrl+T, beside
the members' safety numbers).

In an open group the composer also takes commands: /add NAME..., /remove NAME,
/rename NEW NAME, /leave, /update (fresh keys: post-compromise security); a text
that starts with "//" is sent with one "/" less.

Everything a peer chose (group name, member names, texts) is shown through
client.sanitize and assembled as plain text, never markup, like one-to-one chats.
`GroupsUI` is the chat pane's group half: the pane calls it where a conversation
is a group (`is_group`)."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from client.errors import ClientError, KeyChangeBlocked, Refused
from client.group_records import GroupMessage, conversation_key
from client.groups import GroupEvent, GroupView
from client.records import Contact, Message
from client.sanitize import one_line
from protocol.wire.errors import InvalidUsername
from protocol.wire.usernames import check_username

if TYPE_CHECKING:
    from client.tui.chat import ChatPane

log = logging.getLogger("blindrelay.tui")

GROUP_PREFIX = "#group:"

TRUST_STYLES = {"you": "$text-muted", "verified": "bold $text-success",
                "unverified": "$text-muted", "KEY CHANGED": "bold $text-error",
                "unchecked": "$text-warning", "NOT THEIR KEY": "bold $text-error"}


def is_group(name: str | None) -> bool:
    return name is not None and name.startswith(GROUP_PREFIX)


def group_id_of(name: str) -> bytes:
    return bytes.fromhex(name.removeprefix(GROUP_PREFIX))


def as_message(line: GroupMessage) -> Message:
    """A group line in the shape the message log shows: the sender where a one-to-one
    log has the contact (it is sanitized there like any name)."""
    return Message(line.sender or conversation_key(line.group_id), line.direction, line.text,
                   line.state, line.message_id, line.sent_at_ms, line.stored_at, line.error,
                   line.unread, row_id=line.row_id)


def group_row(view: GroupView, current: bool) -> Content:
    """A group in the conversation list: '#', its name, the unread count."""
    parts: list[str | tuple[str, str]] = [("▸" if current else " ", "bold"), " ",
                                          ("#", "bold $accent"), " ",
                                          (one_line(view.name), "bold" if view.unread else "")]
    if view.status.value == "removed":
        parts.append((" (left)", "$text-muted"))
    if view.unread:
        parts += [" ", (f" {view.unread} ", "bold reverse $text-accent")]
    return Content.assemble(*parts)


def members_content(view: GroupView) -> Content:
    parts: list[str | tuple[str, str]] = [("members: ", "$text-muted")]
    for i, member in enumerate(view.members):
        if i:
            parts.append(" · ")
        parts += [(one_line(member.name), "bold"), " ",
                  (f"({member.trust})", TRUST_STYLES.get(member.trust, ""))]
    return Content.assemble(*parts)


class GroupMembersBar(Static):
    """Under the title of an open group: every member and their trust state."""


class GroupInfoScreen(ModalScreen[None]):
    """The open group's members with their trust, and its epoch code: equal codes on
    two members' screens mean the same group state (members, keys, epoch)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, view: GroupView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        view = self.view
        with VerticalScroll(id="group-info", classes="dialog"):
            yield Static(Content.assemble(("Group ", "bold"),
                                          (f"#{one_line(view.name)}", "bold $accent"),
                                          f"  epoch {view.epoch}"), classes="dialog-title")
            yield Static(view.code, id="group-code")
            yield Static("Compare this code with another member's screen: the same code "
                         "means you are in the same group, with the same members and keys. "
                         "Check each member's own safety number in your one-to-one "
                         "conversation with them (their key is their identity key).",
                         classes="dialog-text")
            for member in view.members:
                yield Static(Content.assemble(
                    (one_line(member.name), "bold"), "  ",
                    (member.trust, TRUST_STYLES.get(member.trust, ""))),
                    classes="group-member")
            yield Static("Esc close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)


class NewGroupScreen(ModalScreen[tuple[str, list[str]] | None]):
    """Asks for a group name and its members (usernames separated by spaces)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, own_username: str) -> None:
        super().__init__()
        self.own_username = own_username

    def compose(self) -> ComposeResult:
        with Vertical(id="group-dialog", classes="dialog"):
            yield Static("New group", classes="dialog-title")
            yield Input(placeholder="group name", id="group-name")
            yield Input(placeholder="members: usernames separated by spaces",
                        id="group-members")
            yield Static("", id="group-error", classes="dialog-error")
            yield Static("Enter creates · Escape cancels", classes="dialog-hint")

    @on(Input.Submitted, "#group-name")
    def name_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#group-members", Input).focus()

    @on(Input.Submitted, "#group-members")
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.query_one("#group-error", Static)
        name = self.query_one("#group-name", Input).value.strip()
        members = event.value.lower().split()
        if not name:
            error.update("Give the group a name.")
            self.query_one("#group-name", Input).focus()
            return
        try:
            for member in members:
                check_username(member)
        except InvalidUsername as exc:
            error.update(Content(one_line(str(exc))))
            return
        if not members or self.own_username in members:
            error.update("Name the other members (not yourself).")
            return
        self.dismiss((name, members))

    def action_cancel(self) -> None:
        self.dismiss(None)


class GroupUpdate(TextualMessage):
    """A group event from the library, delivered in the app's message queue."""

    def __init__(self, event: GroupEvent) -> None:
        super().__init__()
        self.event = event


class GroupsUI:
    def __init__(self, pane: ChatPane) -> None:
        self.pane = pane
        self.client = pane.client
        self.views: dict[str, GroupView] = {}

    def mount(self) -> None:
        """Lists the groups and listens to the library's group events."""
        self.client.groups.listeners.append(self._on_event)
        for view in self.client.groups.all():
            self._put(view)

    def unmount(self) -> None:
        if self._on_event in self.client.groups.listeners:
            self.client.groups.listeners.remove(self._on_event)

    def _on_event(self, event: GroupEvent) -> None:
        self.pane.post_message(GroupUpdate(event))

    def _put(self, view: GroupView) -> None:
        key = conversation_key(view.group_id)
        self.views[key] = view
        contacts = self.pane.contact_list
        contacts.group_rows[key] = functools.partial(group_row, view)
        contacts.put(Contact(key, b"", unread=view.unread, last_activity=view.last_activity))

    async def apply(self, event: GroupEvent) -> None:
        record = self.client.groups.record(event.group_id)
        if record is None:
            return
        view = self.client.groups.view(record)
        self._put(view)
        key = conversation_key(event.group_id)
        if self.pane.current == key:
            self._show_header(view)
            if event.message is not None:
                line = event.message
                await self.pane.conversation.log_widget.put(as_message(line))

    # -- the open group

    def _members_bar(self) -> GroupMembersBar:
        conversation = self.pane.conversation
        bars = list(conversation.query(GroupMembersBar))
        if bars:
            return bars[0]
        bar = GroupMembersBar("", id="group-members-bar")
        conversation.mount(bar, after="#conversation-title")
        return bar

    def left(self) -> None:
        """A one-to-one conversation opened: the members bar goes."""
        for bar in self.pane.conversation.query(GroupMembersBar):
            bar.display = False

    def _show_header(self, view: GroupView) -> None:
        conversation = self.pane.conversation
        title = Content.assemble(("#", "bold $accent"), (one_line(view.name), "bold"),
                                 ("  group · epoch ", "$text-muted"), str(view.epoch),
                                 ("  Ctrl+T: members and code", "$text-muted"))
        conversation.query_one("#conversation-title", Static).update(title)
        bar = self._members_bar()
        bar.update(members_content(view))
        bar.display = True
        removed = view.status.value == "removed"
        composer = conversation.composer
        composer.disabled = removed
        composer.placeholder = ("You are no longer in this group" if removed else
                                f"Message #{one_line(view.name)} — Enter sends, /add /remove "
                                "/rename /leave /update")

    async def open(self, key: str) -> None:
        pane = self.pane
        pane.current = key
        pane.contact_list.set_current(key)
        group_id = group_id_of(key)
        client = self.client

        def loader(before: int | None, limit: int) -> list[Message]:
            try:
                return [as_message(m) for m in client.groups.history(group_id, limit, before)]
            except ClientError as exc:
                pane.report("read these messages", exc)
                return []

        await pane.conversation.open(key, None, loader, lambda: client.clock())
        view = client.groups.view(client.groups.need(group_id))
        self._put(view)
        self._show_header(view)
        pane.conversation.query_one("#key-banner").display = False
        if not pane.conversation.composer.disabled:
            pane.conversation.composer.focus()

    async def mark_read(self, key: str) -> None:
        group_id = group_id_of(key)
        unread = [as_message(m) for m in self.client.groups.history(group_id, 1000)
                  if m.unread]
        record = self.client.groups.record(group_id)
        if record is None or not (unread or record.unread):
            return
        if not self.pane.conversation.all_seen(unread):
            return
        self.client.groups.mark_read(group_id)

    # -- sending and commands

    async def send(self, key: str, text: str) -> None:
        group_id = group_id_of(key)
        groups = self.client.groups
        if text.startswith("/") and not text.startswith("//"):
            command, _, rest = text[1:].partition(" ")
            args = rest.split()
            if command == "add" and args:
                await groups.add(group_id, [a.lower() for a in args])
            elif command == "remove" and len(args) == 1:
                await groups.remove(group_id, args[0].lower())
            elif command == "rename" and rest.strip():
                await groups.rename(group_id, rest.strip())
            elif command == "leave" and not args:
                await groups.leave(group_id)
            elif command == "update" and not args:
                await groups.self_update(group_id)
            else:
                self.pane.notify("Group commands: /add NAME..., /remove NAME, /rename NEW "
                                 "NAME, /leave, /update (start with // to send a '/').",
                                 severity="warning", markup=False)
            return
        try:
            await groups.send_text(group_id, text[1:] if text.startswith("//") else text)
        except KeyChangeBlocked as exc:  # said about the member, not the group
            raise Refused(f"{one_line(exc.name)}'s identity key has changed: nothing is sent "
                          "into the group until you compare safety numbers and accept it "
                          f"(Ctrl+T in your conversation with {one_line(exc.name)})") from exc

    def info(self) -> None:
        key = self.pane.current
        if not is_group(key):
            return
        assert key is not None
        view = self.client.groups.view(self.client.groups.need(group_id_of(key)))
        self.pane.app.push_screen(GroupInfoScreen(view))

    def new_group(self) -> None:
        def chosen(result: tuple[str, list[str]] | None) -> None:
            if result:
                self.pane.run_worker(self._create(*result), group="send")

        self.pane.app.push_screen(NewGroupScreen(self.client.username), chosen)

    async def _create(self, name: str, members: list[str]) -> None:
        try:
            view = await self.client.groups.create(name, members)
        except ClientError as exc:
            self.pane.notify(f"Group not created: {one_line(str(exc))}", title="Error",
                             severity="error", timeout=10, markup=False)
            return
        self._put(view)
        await self.open(conversation_key(view.group_id))


__all__ = ["GroupInfoScreen", "GroupMembersBar", "GroupUpdate", "GroupsUI", "NewGroupScreen",
           "as_message", "is_group"]
