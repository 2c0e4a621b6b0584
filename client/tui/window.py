"""The window of mounted messages under the message log.

Long conversations stay fast: the window keeps the messages it has loaded as plain
data and mounts widgets only for a window of them (at most `MAX_MOUNTED`). It opens
on the newest `INITIAL` messages; scrolling to the top (or Ctrl+O) mounts the
previous page, fetching it from the store when needed, and unmounts the same number
at the bottom; scrolling back down (or Ctrl+L) walks the window forward again. Every
change to the window goes through one lock, so a burst of events never mounts a
message twice. What the user has seen, and following new messages, is
`client.tui.messagelog.MessageLog`'s job on top of this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from client.records import Message
from client.tui.render import message_content, message_kind

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


class MessageWindow(VerticalScroll):
    """Mounted `MessageItem`s for messages[start:end] of the loaded messages."""

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
        self.following = True
        """Scrolled to the newest message: new ones scroll into view."""
        self._items: dict[int, MessageItem] = {}
        self._lock = asyncio.Lock()
        self._busy = False
        self._adjusting = False

    def compose(self) -> ComposeResult:
        yield Static("", id="older-hint", classes="hint")
        yield Static("", id="newer-hint", classes="hint")

    # -- hooks for the log on top

    def _loaded(self, messages: list[Message]) -> None:
        """Messages were added to the loaded ones."""

    def _changed(self, message: Message) -> None:
        """A loaded message changed."""

    def _settled(self) -> None:
        """A scroll the window made has been laid out."""

    # -- state

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
            self.call_after_refresh(self._settled)

        self.call_after_refresh(run)

    # -- loading

    async def _load(self, loader: HistoryLoader, clock: Callable[[], float]) -> None:
        """(Lock held.) The newest messages of a conversation, mounted."""
        self.loader = loader
        self.clock = clock
        batch = loader(None, self.INITIAL + 1)
        self.store_has_older = len(batch) > self.INITIAL
        self.messages = batch[-self.INITIAL:]
        self._loaded(self.messages)
        await self._mount_latest()

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

    async def _clear(self) -> None:
        """(Lock held.)"""
        self.loader = None
        self.messages = []
        self.start = self.end = 0
        self.store_has_older = False
        await self.remove_children(list(self._items.values()))
        self._items.clear()
        self._update_hints()

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
                    self._loaded(batch)
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

    # -- new messages and changes

    def _update(self, message: Message) -> bool:
        """(Lock held.) Applies a change to a message already loaded; True when
        `message` is not new (a change, loaded or not)."""
        item = self._items.get(message.row_id)
        if item is not None:
            item.set_message(message)
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].row_id == message.row_id:
                self.messages[i] = message
                self._changed(message)
                return True
            if self.messages[i].row_id < message.row_id:
                break
        # older than the newest loaded and not loaded: read from the store later
        return bool(self.messages) and message.row_id < self.messages[-1].row_id

    async def _append(self, message: Message) -> MessageItem | None:
        """(Lock held.) A new message: mounted when the window shows the newest (the
        widget is returned), otherwise kept as data until the window moves."""
        self.messages.append(message)
        self._loaded([message])
        if self.end < len(self.messages) - 1:
            self._update_hints()
            return None
        new = self._make(message)
        await self.mount(new, before="#newer-hint")
        self.end = len(self.messages)
        if self.end - self.start > self.MAX_MOUNTED:
            await self._remove_range(self.start, self.end - self.MAX_MOUNTED)
            self.start = self.end - self.MAX_MOUNTED
        self._update_hints()
        return new

    # -- scrolling

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting or self._busy or self.max_scroll_y <= 0:
            return
        if new_value < old_value and new_value <= 0 and self.more_above:
            self.call_later(self.load_older)
        elif (new_value > old_value and new_value >= self.max_scroll_y
              and self.more_below):
            self.call_later(self.load_newer)
