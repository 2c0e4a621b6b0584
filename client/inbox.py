"""Receiving (docs/CLIENT.md, "Never lose, never desync"): a delivered envelope is
unsealed once, and a page of them (what the relay pushed that is waiting) commits in
one transaction, with its COMMIT off the event loop: the messages, the session records,
consumed prekeys, one delivery receipt per sender and the envelope ids, before one ACK
names them all. Which session opens a message is
decided by protocol.e2e.session_record (PROTOCOL.md 13.3).

Who sent it is the sender certificate's username, and only once the certificate
verified under the relay's pinned certificate key at the time the relay stored the
envelope, its identity key is the one the message was made with, and (for a new key)
the key directory binds the name to it (PROTOCOL.md 10, 20). Anything else is filed
under "unknown sender" with the reason, never under the name it claims."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from client.certificates import SenderCertificates
from client.connection import ConnectionLost, RelayConnection, RelayError
from client.errors import NotConnected
from client.events import Events
from client.history import UNKNOWN_SENDER, History
from client.outbox import Outbox
from client.prekeys import PrekeyKeeper
from client.records import Contact, Direction, Message, State
from client.store import SessionRepo, Store
from client.trust import TrustBook
from protocol.e2e.content import (
    Capability,
    DecryptionError,
    ReceiptType,
    Text,
    decode_gossiped,
)
from protocol.e2e.errors import (
    DecryptionFailed,
    DuplicateMessage,
    SessionSetupError,
    TooManySkipped,
)
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.messages import parse_header
from protocol.e2e.sealed import MessageKind, SealedContent, unseal
from protocol.e2e.session_record import Incoming, Opened, SessionRecord, Slot
from protocol.wire.errors import DecodeError, ProtocolError
from protocol.wire.frames import Deliver

log = logging.getLogger("blindrelay.client")

BeforeAck = Callable[[Deliver], None]
"""Called after a received envelope committed and before it is acknowledged (crash
tests end the process there)."""


SENDERS_KEPT = 256
"""Most verified certificates whose username is remembered (`Inbox._sender`)."""

REPORT_INTERVAL = 600.0
"""At most one decryption error is sent to a sender per this many seconds (PROTOCOL.md
9.2), so failures, which anyone can cause under any name, cannot make this client
send to, or set sessions up with, a contact at the attacker's pace."""


@dataclass
class ReceiveResult:
    """What one delivered envelope turned into, for callers that print it, and the
    decryption errors to send once it committed (PROTOCOL.md 9.2)."""

    messages: list[Message] = field(default_factory=list)
    reports: list[tuple[str, DecryptionError]] = field(default_factory=list)
    gossip: list[tuple[str, bytes]] = field(default_factory=list)
    """(sender, the directory head its message carried): checked once committed (19.8)."""


@dataclass(frozen=True)
class _Envelope:
    """A delivered envelope, unsealed and parsed once."""

    sealed: SealedContent | None  # None: the seal did not open
    incoming: Incoming | None  # None: not sealed, or a malformed initial message
    error: DecodeError | None  # why `incoming` is None although it was sealed


def _open_envelope(identity: IdentityKeyPair, body: bytes) -> _Envelope:
    try:
        sealed = unseal(identity, body)
    except ProtocolError:
        return _Envelope(None, None, None)
    try:
        return _Envelope(sealed, Incoming.parse(sealed.kind, sealed.message), None)
    except DecodeError as exc:
        return _Envelope(sealed, None, exc)


