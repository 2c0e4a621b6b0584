"""The open conversation: title, key-change banner, the message log and the composer.

Long conversations stay fast: the log keeps the messages it has loaded as plain data
and mounts widgets only for a window of them (at most `MessageLog.MAX_MOUNTED`). It
opens on the newest `INITIAL` messages; scrolling to the top (or Ctrl+O) mounts the
previous page, fetching it from the store when needed, and unmounts the same number
at the bottom; scrolling back down (or Ctrl+L) walks the window forward again.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from client.core import UNKNOWN_SENDER
from client.models import Contact, Direction, Message
from client.tui.composer import Composer
from client.tui.render import display_name, message_content, message_kind, trust_text

HistoryLoader = Callable[[int | None, int], list[Message]]
"""(before row id or None for the newest, limit) -> messages, oldest first."""


class MessageItem(Static):
    """One message, notice or undecryptable placeholder."""

    def __init__(self, message: Message, now: float) -> None:
        super().__init__(message_content(message, now), classes=message_kind(message))
        self.message = message
        self.now = now

    def set_message(self, message: Message) -> None:
        self.message = message
        self.set_classes(message_kind(message))
        self.update(message_content(message, self.now))


class MessageLog(VerticalScroll, can_focus=True):
    """A window of mounted `MessageItem`s over the loaded part of a conversation."""

    INITIAL = 100
    PAGE = 50
    MAX_MOUNTED = 200

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loader: HistoryLoader | None = None
        self.clock: Callable[[], float] = lambda: 0.0
        self.messages: list[Message] = []
        """Loaded messages, oldest first: the newest part of the conversation."""
        self.start = 0
        self.end = 0
        """Mounted window: widgets exist for messages[start:end]."""
        self.store_has_older = False
        self._items: dict[int, MessageItem] = {}
        self._busy = False
        self._adjusting = False

    def compose(self) -> ComposeResult:
        yield Static("", id="older-hint", classes="hint")
        yield Static("", id="newer-hint", classes="hint")

    @property
    def mounted_count(self) -> int:
        return len(self._items)

    @property
    def more_above(self) -> bool:
        return self.start > 0 or self.store_has_older

    @property
    def more_below(self) -> bool:
        return self.end < len(self.messages)

    def _update_hints(self) -> None:
        older = self.query_one("#older-hint", Static)
        newer = self.query_one("#newer-hint", Static)
        if self.more_above:
            older.update("▲ older messages: scroll up or press Ctrl+O")
        elif self.messages:
            older.update("── start of the conversation ──")
        else:
            older.update("")
        older.display = bool(self.messages) or self.more_above
        newer.update("▼ newer messages: scroll down or press Ctrl+L")
        newer.display = self.more_below

    def _make(self, message: Message) -> MessageItem:
        item = MessageItem(message, self.clock())
        self._items[message.row_id] = item
        return item

    async def _remove_range(self, lo: int, hi: int) -> None:
        doomed = [self._items.pop(m.row_id) for m in self.messages[lo:hi]
                  if m.row_id in self._items]
        if doomed:
            await self.remove_children(doomed)

    def _at_bottom(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1

    def _hold(self, anchor: Widget) -> None:
        """Keeps `anchor` where it is on screen across the next layout change."""
        offset = anchor.virtual_region.y - self.scroll_y
        self._after_layout(lambda: self.scroll_to(y=anchor.virtual_region.y - offset,
                                                  animate=False, immediate=True))

    def _after_layout(self, scroll: Callable[[], object]) -> None:
        """Scrolls once the next layout is done, without triggering page loads."""
        self._adjusting = True

        def run() -> None:
            try:
                scroll()
            finally:
                self._adjusting = False

        self.call_after_refresh(run)

    async def show(self, loader: HistoryLoader, clock: Callable[[], float]) -> None:
        """Shows the newest messages of a conversation."""
        self.loader = loader
        self.clock = clock
        batch = loader(None, self.INITIAL + 1)
        self.store_has_older = len(batch) > self.INITIAL
        self.messages = batch[-self.INITIAL:]
        await self._mount_latest()

    async def _mount_latest(self) -> None:
        self._busy = True
        try:
            await self.remove_children(list(self._items.values()))
            self._items.clear()
            self.start = self.end = max(0, len(self.messages) - self.INITIAL)
            while self.end < len(self.messages):  # `put` may append while we mount
                new_end = len(self.messages)
                items = [self._make(m) for m in self.messages[self.end:new_end]]
                await self.mount_all(items, before="#newer-hint")
                self.end = new_end
        finally:
            self._busy = False
        self._update_hints()
        self._after_layout(lambda: self.scroll_end(animate=False, immediate=True))

    async def clear(self) -> None:
        self.loader = None
        self.messages = []
        self.start = self.end = 0
        self.store_has_older = False
        await self.remove_children(list(self._items.values()))
        self._items.clear()
        self._update_hints()

    async def load_older(self, keep_position: bool = True) -> bool:
        """Mounts the previous page above the window; False when there is none. With
        `keep_position` the messages on screen stay put (the user is scrolling up);
        otherwise the view moves to the top to show the page."""
        if self._busy or not self.more_above or self.loader is None:
            return False
        self._busy = True
        try:
            if self.start < self.PAGE and self.store_has_older:
                before = self.messages[0].row_id if self.messages else None
                batch = self.loader(before, self.PAGE + 1)
                self.store_has_older = len(batch) > self.PAGE
                batch = batch[-self.PAGE:]
                self.messages[:0] = batch
                self.start += len(batch)
                self.end += len(batch)
            new_start = max(0, self.start - self.PAGE)
            first = self._items.get(self.messages[self.start].row_id) \
                if self.start < self.end else None
            items = [self._make(m) for m in self.messages[new_start:self.start]]
            if first is not None and keep_position:
                self._hold(first)
            elif not keep_position:
                self._after_layout(lambda: self.scroll_home(animate=False, immediate=True))
            if items:
                await self.mount_all(items, after="#older-hint")
            self.start = new_start
            if self.end - self.start > self.MAX_MOUNTED:
                await self._remove_range(self.start + self.MAX_MOUNTED, self.end)
                self.end = self.start + self.MAX_MOUNTED
            self._update_hints()
            return True
        finally:
            self._busy = False

    async def load_newer(self) -> bool:
        """Mounts the next page below the window; False when it shows the newest."""
        if self._busy or not self.more_below:
            return False
        self._busy = True
        try:
            new_end = min(len(self.messages), self.end + self.PAGE)
            last = self._items.get(self.messages[self.end - 1].row_id) \
                if self.start < self.end else None
            items = [self._make(m) for m in self.messages[self.end:new_end]]
            if last is not None:
                self._hold(last)
            await self.mount_all(items, before="#newer-hint")
            self.end = new_end
            if self.end - self.start > self.MAX_MOUNTED:
                await self._remove_range(self.start, self.end - self.MAX_MOUNTED)
                self.start = self.end - self.MAX_MOUNTED
            self._update_hints()
            return True
        finally:
            self._busy = False

    async def jump_to_latest(self) -> None:
        if self.more_below:
            await self._mount_latest()
        else:
            self.scroll_end(animate=False)

    async def put(self, message: Message) -> None:
        """A new message, or a change (delivery state) of one already loaded."""
        item = self._items.get(message.row_id)
        if item is not None:
            item.set_message(message)
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].row_id == message.row_id:
                self.messages[i] = message
                return
            if self.messages[i].row_id < message.row_id:
                break
        if self.messages and message.row_id < self.messages[-1].row_id:
            return  # an update to a message not loaded: it is read from the store later
        follow = self._at_bottom()
        at_latest = not self.more_below
        self.messages.append(message)
        if not at_latest or self._busy:  # kept as data; mounted when the window moves
            self._update_hints()
            return
        await self.mount(self._make(message), before="#newer-hint")
        self.end = len(self.messages)
        if self.end - self.start > self.MAX_MOUNTED:
            await self._remove_range(self.start, self.end - self.MAX_MOUNTED)
            self.start = self.end - self.MAX_MOUNTED
        self._update_hints()
        if follow:
            self._after_layout(lambda: self.scroll_end(animate=False, immediate=True))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting or self._busy or self.max_scroll_y <= 0:
            return
        if new_value < old_value and new_value <= 0 and self.more_above:
            self.call_later(self.load_older)
        elif (new_value > old_value and new_value >= self.max_scroll_y
              and self.more_below):
            self.call_later(self.load_newer)


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

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(
            ("No conversation open.\n\n", "bold"),
            "Pick one on the left (↑/↓, Enter) or press Ctrl+N to start one by username.\n"
            "Press F1 for every key."), id="welcome")
        yield Static("", id="conversation-title")
        yield KeyChangeBanner("", id="key-banner")
        yield MessageLog(id="log")
        yield Composer(id="composer")

    def on_mount(self) -> None:
        self._set_open(False)

    def _set_open(self, is_open: bool) -> None:
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
        self.name_open = name
        self._set_open(True)
        self.set_contact(contact)
        if changed:
            self.composer.clear()
        await self.log_widget.show(loader, clock)

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

    def wants_read(self, message: Message) -> bool:
        """An unread incoming message landed in the open conversation."""
        return (message.contact == self.name_open and message.unread
                and message.direction is Direction.IN)
