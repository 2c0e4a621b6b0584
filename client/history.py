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

    def note_gap(self, name: str, gap: int) -> None:
        """A message whose counter skips ahead stores keys for the ones in between:
        those have not arrived (yet), and the user is told so."""
        if gap > 0:
            self.notice(name, f"{gap} earlier message{'s' if gap > 1 else ''} from {name} "
                        f"{'have' if gap > 1 else 'has'} not arrived (the message counters "
                        "show a gap).")

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