class Inbox:
    def __init__(self, store: Store, sessions: SessionRepo, trust: TrustBook,
                 prekeys: PrekeyKeeper, history: History, outbox: Outbox, events: Events,
                 identity: IdentityKeyPair, clock: Callable[[], float],
                 certificates: SenderCertificates) -> None:
        self.certificates = certificates
        self.store = store
        self.sessions = sessions
        self.trust = trust
        self.prekeys = prekeys
        self.history = history
        self.outbox = outbox
        self.events = events
        self.identity = identity
        self.clock = clock
        self._reported: dict[str, float] = {}
        self._receipts: dict[str, list[bytes]] = {}
        """Per sender, the message ids the open transaction received from them."""
        self._senders: dict[bytes, str] = {}
        """Usernames of certificates that verified, by the certificate's bytes."""
        self._saved: dict[str, SessionRecord] = {}
        """Per sender, the session record the open transaction opened messages in: the
        next message from them opens in it too, and it is saved once, at the end
        (SessionRecord.open changes nothing when it fails)."""

    async def receive(self, deliver: Deliver, conn: RelayConnection | None,
                      before_ack: BeforeAck | None = None) -> ReceiveResult | None:
        """Handles one envelope (a page of one): see `receive_page`."""
        return (await self.receive_page([deliver], conn, before_ack))[0]

    async def receive_page(self, delivers: Sequence[Deliver], conn: RelayConnection | None,
                           before_ack: BeforeAck | None = None
                           ) -> list[ReceiveResult | None]:
        """Handles a page of envelopes, in order: each is unsealed once, and the page
        commits in one transaction (messages, ratchet states, consumed prekeys, one
        receipt per sender and the envelope ids), off the event loop, before one ACK
        names them all. An initial message from a key not pinned for its sender needs
        the key directory (a request to the relay): the page is committed up to it and
        acknowledged, the directory asked, and the rest goes on in a new transaction.

        Returns, per envelope, what it turned into, or None when it was neither stored
        nor acknowledged (the relay delivers it again)."""
        results: list[ReceiveResult | None] = [None] * len(delivers)
        opened = [_open_envelope(self.identity, d.body) for d in delivers]
        verdicts: dict[int, str | None] = {}
        done: set[bytes] = set()
        start = 0
        while start < len(delivers):
            acks: list[bytes] = []
            committed: list[Deliver] = []
            self._receipts, self._saved = {}, {}
            try:  # the events it raised are shown once it is durable
                async with self.store.atransaction(then=self.events.flush):
                    stop = self._process_run(delivers, opened, start, verdicts, results,
                                             done, acks, committed)  # nothing awaited
            except BaseException:
                self.events.discard()
                raise
            if before_ack is not None:
                for deliver in committed:
                    before_ack(deliver)
            await _ack(conn, acks)
            if stop >= len(delivers):
                break
            envelope = opened[stop]
            assert envelope.sealed is not None and envelope.incoming is not None
            assert envelope.incoming.initial is not None
            live = conn if conn is not None and not conn.closed.is_set() else None
            try:
                verdicts[stop] = await self._is_impostor(live, self._sender(envelope.sealed),
                                                         envelope.incoming.initial.identity)
            except NotConnected:
                break  # the rest is redelivered at the next login
            start = stop
        return results

    def _process_run(self, delivers: Sequence[Deliver], opened: list[_Envelope], start: int,
                     verdicts: dict[int, str | None], results: list[ReceiveResult | None],
                     done: set[bytes], acks: list[bytes], committed: list[Deliver]) -> int:
        """Inside the page's transaction: the envelopes from `start` on, until one needs
        the key directory (its index is returned; len(delivers) when none did). The
        receipts they trigger are queued last, one per sender."""
        index = start
        for index in range(start, len(delivers)):
            deliver, envelope = delivers[index], opened[index]
            if deliver.envelope_id in done or self.store.seen(deliver.envelope_id):
                results[index] = ReceiveResult()  # a copy: acknowledged, not shown again
                if deliver.envelope_id not in done:
                    acks.append(deliver.envelope_id)
                    done.add(deliver.envelope_id)
                continue
            rejected: str | None = None
            if envelope.sealed is not None:
                rejected = self._check_sender(envelope, deliver.received_at)
            if rejected is None and envelope.sealed is not None \
                    and envelope.incoming is not None \
                    and envelope.incoming.initial is not None \
                    and not self._pinned(self._sender(envelope.sealed),
                                         envelope.incoming.initial.identity):
                if index not in verdicts:
                    self._queue_receipts()
                    return index
                rejected = verdicts[index]
            result = results[index] = ReceiveResult()
            self._process(envelope, result, rejected, deliver.received_at)
            self.store.mark_seen(deliver.envelope_id, int(self.clock()))
            acks.append(deliver.envelope_id)
            done.add(deliver.envelope_id)
            committed.append(deliver)
        self._queue_receipts()
        return len(delivers)

    def _queue_receipts(self) -> None:
        """One DELIVERED receipt per sender for what this transaction received from
        them, in the current session (PROTOCOL.md 9.1); then each session record it
        opened messages in is saved, once."""
        receipts, self._receipts = self._receipts, {}
        records, self._saved = self._saved, {}
        for name, ids in receipts.items():
            contact = self.trust.contact(name)
            record = records.get(name)
            if contact is not None and record is not None:
                self.outbox.queue_receipt(contact, record, ReceiptType.DELIVERED, ids)
        for name, record in records.items():
            self.sessions.save(name, record)

    def _check_sender(self, envelope: _Envelope, received_at: int) -> str | None:
        """Why the envelope's sender certificate is not believed, or None: it must
        verify under the pinned key at `received_at` (the relay's own time of storing
        it, so a message that waited in the queue still verifies), and its identity key
        must be the one the message was made with: IK_A of a PreKey message, else the
        key pinned for the name (or its pending new key)."""
        assert envelope.sealed is not None
        cert = self.certificates.check(envelope.sealed.certificate, received_at)
        if isinstance(cert, str):
            return f"{cert} (it claims to come from {envelope.sealed.sender})"
        name = cert.username
        if len(self._senders) >= SENDERS_KEPT:
            self._senders.clear()
        self._senders[envelope.sealed.certificate] = name
        incoming = envelope.incoming
        if incoming is not None and incoming.initial is not None:
            if incoming.initial.identity != cert.identity:
                return (f"rejected: a message claiming to come from {name} carries {name}'s "
                        "sender certificate but was made with another identity key (someone "
                        f"is impersonating {name})")
            return None
        contact = self.trust.contact(name)
        if contact is not None and cert.identity not in (contact.identity,
                                                         contact.pending_identity):
            return (f"rejected: a message claiming to come from {name} carries a sender "
                    f"certificate for an identity key that is not the one pinned for {name}")
        return None

    def _sender(self, sealed: SealedContent) -> str:
        """The certificate's username (`SealedContent.sender`), without parsing a
        certificate `_check_sender` verified again."""
        return self._senders.get(sealed.certificate) or sealed.sender

    def _pinned(self, name: str, claimed: bytes) -> bool:
        contact = self.trust.contact(name)
        return contact is not None and claimed in (contact.identity, contact.pending_identity)

    async def _is_impostor(self, conn: RelayConnection | None, name: str, claimed: bytes
                           ) -> str | None:
        """Why an initial message is rejected as an impostor's, or None. Its key is the
        certificate's (`_check_sender`); a key not pinned for the name must be the one
        the key directory binds to it."""
        if self._pinned(name, claimed):
            return None
        if conn is None:
            raise NotConnected("not connected to the relay")
        return await self.trust.is_impostor(conn, name, claimed)

    # -- inside the transaction

    def _process(self, envelope: _Envelope, result: ReceiveResult, rejected: str | None,
                 received_at: int) -> None:
        def note(message: Message) -> None:
            self.history.add(message)
            result.messages.append(message)

        def unattributed(error: str) -> None:
            """A placeholder in the 'unknown sender' conversation (collapsed with the
            unread one before it, expiring after UNKNOWN_EXPIRY), never dropped."""
            expired = self.history.expire_unknown()
            message, new = self.history.unattributed(error)
            result.messages.append(message)
            unknown = self.trust.contact(UNKNOWN_SENDER) or Contact(UNKNOWN_SENDER, b"")
            unknown.unread = max(0, unknown.unread - expired) + new
            unknown.last_activity = self.clock()
            self.trust.save(unknown)

        if rejected is not None:
            unattributed(rejected)
            return
        sealed = envelope.sealed
        if sealed is None:  # the sender's name is inside the seal
            unattributed("could not be decrypted: failed authentication (the envelope was "
                         "damaged or not sealed to this key; its sender is hidden inside "
                         "it)")
            return
        name = self._sender(sealed)
        contact = self.trust.contact(name)
        # the record this transaction opened a message in already (saved at its end),
        # else the stored one (which, if it opens nothing, is not saved)
        record = self._saved.get(name) or self.sessions.load(name)
        try:
            if envelope.incoming is None:
                assert envelope.error is not None
                raise envelope.error
            if envelope.incoming.initial is not None:
                record.forget_replays(*self.prekeys.live_ids())
            opened = record.open(envelope.incoming, identity=self.identity,
                                 pinned=None if contact is None else contact.identity,
                                 lookup=self.prekeys.lookup)
        except DuplicateMessage:
            note(Message(name, Direction.NOTICE, "A duplicate of a message already received "
                         "was rejected and is not shown again (a replayed, or resent, "
                         "envelope).", State.NOTICE))
            return
        except (DecryptionFailed, SessionSetupError, DecodeError) as exc:
            # It did not authenticate in any session with `name`, so the name is only
            # a claim anyone can make: it never files a placeholder under a contact
            # (issue 9 item 9), only in the unknown-sender conversation.
            reason = ("too many skipped messages" if isinstance(exc, TooManySkipped)
                      else "failed authentication" if isinstance(exc, DecryptionFailed)
                      else str(exc))
            with_whom = ("" if contact is not None
                         else ", with whom there is no conversation")
            unattributed(f"{reason} (it claims to come from {name}{with_whom}; "
                         "unverified)")
            if contact is not None and not contact.key_changed \
                    and envelope.incoming is not None:
                self._report(name, envelope.incoming, received_at, result)
            return
        contact = self._after_open(name, contact, opened)
        self._deliver(name, contact, record, opened.plaintext, note, result)
        self._saved[name] = record  # saved once, with the receipt (_queue_receipts)

    def _report(self, name: str, incoming: Incoming, received_at: int,
                result: ReceiveResult) -> None:
        """A message claiming to come from a contact failed: tell them (PROTOCOL.md
        9.2), at most once per REPORT_INTERVAL, so that a sender whose session we lost
        (a restored or reinstalled profile) re-sends instead of seeing "sent" forever.
        Only to contacts, never to a claimed stranger."""
        now = self.clock()
        if now - self._reported.get(name, -REPORT_INTERVAL) < REPORT_INTERVAL:
            return
        self._reported[name] = now
        key, counter = bytes(32), 0  # zeros: the header did not parse
        with contextlib.suppress(DecodeError):
            key, _, counter = parse_header(incoming.initial.message.encode()
                                           if incoming.initial is not None
                                           else incoming.message)
        kind = MessageKind.PREKEY if incoming.initial is not None else incoming.kind
        result.reports.append((name, DecryptionError(int(kind), key, counter,
                                                     received_at * 1000)))

    def _after_open(self, name: str, contact: Contact | None, opened: Opened) -> Contact:
        """First contact, key changes, consumed prekeys and gaps."""
        if opened.consumed is not None:
            self.prekeys.consume(opened.consumed)
        if contact is None:
            assert opened.identity is not None
            contact = self.trust.first_contact(
                name, opened.identity, f"{name} started an end-to-end encrypted "
                "conversation with you. Compare safety numbers to verify their key.")
        elif opened.stored_as is Slot.PENDING and opened.identity != contact.pending_identity:
            assert opened.identity is not None
            self.trust.key_changed(contact, opened.identity)
        self.history.note_gap(name, opened.gap)
        return contact

    def _deliver(self, name: str, contact: Contact, record: SessionRecord, plaintext: bytes,
                 note: Callable[[Message], None], result: ReceiveResult) -> None:
        try:
            item, head = decode_gossiped(plaintext)
        except DecodeError as exc:
            note(Message(name, Direction.IN, "", State.UNDECRYPTABLE,
                         error=f"unreadable content: {exc}"))
            return
        if head is not None:
            result.gossip.append((name, head))
        if isinstance(item, Text):
            note(Message(name, Direction.IN, item.text, State.RECEIVED,
                         message_id=item.message_id, sent_at_ms=item.sent_at_ms, unread=True))
            contact.unread += 1
            contact.last_activity = self.clock()
            self.trust.save(contact)
            self._receipts.setdefault(name, []).append(item.message_id)
        elif isinstance(item, DecryptionError):
            self.outbox.peer_failed(contact, record, item)
            self.trust.save(contact)  # what it lost may have held our capability
        elif isinstance(item, Capability):  # what our sealed envelopes to them carry
            contact.capability = item.capability
            self.trust.save(contact)
        else:
            state = State.READ if item.receipt_type is ReceiptType.READ else State.DELIVERED
            self.history.receipt(name, item.message_ids, state)


async def _ack(conn: RelayConnection | None, envelope_ids: list[bytes]) -> None:
    """One ACK for what a transaction committed (RelayConnection.ack_committed)."""
    if conn is None or not envelope_ids:
        return
    try:
        await conn.ack_committed(envelope_ids)
    except (ConnectionLost, RelayError) as exc:
        log.info("ack failed, the relay will redeliver: %s", exc)
