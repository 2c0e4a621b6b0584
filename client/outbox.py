"""Sending (docs/CLIENT.md, "Never lose, never desync"): an outgoing message is
encrypted, stored and queued in one transaction, and leaves the outbox only when the
relay answered SENT. Queued envelopes go out in order, several per SEND frame as far
as the relay's limits allow (PROTOCOL.md 16.6: a SEND stores all its envelopes or
none). They are sealed (PROTOCOL.md 10) when they leave, not when queued, with the
sender certificate current then (client/certificates.py): a message queued offline
for days still carries a valid one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from client.connection import RelayConnection
from client.errors import RelayRefused, relay_errors
from client.events import Events
from client.history import History
from client.records import Contact, Direction, Message, OutboxItem, State
from client.store import OutboxRepo, Store
from protocol.e2e.content import DecryptionError, Receipt, ReceiptType, Text, with_checkpoint
from protocol.e2e.errors import MessageTooLarge
from protocol.e2e.sealed import MessageKind, SealedContent, seal
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

RESENT = "sent again: the recipient could not decrypt the first copy"
WAITING = ("not delivered: the recipient's identity key has changed; it is sent again "
           "when you accept the new key")
"""Marks on outgoing messages a decryption error touched (PROTOCOL.md 9.2)."""


class Outbox:
    def __init__(self, store: Store, repo: OutboxRepo, history: History, events: Events,
                 username: Callable[[], str], max_envelope: Callable[[], int],
                 head: Callable[[], bytes | None] = lambda: None,
                 certificate: Callable[[], bytes | None] = lambda: None) -> None:
        self.head = head
        self.certificate = certificate
        """Our cached sender certificate, or None (none valid): never fetched here."""
        """Our newest verified directory head, carried in every text (PROTOCOL.md 19.8)."""
        self.store = store
        self.max_envelope = max_envelope
        self.repo = repo
        self.history = history
        self.events = events
        self.username = username
        self._lock = asyncio.Lock()

    def text(self, message_id: bytes, sent_at_ms: int, text: str) -> bytes:
        """A TEXT's content, wrapped with our newest directory head when we have one, so
        the receiver can check that the relay showed us both one directory (19.8)."""
        content = Text(message_id, sent_at_ms, text).encode()
        head = self.head()
        return content if head is None else with_checkpoint(content, head)

    def encrypt(self, contact: Contact, session: Session, plaintext: bytes,
                message_row: int | None = None) -> OutboxItem:
        """Encrypts in `session` (the caller saves its record in the same transaction);
        the item is sealed to the contact's identity key when it leaves (`_seal`)."""
        kind, message = session.encrypt(plaintext)
        return OutboxItem(contact.name, message_row=message_row, identity=contact.identity,
                          kind=int(kind), message=message)

    def queue(self, item: OutboxItem) -> None:
        self.repo.add(item)

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
            self.queue(self.encrypt(contact, session, receipt.encode()))

    def queue_content(self, contact: Contact, record: SessionRecord, plaintext: bytes) -> bool:
        """Queues one content in the current session (never to a changed key)."""
        if record.current is None or contact.key_changed:
            return False
        self.queue(self.encrypt(contact, record.current, plaintext))
        return True

    # -- decryption errors (PROTOCOL.md 9.2)

    def peer_failed(self, contact: Contact, record: SessionRecord, report: DecryptionError
                    ) -> None:
        """The contact could not decrypt a message from us. Every message to them the
        relay stored but they never confirmed (still "sent") is sent again, once, in
        the current session, which is the one they can read: a session they just set
        up to send this report, or the one they still use. A message sent again and
        still not decrypted fails for good. If their identity key changed (the report
        came in a session with the new key), the messages wait for the user to accept
        it (`resend_waiting`)."""
        name = contact.name
        unconfirmed = [m for m in self.history.conversation(name, 500)
                       if m.direction is Direction.OUT and m.state is State.SENT]
        if contact.key_changed:
            for message in unconfirmed:
                self.history.fail(message.row_id, WAITING)
            self.history.notice(name, f"{name} could not decrypt {_count(unconfirmed)} you "
                                "sent, and their identity key has changed: accept the new "
                                "key to send them again.")
            return
        again = 0
        for message in unconfirmed:
            if message.error == RESENT:
                self.history.fail(message.row_id, f"{name} could not decrypt it, twice")
            elif self._resend(contact, record, message):
                again += 1
        self.history.notice(name, f"{name} could not decrypt a message you sent"
                            + (f": {_count_again(again)} they had not confirmed sent again."
                               if again else " (nothing unconfirmed was left to send again)."))

    def resend_waiting(self, contact: Contact, record: SessionRecord) -> int:
        """After the user accepted the contact's new key: sends the messages that
        waited for it, in the (new) current session."""
        waiting = [m for m in self.history.conversation(contact.name, 500)
                   if m.direction is Direction.OUT and m.state is State.FAILED
                   and m.error == WAITING]
        return sum(self._resend(contact, record, m) for m in waiting)

    def _resend(self, contact: Contact, record: SessionRecord, message: Message) -> bool:
        plaintext = self.text(message.message_id, message.sent_at_ms, message.text)
        if record.current is None or contact.key_changed:
            return False
        self.queue(self.encrypt(contact, record.current, plaintext, message.row_id))
        message.state = State.SENDING
        message.error = RESENT
        self.history.update(message)
        return True

    async def flush(self, conn: Callable[[], RelayConnection]) -> int:
        """Sends the outbox in order; returns how many envelopes the relay stored.
        `conn` gives the live connection (raises NotConnected if there is none)."""
        sent = 0
        async with self._lock:
            items = self._seal(self.repo.items())
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

    def _seal(self, items: list[tuple[int, OutboxItem]]) -> list[tuple[int, OutboxItem]]:
        """The queued items, in order, each with its envelope: sealed now, with the
        certificate cached now, unless an older version sealed it already. Stops before
        the first item that cannot be sealed for want of a valid certificate (it and
        what follows wait for the next flush); an item too large for the relay's
        announced limit fails."""
        out: list[tuple[int, OutboxItem]] = []
        for row_id, item in items:
            if item.sealed:
                out.append((row_id, item))
                continue
            certificate = self.certificate()
            if certificate is None:
                log.info("no valid sender certificate: %d envelope(s) wait",
                         len(items) - len(out))
                break
            try:
                envelope = seal(item.identity, SealedContent(
                    certificate, MessageKind(item.kind), item.message), self.max_envelope())
            except MessageTooLarge as exc:
                self._fail(row_id, item, f"message too long: {exc}")
                continue
            out.append((row_id, replace(item, envelope=envelope)))
        return out

    def _fail(self, row_id: int, item: OutboxItem, reason: str) -> None:
        with self.store.transaction():
            self.repo.delete(row_id)
            self.history.fail(item.message_row, reason)
        self.events.flush()


def _count(messages: list[Message]) -> str:
    return f"{len(messages)} message{'s' if len(messages) != 1 else ''}"


def _count_again(n: int) -> str:
    return f"{n} message{'s' if n != 1 else ''}"


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
