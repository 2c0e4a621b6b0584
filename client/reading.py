"""What has been read (docs/CLIENT.md, "Delivery states"): marking incoming messages
read and queueing the READ receipt for them, in one store transaction.

Views decide *when* something was read (the chat app: once it has been on screen;
`recv`: once it has been printed); this module only records it and tells the sender.
"""

from __future__ import annotations

from collections.abc import Collection

from client.history import History
from client.outbox import Outbox
from client.records import Direction, Message
from client.store import SessionRepo, Store
from client.trust import TrustBook
from protocol.e2e.content import ReceiptType


class Reading:
    def __init__(self, store: Store, trust: TrustBook, sessions: SessionRepo,
                 history: History, outbox: Outbox) -> None:
        self.store = store
        self.trust = trust
        self.sessions = sessions
        self.history = history
        self.outbox = outbox

    def unread(self) -> list[Message]:
        """Every incoming message not yet marked read, oldest first."""
        out: list[Message] = []
        for contact in self.trust.contacts():
            if contact.unread:
                out += [m for m in self.history.conversation(contact.name,
                                                      max(200, contact.unread * 2))
                        if m.unread]
        return sorted(out, key=lambda m: m.row_id)

    def mark(self, name: str, only: Collection[int] | None = None) -> list[bytes]:
        """Marks `name`'s conversation read (with `only`: those of its messages, by row
        id) and queues a READ receipt for what was unread; returns the message ids the
        receipt names (none for a contact whose key changed: it waits for acceptance)."""
        contact = self.trust.contact(name)
        if contact is None:
            return []
        ids: list[bytes] = []
        with self.store.transaction():
            if only is None:
                candidates = self.history.conversation(name, max(200, contact.unread * 2))
            else:
                found = (self.history.messages.get(row_id) for row_id in only)
                candidates = [m for m in found if m is not None and m.contact == name]
            marked = 0
            for message in candidates:
                if message.unread:
                    message.unread = False
                    marked += 1
                    self.history.update(message)
                    if message.direction is Direction.IN and message.message_id:
                        ids.append(message.message_id)
            contact.unread = 0 if only is None else max(0, contact.unread - marked)
            self.trust.save(contact)
            if ids and not contact.key_changed:
                record = self.sessions.load(name)
                self.outbox.queue_receipt(contact, record, ReceiptType.READ, ids)
                self.sessions.save(name, record)
        return ids
