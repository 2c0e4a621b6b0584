"""Sending (docs/CLIENT.md, "Never lose, never desync"): an outgoing message is
encrypted, stored and queued in one transaction, and leaves the outbox only when the
relay answered SENT. Queued envelopes go out in order, several per SEND frame as far
as the relay's limits allow (PROTOCOL.md 16.6: a SEND stores all its envelopes or
none). They are sealed (PROTOCOL.md 10) when they leave, not when queued, with the
sender certificate current then (client/certificates.py): a message queued offline
for days still carries a valid one.

Sealed sending (PROTOCOL.md 16.10, docs/CLIENT.md "Sealed sending"): with it on (the
default) each flush sends its envelopes in SEALED_SENDs on a connection of its own that
never logs in, opened when the first envelope is due and closed when the flush ends;
each envelope carries the capability its recipient gave us, or 32 random bytes (which
a recipient who allows anyone accepts). An envelope the relay refuses with
BAD_CAPABILITY goes by SEND on the logged-in connection instead: delivery beats
secrecy, and the relay then learns who sent that one.

Automatic receipts may wait a random time before they go (`receipt_delay`): such an
item keeps the receipt's content and a not-before time, is encrypted only once due
(so the ratchet's order stays the order of sending) and never holds back anything
queued after it."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace

from client.connection import RelayConnection
from client.errors import NotConnected, RelayRefused, relay_errors
from client.events import Events
from client.history import History
from client.records import Contact, Direction, Message, OutboxItem, State
from client.spare import SpareConnection
from client.store import OutboxRepo, SessionRepo, Store
from protocol.e2e.content import (
    CAPABILITY_LEN,
    DecryptionError,
    Receipt,
    ReceiptType,
    Text,
    with_checkpoint,
)
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

RETRY_RATE_LIMITED = 1.0
"""Seconds before a flush the relay rate-limited tries again (its buckets refill by the
second: sealed envelopes under one capability at 2 a second by default)."""
RETRY_MAX = 60.0
"""The longest wait before a deferred flush tries again (doubling from 1 second)."""

RESENT = "sent again: the recipient could not decrypt the first copy"
WAITING = ("not delivered: the recipient's identity key has changed; it is sent again "
           "when you accept the new key")
"""Marks on outgoing messages a decryption error touched (PROTOCOL.md 9.2)."""


Opener = Callable[[], Awaitable[RelayConnection]]


class _SendingConnection:
    """The flush's own connection for SEALED_SEND: opened when first needed (again if
    the relay closed it meanwhile), never logged in, closed when the flush ends."""

    def __init__(self, open_sending: Opener) -> None:
        self.open_sending = open_sending
        self.conn: RelayConnection | None = None
        self.unsupported = False
        """The relay does not know SEALED_SEND (an older one): everything goes by SEND."""
        self.refused: set[str] = set()
        """Recipients the relay refused a sealed envelope to in this flush (no valid
        capability): their next ones in it go by SEND without asking again."""

    async def get(self) -> RelayConnection:
        if self.conn is None or self.conn.closed.is_set():
            await self.close()
            try:
                self.conn = await self.open_sending()
            except Exception as exc:
                raise NotConnected(f"cannot open a sending connection: {exc}") from exc
        return self.conn

    def same_route(self, items: list[tuple[int, OutboxItem]]) -> int:
        """How many of the first items go the way the first one goes (sealed, or by
        SEND to a recipient refused sealed in this flush): one frame takes one way."""
        if self.unsupported:
            return len(items)
        first = items[0][1].recipient in self.refused
        return next((n for n, (_, item) in enumerate(items)
                     if (item.recipient in self.refused) != first), len(items))

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()


class Outbox:
    def __init__(self, store: Store, repo: OutboxRepo, history: History, events: Events,
                 username: Callable[[], str], max_envelope: Callable[[], int],
                 head: Callable[[], bytes | None] = lambda: None,
                 certificate: Callable[[], bytes | None] = lambda: None,
                 clock: Callable[[], float] = lambda: 0.0) -> None:
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
        self.clock = clock
        self._lock = asyncio.Lock()
        # Sealed sending and receipt delays: the client sets these (client.py); as
        # constructed, everything goes by SEND at once, as before.
        self.sealed: Callable[[], bool] = lambda: False
        """Whether envelopes go in SEALED_SENDs first (`Client.sealed_sending`)."""
        self.open_sending: Opener | None = None
        """Opens a new connection to our relay that will not log in."""
        self._spare: SpareConnection | None = None
        self.capability_of: Callable[[str], bytes | None] = lambda name: None
        """The capability a contact gave us (our sealed envelopes to them carry it)."""
        self.offer: Callable[[Contact], bytes | None] = lambda contact: None
        """Our CAPABILITY content for a contact not given the current one yet."""
        self.receipt_delay: Callable[[], float] = lambda: 0.0
        """Automatic receipts wait a random 0 .. this many seconds (`Client.receipt_delay`)."""
        self.contact: Callable[[str], Contact | None] = lambda name: None
        self.retry_at: float | None = None
        """When a flush the relay deferred tries again (None: nothing deferred)."""
        self._retry_wait = 0.0
        self.sessions: SessionRepo | None = None
        """Where a delayed receipt's session is, when it is due and encrypted."""

    def text(self, message_id: bytes, sent_at_ms: int, text: str) -> bytes:
        """A TEXT's content, wrapped with our newest directory head when we have one, so
        the receiver can check that the relay showed us both one directory (19.8)."""
        content = Text(message_id, sent_at_ms, text).encode()
        head = self.head()
        return content if head is None else with_checkpoint(content, head)

    def encrypt(self, contact: Contact, session: Session, plaintext: bytes,
                message_row: int | None = None) -> OutboxItem:
        """Encrypts in `session` (the caller saves its record in the same transaction);
        the item is sealed to the contact's identity key when it leaves (`_seal`). A
        contact not given our current capability yet is given it first: one more
        message, queued here, before this one (PROTOCOL.md 9.1)."""
        capability = self.offer(contact)
        if capability is not None:
            kind, message = session.encrypt(capability)
            self.queue(OutboxItem(contact.name, identity=contact.identity, kind=int(kind),
                                  message=message))
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
        delay = max(0.0, self.receipt_delay())
        for start in range(0, len(ids), per):
            receipt = Receipt(receipt_type, tuple(ids[start:start + per]))
            if delay > 0:  # persisted with its due time; encrypted once it is due
                not_before = self.clock() + secrets.SystemRandom().uniform(0, delay)
                self.queue(OutboxItem(contact.name, not_before=not_before,
                                      deferred=receipt.encode()))
            else:
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
        contact.capability_given = 0  # what it lost may have held our capability
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
        """Sends what is due in the outbox, in order; returns how many envelopes the
        relay stored. `conn` gives the live logged-in connection (raises NotConnected
        if there is none)."""
        sent = 0
        async with self._lock:
            self._encrypt_due()
            items = self._seal(self.due())
            sending = (_SendingConnection(self._spare_connection().take)
                       if self.sealed() and self.open_sending is not None else None)
            alone = 0  # how many of the next items go one per frame
            try:
                while items:
                    connection = conn()
                    count = 1 if alone else _batch_size(items, connection.limits,
                                                        sending is not None)
                    if sending is not None:  # one route per frame: sealed, or SEND
                        count = sending.same_route(items[:count])
                    batch, rest = items[:count], items[count:]
                    try:
                        fell_back = await self._transmit(batch, connection, sending)
                    except _Deferred as exc:
                        log.info("sending deferred: %s", exc)
                        self._defer(None)
                        break
                    except RelayRefused as exc:
                        if len(batch) > 1:
                            # all or none: each envelope gets the answer it would get alone
                            alone = len(batch)
                            continue
                        if exc.code in DEFERRING:
                            log.info("relay deferred a send: %s", exc)
                            self._defer(exc.code)
                            break
                        self._fail(*batch[0], exc.message)
                        items, alone = rest, max(0, alone - 1)
                        continue
                    async with self.store.atransaction(then=self.events.flush):
                        for row_id, item in batch:
                            self.repo.delete(row_id)
                            self.history.advance(item.message_row, State.SENT)
                    sent += len(batch)
                    # after a fallback the rest are batched again (by route, above)
                    items, alone = rest, 0 if fell_back else max(0, alone - len(batch))
                else:
                    self.retry_at, self._retry_wait = None, 0.0
            finally:
                if sending is not None:
                    used = sending.conn is not None and not sending.conn.closed.is_set()
                    await sending.close()
                    if used:  # the next flush's connection, opened ahead (spare.py)
                        self._spare_connection().prepare()
        return sent

    def _spare_connection(self) -> SpareConnection:
        assert self.open_sending is not None
        if self._spare is None:
            self._spare = SpareConnection(self.open_sending)
        return self._spare

    async def close_spare(self) -> None:
        """Closes the sending connection opened ahead, if any (on disconnecting)."""
        if self._spare is not None:
            await self._spare.close()

    async def _transmit(self, batch: list[tuple[int, OutboxItem]], connection: RelayConnection,
                        sending: _SendingConnection | None) -> bool:
        """One frame of envelopes: a SEALED_SEND on the sending connection if sealed
        sending is on, else (or for envelopes to a recipient the relay refused
        BAD_CAPABILITY in this flush) a SEND on the logged-in connection. True if a
        lone envelope was refused sealed and went by SEND. Raises RelayRefused, or
        _Deferred when the sending connection cannot be had (tried again later)."""
        if sending is not None and not sending.unsupported \
                and batch[0][1].recipient not in sending.refused:
            try:
                sealed_conn = await sending.get()
                with relay_errors():
                    await sealed_conn.sealed_send([
                        (i.recipient, self.capability_of(i.recipient)
                         or os.urandom(CAPABILITY_LEN), i.envelope) for _, i in batch])
                return False
            except NotConnected as exc:
                raise _Deferred(str(exc)) from exc
            except RelayRefused as exc:
                if exc.code == ErrorCode.UNKNOWN_FRAME_TYPE:
                    sending.unsupported = True
                    log.info("the relay does not know SEALED_SEND: sending on the logged-in "
                             "connection")
                elif exc.code != ErrorCode.BAD_CAPABILITY or len(batch) > 1:
                    raise
                else:
                    sending.refused.add(batch[0][1].recipient)
                    log.info("the relay refused a sealed envelope (no valid capability for "
                             "its recipient): it goes on the logged-in connection")
                fell_back = True
        else:
            fell_back = False
        with relay_errors():
            await connection.send([(i.recipient, i.envelope) for _, i in batch])
        return fell_back

    def _defer(self, code: int | None) -> None:
        """What is left goes again at the next flush, or (while connected, the client
        wakes for it) after a second if rate-limited, else after a wait doubling from a
        second up to RETRY_MAX."""
        if code == ErrorCode.RATE_LIMITED:
            wait = RETRY_RATE_LIMITED
        else:
            wait = self._retry_wait = min(RETRY_MAX, max(1.0, self._retry_wait * 2))
        self.retry_at = self.clock() + wait

    def due(self) -> list[tuple[int, OutboxItem]]:
        """The items that may go now, in the outbox's order."""
        now = self.clock()
        return [(row, item) for row, item in self.repo.items()
                if not item.deferred and item.not_before <= now]

    def next_due(self) -> float | None:
        """When the earliest item still waiting for its time is due (None: none waits)."""
        items = self.repo.items()
        times = [item.not_before for _, item in items
                 if item.deferred or item.not_before > self.clock()]
        if self.retry_at is not None and items:
            times.append(self.retry_at)
        return min(times) if times else None

    def _encrypt_due(self) -> None:
        """Delayed receipts whose time has come are encrypted now, in the contact's
        current session, and queued at the end (after whatever was encrypted before
        them, which is their order in the ratchet). One whose contact has no session
        or a changed key is dropped, as an undelayed one would not have been queued."""
        now = self.clock()
        for row_id, item in self.repo.items():
            if not item.deferred or item.not_before > now:
                continue
            with self.store.transaction():
                self.repo.delete(row_id)
                contact = self.contact(item.recipient)
                if contact is None or contact.key_changed or self.sessions is None:
                    continue
                record = self.sessions.load(item.recipient)
                if record.current is None:
                    continue
                self.queue(self.encrypt(contact, record.current, item.deferred))
                self.sessions.save(item.recipient, record)

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


class _Deferred(Exception):
    """Sending stops for this flush (the next one tries again)."""


def _count(messages: list[Message]) -> str:
    return f"{len(messages)} message{'s' if len(messages) != 1 else ''}"


def _count_again(n: int) -> str:
    return f"{n} message{'s' if n != 1 else ''}"


def _batch_size(items: list[tuple[int, OutboxItem]], limits: Limits,
                sealed: bool = False) -> int:
    """How many of the first items fit one SEND (or SEALED_SEND, whose envelopes carry a
    capability each): at most max_recipients envelopes and max_frame bytes (at least
    one, whose size the relay judges)."""
    size, count = FRAME_OVERHEAD, 0
    extra = CAPABILITY_LEN if sealed else 0
    for _, item in items[:max(1, limits.max_recipients)]:
        size += 1 + len(item.recipient.encode("ascii")) + 4 + len(item.envelope) + extra
        if count and size > limits.max_frame:
            break
        count += 1
    return max(1, count)
