"""Decryption errors (PROTOCOL.md 9.2; docs/CLIENT.md "What you see"): telling a
contact that a message from them could not be decrypted, and sending again what a
contact's key change held back once the user accepts the new key. What a received
report does to the outbox is `Outbox.peer_failed`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from client.errors import ClientError
from client.events import Events
from client.outbox import Outbox
from client.records import Contact
from client.store import SessionRepo, Store
from client.trust import TrustBook
from protocol.e2e.content import DecryptionError

log = logging.getLogger("blindrelay.client")


class FailureReports:
    def __init__(self, store: Store, sessions: SessionRepo, trust: TrustBook, outbox: Outbox,
                 events: Events, start_session: Callable[[str], Awaitable[None]]) -> None:
        self.store = store
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
