"""The open conversation: title, key-change banner, the message log and the composer.

Long conversations stay fast: the log keeps the messages it has loaded as plain data
and mounts widgets only for a window of them (at most `MessageLog.MAX_MOUNTED`). It
opens on the newest `INITIAL` messages; scrolling to the top (or Ctrl+O) mounts the
previous page, fetching it from the store when needed, and unmounts the same number
at the bottom; scrolling back down (or Ctrl+L) walks the window forward again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message as TextualMessage
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
    """A window of mounted `MessageItem`s over the loaded part of a conversation.

    What the user has seen is tracked, not guessed: a message counts as seen once its
    first and its last line have each been inside the visible part of the log (while
    the log's screen is the one shown), and only seen messages may be reported read
    (`Seen` tells the pane). The log follows new messages while it is scrolled to the
    bottom, and stays there when it is resized; your own sends always bring it to the
    bottom; scrolled up, it counts what arrived below ("▼ N new"). All changes to the
    window go through one lock, so a burst of events never mounts a message twice."""

    INITIAL = 100
    PAGE = 50
    MAX_MOUNTED = 200

    class Seen(TextualMessage):
        """Unread messages became visible: the pane may mark them read."""

    class NewBelow(TextualMessage):
        """The number of unread messages below the visible part changed."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

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
        self.following = True
        """Scrolled to the newest message: new ones scroll into view."""
        self.seen: set[int] = set()
        """Row ids of the messages that have been entirely on screen."""
        self.pending: set[int] = set()
        """Row ids of loaded unread messages not yet seen."""
        self._top_seen: set[int] = set()
        self._bottom_seen: set[int] = set()
        self._items: dict[int, MessageItem] = {}
        self._lock = asyncio.Lock()
        self._busy = False
        self._adjusting = False
        self._new_below = 0

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

    @property
    def new_below(self) -> int:
        """Unread messages not yet seen (shown as "▼ N new" while scrolled up)."""
        return self._new_below

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
        """Scrolls once the next layout is done, without triggering page loads; then
        notes what became visible."""
        self._adjusting = True

        def run() -> None:
            try:
                scroll()
            finally:
                self._adjusting = False
            self.call_after_refresh(self.note_visible)

        self.call_after_refresh(run)

    def _to_bottom(self) -> None:
        self.following = True
        self._after_layout(lambda: self.scroll_end(animate=False, immediate=True))

    # -- what has been seen

    def _track(self, messages: list[Message]) -> None:
        for message in messages:
            if message.unread and message.row_id not in self.seen:
                self.pending.add(message.row_id)

    def note_visible(self) -> None:
        """Records which pending messages are on screen now; posts `Seen` when some
        became seen and `NewBelow` when the count of unseen ones changed."""
        if not self.is_attached or not self.display or self.app.screen is not self.screen:
            return
        top = self.scroll_y
        bottom = top + self.scrollable_content_region.height
        newly = False
        for row_id in list(self.pending):
            item = self._items.get(row_id)
            if item is None or not item.is_attached:
                continue
            region = item.virtual_region
            if region.height == 0:
                continue  # not laid out yet
            if top <= region.y < bottom:
                self._top_seen.add(row_id)
            if top < region.bottom <= bottom:
                self._bottom_seen.add(row_id)
            if row_id in self._top_seen and row_id in self._bottom_seen:
                self.pending.discard(row_id)
                self.seen.add(row_id)
                newly = True
        if newly:
            self.post_message(self.Seen())
        below = self._count_below(bottom)
        if below != self._new_below:
            self._new_below = below
            self.post_message(self.NewBelow(below))

    def _count_below(self, bottom: float) -> int:
        """Pending messages below the visible part: not mounted yet (after the
        window), or not yet scrolled to their end."""
        if not self.pending:
            return 0
        count = 0
        for index, message in enumerate(self.messages):
            if message.row_id in self.pending:
                item = self._items.get(message.row_id)
                if item is None:
                    count += index >= self.end
                elif item.virtual_region.bottom > bottom:
                    count += 1
        return count

    # -- opening and closing

    async def show(self, loader: HistoryLoader, clock: Callable[[], float]) -> None:
        """Shows the newest messages of a conversation, from the first unread one if
        any (so that nothing unread is scrolled past unseen)."""
        async with self._lock:
            self.loader = loader
            self.clock = clock
            self.seen.clear()
            self.pending.clear()
            self._top_seen.clear()
            self._bottom_seen.clear()
            batch = loader(None, self.INITIAL + 1)
            self.store_has_older = len(batch) > self.INITIAL
            self.messages = batch[-self.INITIAL:]
            self._track(self.messages)
            await self._mount_latest()
            first_unread = next((self._items[m.row_id] for m in self.messages[self.start:]
                                 if m.row_id in self.pending and m.row_id in self._items),
                                None)
            if first_unread is None:
                self._to_bottom()
            else:
                self._show_from(first_unread)

    def _show_from(self, item: MessageItem) -> None:
        """Scrolls so that `item` is near the top (one line of context above it);
        follows only if that is the bottom anyway."""

        self.following = False
        tries = 0

        def scroll() -> None:
            nonlocal tries
            if (not self.scrollable_content_region.height or not item.virtual_region.height) \
                    and tries < 10:  # just shown: not laid out yet
                tries += 1
                self._after_layout(scroll)
                return
            target = max(0, item.virtual_region.y - 1)
            if target >= self.max_scroll_y:
                self.following = True
                self.scroll_end(animate=False, immediate=True)
            else:
                self.following = False
                self.scroll_to(y=target, animate=False, immediate=True)

        self._after_layout(scroll)

    async def _mount_latest(self) -> None:
        """(Lock held.) Mounts the newest messages, replacing the window."""
        self._busy = True
        try:
            await self.remove_children(list(self._items.values()))
            self._items.clear()
            self.start = self.end = max(0, len(self.messages) - self.INITIAL)
            items = [self._make(m) for m in self.messages[self.end:]]
            await self.mount_all(items, before="#newer-hint")
            self.end = len(self.messages)
        finally:
            self._busy = False
        self._update_hints()

    async def clear(self) -> None:
        async with self._lock:
            self.loader = None
            self.messages = []
            self.start = self.end = 0
            self.store_has_older = False
            self.seen.clear()
            self.pending.clear()
            await self.remove_children(list(self._items.values()))
            self._items.clear()
            self._update_hints()
        self.note_visible()

    # -- moving the window

    async def load_older(self, keep_position: bool = True) -> bool:
        """Mounts the previous page above the window; False when there is none. With
        `keep_position` the messages on screen stay put (the user is scrolling up);
        otherwise the view moves to the top to show the page."""
        if self._busy or not self.more_above or self.loader is None:
            return False
        async with self._lock:
            if not self.more_above or self.loader is None:
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
                    self._track(batch)
                new_start = max(0, self.start - self.PAGE)
                first = self._items.get(self.messages[self.start].row_id) \
                    if self.start < self.end else None
                items = [self._make(m) for m in self.messages[new_start:self.start]]
                if first is not None and keep_position:
                    self._hold(first)
                elif not keep_position:
                    self.following = False
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
        async with self._lock:
            if not self.more_below:
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
        async with self._lock:
            if self.more_below:
                await self._mount_latest()
        self._to_bottom()

    # -- new messages and changes

    async def put(self, message: Message) -> None:
        """A new message, or a change (delivery state) of one already loaded."""
        async with self._lock:
            await self._put(message)

    async def _put(self, message: Message) -> None:
        item = self._items.get(message.row_id)
        if item is not None:
            item.set_message(message)
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].row_id == message.row_id:
                self.messages[i] = message
                if not message.unread:
                    self.pending.discard(message.row_id)
                return
            if self.messages[i].row_id < message.row_id:
                break
        if self.messages and message.row_id < self.messages[-1].row_id:
            return  # an update to a message not loaded: it is read from the store later
        own = message.direction is Direction.OUT
        if own and self.more_below:  # your own send: show the newest, always
            self.messages.append(message)
            await self._mount_latest()
            self._to_bottom()
            return
        self.messages.append(message)
        self._track([message])
        if self.end < len(self.messages) - 1:
            self._update_hints()  # the window is further up: kept as data until it moves
            self.note_visible()
            return
        new = self._make(message)
        await self.mount(new, before="#newer-hint")
        self.end = len(self.messages)
        if self.end - self.start > self.MAX_MOUNTED:
            await self._remove_range(self.start, self.end - self.MAX_MOUNTED)
            self.start = self.end - self.MAX_MOUNTED
        self._update_hints()
        if own or self.following:
            self._follow(new, own)
        else:
            self.call_after_refresh(self.note_visible)

    def _follow(self, item: MessageItem, own: bool) -> None:
        """Brings a new message into view: to the bottom, except that the start of
        someone else's message taller than the view is shown first."""

        def scroll() -> None:
            if not own and item.virtual_region.height > self.scrollable_content_region.height:
                self.following = False
                self.scroll_to(y=item.virtual_region.y, animate=False, immediate=True)
            else:
                self.following = True
                self.scroll_end(animate=False, immediate=True)

        self._after_layout(scroll)

    # -- scrolling and resizing

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting or self._busy:
            return
        self.following = not self.more_below and self._at_bottom()
        self.call_after_refresh(self.note_visible)
        if self.max_scroll_y <= 0:
            return
        if new_value < old_value and new_value <= 0 and self.more_above:
            self.call_later(self.load_older)
        elif (new_value > old_value and new_value >= self.max_scroll_y
              and self.more_below):
            self.call_later(self.load_newer)

    def on_resize(self) -> None:
        """Stays at the bottom when the view changes size (a resized terminal, a
        banner, a taller composer); otherwise keeps its place."""
        if self.following:
            self._to_bottom()
        else:
            self.call_after_refresh(self.note_visible)


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
        seen = self.log_widget.seen
        return all(m.row_id in seen for m in unread)
