"""Decryption errors (PROTOCOL.md 9.2; docs/CLIENT.md "What you see"): telling a
contact that a message from them could not be decrypted, and sending again what a
contact's key change held back once the user accepts the new key. What a received
report does to the outbox is `Outbox.peer_failed`.

A contact who reinstalled with a new identity key cannot report anything: envelopes
sealed to the old key do not open, so the new install does not know who sent them.
For that case `follow_up` looks up, at each login, in the key directory (KT_LOOKUP,
verified: PROTOCOL.md 19.7), the identity key of every contact with messages left
unconfirmed for UNCONFIRMED_AFTER: a different key starts the key-change flow, and the
messages go out again once the user accepts it. (It no longer asks LOOKUP_IDENTITY: our
client never sends it, PROTOCOL.md 10.)"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from client.connection import RelayConnection
from client.errors import ClientError, DirectoryRefused, RelayRefused
from client.events import Events
from client.history import UNKNOWN_SENDER, History
from client.outbox import WAITING, Outbox
from client.records import Contact, Direction, State
from client.store import SessionRepo, Store
from client.trust import TrustBook
from protocol.e2e.content import DecryptionError

log = logging.getLogger("blindrelay.client")

UNCONFIRMED_AFTER = 3600.0
"""Seconds a message may stay "sent" (no delivery receipt) before the client checks
whether its recipient's identity key changed."""


class FailureReports:
    def __init__(self, store: Store, sessions: SessionRepo, trust: TrustBook, outbox: Outbox,
                 history: History, events: Events,
                 start_session: Callable[[str], Awaitable[None]],
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.history = history
        self.clock = clock
        self.sessions = sessions
        self.trust = trust
        self.outbox = outbox
        self.events = events
        self.start_session = start_session

    async def send(self, reports: list[tuple[str, DecryptionError]]) -> None:
        """Queues each report in the current session with its contact or, if there is
        none (the lost-session case), in a new one from their bundle."""
        for name, report in reports:
            try:
                if self.sessions.load(name).current is None:
                    await self.start_session(name)
                with self.store.transaction():
                    record = self.sessions.load(name)
                    if self.outbox.queue_content(self.trust.need(name), record,
                                                 report.encode()):
                        self.sessions.save(name, record)
            except ClientError as exc:
                log.info("could not report a failed message to %s: %s", name, exc)

    def accept_key(self, name: str) -> Contact:
        """Accepts a contact's new key; messages a report held back go out again."""
        contact = self.trust.accept_key(name)
        with self.store.transaction():
            record = self.sessions.load(name)
            if self.outbox.resend_waiting(contact, record):
                self.sessions.save(name, record)
        self.events.flush()
        return contact

    async def follow_up(self, conn: RelayConnection) -> None:
        """At login: held-back messages to contacts whose new key was accepted go out
        (in a new session if needed), and contacts with messages unconfirmed for
        UNCONFIRMED_AFTER are checked against the key directory's key for them."""
        cutoff = self.clock() - UNCONFIRMED_AFTER
        try:  # best effort: a damaged store is reported by the views that read it
            contacts = self.trust.contacts()
        except ClientError as exc:
            log.info("follow-up skipped: %s", exc)
            return
        for contact in contacts:
            if contact.name == UNKNOWN_SENDER or contact.key_changed:
                continue
            try:
                sent = [m for m in self.history.conversation(contact.name, 500)
                        if m.direction is Direction.OUT]
                if any(m.state is State.FAILED and m.error == WAITING for m in sent):
                    await self._resend_waiting(contact.name)
                stale = [m for m in sent if m.state is State.SENT and m.stored_at < cutoff]
                if stale:
                    await self._check_identity(conn, contact, [m.row_id for m in stale])
            except ClientError as exc:
                log.info("follow-up for %s failed: %s", contact.name, exc)

    async def _resend_waiting(self, name: str) -> None:
        if self.sessions.load(name).current is None:
            await self.start_session(name)
        with self.store.transaction():
            record = self.sessions.load(name)
            if self.outbox.resend_waiting(self.trust.need(name), record):
                self.sessions.save(name, record)
        self.events.flush()

    async def _check_identity(self, conn: RelayConnection, contact: Contact,
                              rows: list[int]) -> None:
        try:  # the directory's key for the name, its proof verified
            found = await self.trust.directory.lookup(conn, contact.name)
        except RelayRefused:
            return  # not now: checked again at the next login
        except DirectoryRefused:
            return  # alerted; the messages stay as they are
        registered = found.verified.identity
        if registered is None or registered == contact.identity:
            return  # no such user any more, or the same key: nothing to do
        self.trust.directory.confirmed[contact.name] = found.verified  # for the notice
        with self.store.transaction():
            self.trust.key_changed(contact, registered)
            for row in rows:
                self.history.fail(row, WAITING)
        self.events.flush()
