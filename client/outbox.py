"""Sending (docs/CLIENT.md, "Never lose, never desync"): an outgoing message is
encrypted, stored and queued in one transaction, and leaves the outbox only when the
relay answered SENT. Queued envelopes go out in order, several per SEND frame as far
as the relay's limits allow (PROTOCOL.md 16.6: a SEND stores all its envelopes or
none)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from client.connection import RelayConnection
from client.errors import RelayRefused, relay_errors
from client.events import Events
from client.history import History
from client.records import Contact, OutboxItem, State
from client.store import OutboxRepo, Store
from protocol.e2e.content import Receipt, ReceiptType
from protocol.e2e.sealed import SealedContent, seal
from protocol.e2e.session import Session
from protocol.e2e.session_record import SessionRecord
from protocol.e2e.size_classes import max_plaintext_len
from protocol.wire.frames import ErrorCode, Limits

log = logging.getLogger("blindrelay.client")

RECEIPT_IDS = 500
"""Most message ids in one receipt (the content allows 1000)."""

DEFERRING = (ErrorCode.QUEUE_FULL, ErrorCode.RATE_LIMITED, ErrorCode.SENDER_BUDGET,
             ErrorCode.STORAGE_FULL, ErrorCode.INTERNAL_ERROR)
"""Refusals that say 'later': the outbox stops and tries again at the next flush (a
budget or a full disk refills; the message is not failed for it)."""

FRAME_OVERHEAD = 6 + 2  # frame header, envelope count


class Outbox:
    def __init__(self, store: Store, repo: OutboxRepo, history: History, events: Events,
                 username: Callable[[], str], max_envelope: Callable[[], int]) -> None:
        self.store = store
        self.max_envelope = max_envelope
        self.repo = repo
        self.history = history
        self.events = events
        self.username = username
        self._lock = asyncio.Lock()

    def seal(self, contact: Contact, session: Session, plaintext: bytes) -> bytes:
        """Encrypts in `session` (the caller saves its record in the same transaction)
        and seals the result to the contact's identity key (PROTOCOL.md 10)."""
        kind, message = session.encrypt(plaintext)
        return seal(contact.identity, SealedContent(self.username(), kind, message))

    def queue(self, recipient: str, envelope: bytes, message_row: int | None = None) -> None:
        self.repo.add(OutboxItem(recipient, envelope, message_row))

    def queue_receipt(self, contact: Contact, record: SessionRecord,
                      receipt_type: ReceiptType, ids: list[bytes]) -> None:
        """Receipts go in the current session, never to a contact whose key changed."""
        session = record.current
        if session is None or contact.key_changed:
            return
        # receipt = version, kind, type, u16 count, 16 bytes per id (PROTOCOL.md 9.1),
        # split so each fits the relay's announced max_envelope (10.1)
        per = max(1, min(RECEIPT_IDS, (max_plaintext_len(self.max_envelope()) - 5) // 16))
        for start in range(0, len(ids), per):
            receipt = Receipt(receipt_type, tuple(ids[start:start + per]))
            self.queue(contact.name, self.seal(contact, session, receipt.encode()))

    async def flush(self, conn: Callable[[], RelayConnection]) -> int:
        """Sends the outbox in order; returns how many envelopes the relay stored.
        `conn` gives the live connection (raises NotConnected if there is none)."""
        sent = 0
        async with self._lock:
            items = self.repo.items()
            alone = 0  # how many of the next items go one per SEND
            while items:
                connection = conn()
                count = 1 if alone else _batch_size(items, connection.limits)
                batch, rest = items[:count], items[count:]
                try:
                    with relay_errors():
                        await connection.send([(i.recipient, i.envelope) for _, i in batch])
                except RelayRefused as exc:
                    if len(batch) > 1:
                        # all or none: each envelope gets the answer it would get alone
                        alone = len(batch)
                        continue
                    if exc.code in DEFERRING:
                        log.info("relay deferred a send: %s", exc)
                        break
                    self._fail(*batch[0], exc.message)
                    items, alone = rest, max(0, alone - 1)
                    continue
                with self.store.transaction():
                    for row_id, item in batch:
                        self.repo.delete(row_id)
                        self.history.advance(item.message_row, State.SENT)
                self.events.flush()
                sent += len(batch)
                items, alone = rest, max(0, alone - len(batch))
        return sent

    def _fail(self, row_id: int, item: OutboxItem, reason: str) -> None:
        with self.store.transaction():
            self.repo.delete(row_id)
            self.history.fail(item.message_row, reason)
        self.events.flush()


def _batch_size(items: list[tuple[int, OutboxItem]], limits: Limits) -> int:
    """How many of the first items fit one SEND: at most max_recipients envelopes and
    max_frame bytes (at least one, whose size the relay judges)."""
    size, count = FRAME_OVERHEAD, 0
    for _, item in items[:max(1, limits.max_recipients)]:
        size += 1 + len(item.recipient.encode("ascii")) + 4 + len(item.envelope)
        if count and size > limits.max_frame:
            break
        count += 1
    return max(1, count)
