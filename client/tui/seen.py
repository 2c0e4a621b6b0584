"""What the user has seen of a conversation: the rule behind read receipts.

A message counts as seen once its first and its last line have each been inside the
visible part of the message log (not necessarily at the same time: a message taller
than the view is seen once scrolled through). Only seen messages may be reported
read (docs/CLIENT.md, "What the screen shows"). Pure bookkeeping over row ids and
line ranges, so the rule is testable without a screen."""

from __future__ import annotations

from collections.abc import Iterable

from client.records import Message


class SeenTracker:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        """Row ids of the messages that have been entirely on screen."""
        self.pending: set[int] = set()
        """Row ids of loaded unread messages not yet seen."""
        self._top: set[int] = set()
        self._bottom: set[int] = set()

    def reset(self) -> None:
        self.seen.clear()
        self.pending.clear()
        self._top.clear()
        self._bottom.clear()

    def track(self, messages: Iterable[Message]) -> None:
        """Loaded messages: the unread ones wait to be seen."""
        for message in messages:
            if message.unread and message.row_id not in self.seen:
                self.pending.add(message.row_id)

    def update(self, message: Message) -> None:
        """A message changed (marked read elsewhere: nothing left to see)."""
        if not message.unread:
            self.pending.discard(message.row_id)

    def observe(self, row_id: int, first: float, end: float, top: float,
                bottom: float) -> bool:
        """The message occupies lines [first, end) and lines [top, bottom) are
        visible. True when this makes it seen."""
        if row_id not in self.pending or end <= first:
            return False
        if top <= first < bottom:
            self._top.add(row_id)
        if top < end <= bottom:
            self._bottom.add(row_id)
        if row_id in self._top and row_id in self._bottom:
            self.pending.discard(row_id)
            self.seen.add(row_id)
            return True
        return False
