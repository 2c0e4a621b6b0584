"""The message log: the window of messages (`client.tui.window`) plus what the user
has seen of it and following new messages.

What the user has seen is tracked, not guessed (`client.tui.seen`): only messages
that have been on screen, while the log's screen is the one shown, may be reported
read (`Seen` tells the pane). A conversation opens at its first unread message. The
log follows new messages while it is scrolled to the bottom and stays there when it
is resized; your own sends always bring it to the bottom; scrolled up, it counts
what arrived below ("▼ N new", `NewBelow`)."""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message as TextualMessage

from client.records import Direction, Message
from client.tui.seen import SeenTracker
from client.tui.window import HistoryLoader, MessageItem, MessageWindow


class MessageLog(MessageWindow, can_focus=True):
    class Seen(TextualMessage):
        """Unread messages became visible: the pane may mark them read."""

    class NewBelow(TextualMessage):
        """The number of unread messages below the visible part changed."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tracker = SeenTracker()
        self._new_below = 0

    @property
    def new_below(self) -> int:
        """Unread messages not yet seen below the visible part."""
        return self._new_below

    def _loaded(self, messages: list[Message]) -> None:
        self.tracker.track(messages)

    def _changed(self, message: Message) -> None:
        self.tracker.update(message)

    def _settled(self) -> None:
        self.note_visible()

    # -- what has been seen

    def note_visible(self) -> None:
        """Records which pending messages are on screen now; posts `Seen` when some
        became seen and `NewBelow` when the count of unseen ones below changed."""
        if not self.is_attached or not self.display or self.app.screen is not self.screen:
            return
        top = self.scroll_y
        bottom = top + self.scrollable_content_region.height
        newly = False
        for row_id in list(self.tracker.pending):
            item = self._items.get(row_id)
            if item is not None and item.is_attached:
                region = item.virtual_region
                newly |= self.tracker.observe(row_id, region.y, region.bottom, top, bottom)
        if newly:
            self.post_message(self.Seen())
        below = self._count_below(bottom)
        if below != self._new_below:
            self._new_below = below
            self.post_message(self.NewBelow(below))

    def _count_below(self, bottom: float) -> int:
        """Pending messages below the visible part: not mounted yet (after the
        window), or not yet scrolled to their end."""
        pending = self.tracker.pending
        if not pending:
            return 0
        count = 0
        for index, message in enumerate(self.messages):
            if message.row_id in pending:
                item = self._items.get(message.row_id)
                if item is None:
                    count += index >= self.end
                elif item.virtual_region.bottom > bottom:
                    count += 1
        return count

    # -- opening, closing, jumping

    async def show(self, loader: HistoryLoader, clock: Callable[[], float]) -> None:
        """Shows the newest messages of a conversation, from the first unread one if
        any (so that nothing unread is scrolled past unseen)."""
        async with self._lock:
            self.tracker.reset()
            await self._load(loader, clock)
            first_unread = next((self._items[m.row_id] for m in self.messages[self.start:]
                                 if m.row_id in self.tracker.pending
                                 and m.row_id in self._items), None)
            if first_unread is None:
                self._to_bottom()
            else:
                self._show_from(first_unread)

    async def clear(self) -> None:
        async with self._lock:
            self.tracker.reset()
            await self._clear()
        self.note_visible()

    async def jump_to_latest(self) -> None:
        async with self._lock:
            if self.more_below:
                await self._mount_latest()
        self._to_bottom()

    def _to_bottom(self) -> None:
        self.following = True
        self._after_layout(lambda: self.scroll_end(animate=False, immediate=True))

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
            self.following = target >= self.max_scroll_y
            if self.following:
                self.scroll_end(animate=False, immediate=True)
            else:
                self.scroll_to(y=target, animate=False, immediate=True)

        self._after_layout(scroll)

    # -- new messages

    async def put(self, message: Message) -> None:
        """A new message, or a change (delivery state) of one already loaded."""
        own = message.direction is Direction.OUT
        async with self._lock:
            if self._update(message):
                return
            if own and self.more_below:  # your own send: show the newest, always
                self.messages.append(message)
                await self._mount_latest()
                self._to_bottom()
                return
            new = await self._append(message)
        if new is not None and (own or self.following):
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
        if not (self._adjusting or self._busy):
            self.following = not self.more_below and self._at_bottom()
            self.call_after_refresh(self.note_visible)

    def on_resize(self) -> None:
        """Stays at the bottom when the view changes size (a resized terminal, a
        banner, a taller composer); otherwise keeps its place."""
        if self.following:
            self._to_bottom()
        else:
            self.call_after_refresh(self.note_visible)
