"""The chat history: messages and notices per conversation, and the delivery state of
outgoing messages (sending < sent < delivered < read). Every change is announced to
views as a MessageEvent once its transaction commits."""

from __future__ import annotations

from collections.abc import Callable

from client.events import Events, MessageEvent
from client.records import STATE_ORDER, Direction, Message, State
from client.store import MessageRepo

UNKNOWN_SENDER = "?unknown"
"""The conversation of envelopes whose sender could not be told (never a username)."""

UNKNOWN_EXPIRY = 7 * 24 * 3600
"""Placeholders in the unknown-sender conversation are deleted this long (seconds)
after the last message they stand for arrived: they say only that something failed,
and anyone can cause them (issue 9 item 9)."""

UNDECRYPTABLE_PREFIX = "could not be decrypted: "


class History:
    def __init__(self, messages: MessageRepo, events: Events, clock: Callable[[], float]
                 ) -> None:
        self.messages = messages
        self.events = events
        self.clock = clock

    def conversation(self, name: str, limit: int = 200, before: int | None = None
                     ) -> list[Message]:
        return self.messages.conversation(name, limit, before)

    def add(self, message: Message) -> Message:
        message.stored_at = message.stored_at or self.clock()
        self.messages.add(message)
        self.events.defer(MessageEvent(message))
        return message

    def update(self, message: Message) -> None:
        self.messages.update(message)
        self.events.defer(MessageEvent(message))

    def notice(self, name: str, text: str) -> Message:
        return self.add(Message(name, Direction.NOTICE, text, State.NOTICE))

    def unattributed(self, reason: str) -> tuple[Message, bool]:
        """A placeholder in the unknown-sender conversation for a message that did not
        authenticate (its claimed sender is only a claim). Consecutive unread
        placeholders collapse into one counted row, so a flood is one line. Returns
        the row and whether it is new (the caller expires old rows first)."""
        reason = reason.removeprefix(UNDECRYPTABLE_PREFIX)
        last = self.messages.conversation(UNKNOWN_SENDER, 1)
        if last and last[0].state is State.UNDECRYPTABLE and last[0].unread:
            row = last[0]
            row.count += 1
            row.error = (f"could not be decrypted ({row.count} messages; the latest: "
                         f"{reason})")
            row.stored_at = self.clock()
            self.update(row)
            return row, False
        return self.add(Message(UNKNOWN_SENDER, Direction.IN, "", State.UNDECRYPTABLE,
                                error=UNDECRYPTABLE_PREFIX + reason, unread=True)), True

    def expire_unknown(self) -> int:
        """Deletes the unknown-sender conversation's rows older than UNKNOWN_EXPIRY;
        returns how many of them were unread."""
        cutoff, unread = self.clock() - UNKNOWN_EXPIRY, 0
        for message in self.messages.conversation(UNKNOWN_SENDER, 1000):
            if message.stored_at < cutoff:
                self.messages.delete(message.row_id)
                unread += message.unread
        return unread

    def note_gap(self, name: str, gap: int) -> None:
        """A message whose counter skips ahead stores keys for the ones in between:
        those have not arrived (yet), and the user is told so."""
        if gap <= 0:
            return
        text = (f"{gap} earlier message{'s' if gap > 1 else ''} from {name} "
                f"{'have' if gap > 1 else 'has'} not arrived (the message counters show a "
                "gap).")
        if self._undecryptable_since(name):
            # A damaged envelope hides its sender (sealed sender), so its placeholder
            # stays in the unknown-sender conversation; but a drop and a damaged
            # envelope are different stories, and the user is told which this may be.
            text += (" An envelope that could not be decrypted arrived since the last "
                     f"message from {name} (under 'unknown sender'): it may be the "
                     "missing one, damaged on the way.")
        self.notice(name, text)

    def _undecryptable_since(self, name: str) -> bool:
        """Whether a placeholder in the unknown-sender conversation was filed after the
        last message received from `name`."""
        since = next((m.stored_at for m in self.messages.conversation(name, 50)[::-1]
                      if m.direction is Direction.IN), 0.0)
        return any(m.state is State.UNDECRYPTABLE and m.stored_at >= since
                   for m in self.messages.conversation(UNKNOWN_SENDER, 20))

    def advance(self, row_id: int | None, state: State) -> Message | None:
        """Moves an outgoing message forward (sending < sent < delivered < read)."""
        if row_id is None:
            return None
        message = self.messages.get(row_id)
        if message is None or STATE_ORDER.get(message.state, -1) >= STATE_ORDER[state]:
            return None
        message.state = state
        self.update(message)
        return message

    def fail(self, row_id: int | None, reason: str) -> None:
        message = None if row_id is None else self.messages.get(row_id)
        if message is not None:
            message.state = State.FAILED
            message.error = reason
            self.update(message)

    def receipt(self, name: str, message_ids: tuple[bytes, ...], state: State) -> None:
        """A DELIVERED or READ receipt from `name` for messages we sent them."""
        for message_id in message_ids:
            for found in self.messages.by_message_id(message_id):
                if found.direction is Direction.OUT and found.contact == name:
                    self.advance(found.row_id, state)
