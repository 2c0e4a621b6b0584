"""Delivery capabilities (PROTOCOL.md 9.1 and 16.10, docs/CLIENT.md "Sealed sending").

This profile makes a capability (32 random bytes) and keeps it in the encrypted store;
the relay holds only its SHA-256 (SET_CAPABILITY, sent after a login whenever that
relay does not hold the current one yet). Contacts are given the capability inside the
end-to-end encryption (content kind CAPABILITY), once per generation: the first time
this client sends them anything, and at once after a rotation; a rotation can cut
contacts off, who are then given no newer one. What a contact gave us is kept on their
contact record and carried by our sealed envelopes to them.

The capability is a secret: it is never logged, printed or shown (a contact's is not
either; `blindrelay sealed status` says only whether one is held).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable

from client.connection import RelayConnection
from client.errors import relay_errors
from client.history import UNKNOWN_SENDER
from client.records import Contact, Delivery
from client.store import ContactRepo, DeliveryRepo, Store
from protocol.e2e.content import CAPABILITY_LEN, Capability

log = logging.getLogger("blindrelay.client")


class Capabilities:
    def __init__(self, store: Store, repo: DeliveryRepo, contacts: ContactRepo,
                 server: Callable[[], str]) -> None:
        self.store = store
        self.repo = repo
        self.contacts = contacts
        self.server = server

    def state(self) -> Delivery:
        """The settings, made (with a fresh capability) the first time they are read."""
        delivery = self.repo.load()
        if delivery is None:
            delivery = Delivery(os.urandom(CAPABILITY_LEN))
            with self.store.transaction():
                self.repo.save(delivery)
        return delivery

    def save(self, delivery: Delivery) -> None:
        with self.store.transaction():
            self.repo.save(delivery)

    # -- the relay's copy

    def held(self, server: str | None = None) -> bool:
        """Whether the relay (ours by default) confirmed the current capability and flag."""
        delivery = self.state()
        return delivery.relays.get(server or self.server()) == [delivery.generation,
                                                               delivery.allow_anyone]

    async def publish(self, conn: RelayConnection) -> bool:
        """SET_CAPABILITY on a logged-in connection if the relay does not hold the
        current capability and flag yet; True if it was sent. Raises RelayRefused or
        NotConnected."""
        server = self.server()
        delivery = self.state()
        wanted = [delivery.generation, delivery.allow_anyone]
        if delivery.relays.get(server) == wanted:
            return False
        with relay_errors():
            await conn.set_capability(delivery.allow_anyone,
                                      hashlib.sha256(delivery.capability).digest())
        delivery = self.state()  # a rotation may have saved meanwhile: record what was sent
        delivery.relays[server] = wanted
        self.save(delivery)
        return True

    # -- contacts

    def offer(self, contact: Contact) -> bytes | None:
        """The CAPABILITY content to give `contact` now (and recorded as given), or None
        if they have the current one, were cut off, or are not a person. Called inside
        the transaction that queues what follows it."""
        if contact.cut_off or contact.name == UNKNOWN_SENDER or contact.key_changed:
            return None
        delivery = self.state()
        if contact.capability_given == delivery.generation:
            return None
        contact.capability_given = delivery.generation
        self.contacts.save(contact)
        return Capability(delivery.capability).encode()

    def of(self, name: str) -> bytes | None:
        """The capability `name` gave us (what our sealed envelopes to them carry)."""
        contact = self.contacts.get(name)
        return None if contact is None else contact.capability

    def rotate(self, cut: Iterable[str] = ()) -> Delivery:
        """A new capability (the next generation); the contacts named are cut off and
        given no newer one. The caller gives it to the others and publishes it."""
        with self.store.transaction():
            delivery = self.state()
            delivery.capability = os.urandom(CAPABILITY_LEN)
            delivery.generation += 1
            self.repo.save(delivery)
            for name in cut:
                contact = self.contacts.get(name)
                if contact is not None:
                    contact.cut_off = True
                    self.contacts.save(contact)
        return delivery

    def restore(self, name: str) -> Contact | None:
        """Undoes a cut: the contact is given the current capability with the next
        thing sent to them (the caller may queue it at once)."""
        contact = self.contacts.get(name)
        if contact is not None and contact.cut_off:
            with self.store.transaction():
                contact.cut_off = False
                self.contacts.save(contact)
        return contact
