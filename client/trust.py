"""Contacts and trust (docs/CLIENT.md, "Trust"): identity keys pinned on first contact,
verification by safety numbers, and key changes that block sending until accepted."""

from __future__ import annotations

from collections.abc import Callable

from client.confusables import lookalikes
from client.connection import RelayConnection
from client.directory import KeyDirectory
from client.errors import (
    ConnectionDropped,
    DirectoryRefused,
    KeyChangeBlocked,
    Refused,
    RelayRefused,
    UnknownContact,
)
from client.events import ContactEvent, Events
from client.history import UNKNOWN_SENDER, History
from client.records import Contact, Trust
from client.store import ContactRepo, SessionRepo, Store
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.safety_numbers import format_safety_number, qr_payload, safety_number


class TrustBook:
    def __init__(self, store: Store, contacts: ContactRepo, sessions: SessionRepo,
                 history: History, events: Events, identity: IdentityKeyPair,
                 username: Callable[[], str], clock: Callable[[], float],
                 directory: KeyDirectory) -> None:
        self.store = store
        self.directory = directory
        self.repo = contacts
        self.sessions = sessions
        self.history = history
        self.events = events
        self.identity = identity
        self.username = username
        self.clock = clock

    def contact(self, name: str) -> Contact | None:
        return self.repo.get(name)

    def contacts(self) -> list[Contact]:
        return sorted(self.repo.all(), key=lambda c: (-c.last_activity, c.name))

    def save(self, contact: Contact) -> None:
        """Stores the contact and tells views (once the transaction commits)."""
        self.repo.save(contact)
        self.events.defer(ContactEvent(contact))

    def need(self, name: str) -> Contact:
        contact = self.repo.get(name)
        if name == UNKNOWN_SENDER:
            raise Refused("envelopes that could not be opened have no known sender")
        if contact is None:
            raise UnknownContact(f"no contact named {name!r}")
        return contact

    def lookalikes(self, name: str) -> list[str]:
        """Contacts whose names look like `name` but are not it (client/confusables.py)."""
        return lookalikes(name, (c.name for c in self.repo.all()
                                 if c.name != UNKNOWN_SENDER))

    def first_contact(self, name: str, identity: bytes, notice: str) -> Contact:
        """Pins `identity` for a new contact; a name that looks like an existing
        contact's gets a warning in the new conversation."""
        similar = self.lookalikes(name)
        contact = Contact(name, identity, last_activity=self.clock())
        self.save(contact)
        self.history.notice(name, notice)
        if similar:
            self.history.notice(name, lookalike_warning(name, similar))
        return contact

    def key_changed(self, contact: Contact, new_identity: bytes) -> None:
        """Holds `new_identity` back until the user accepts it. The notice says what
        the key directory showed for it, when it was checked (client/directory.py):
        a CHANGE signed by the old key, or an operator's RESET."""
        previous = contact.identity
        contact.pending_identity = new_identity
        verified = contact.trust is Trust.VERIFIED
        contact.trust = Trust.UNVERIFIED
        self.save(contact)
        warning = (f"{contact.name}'s identity key has CHANGED. This can mean they reinstalled, "
                   "or that someone is intercepting. Nothing will be sent until you compare "
                   "safety numbers and accept the new key.")
        if verified:
            warning = f"{contact.name} WAS VERIFIED and is no longer: " + warning
        described = self.directory.describe(contact.name, new_identity, previous)
        if described:
            warning += " " + described
        self.history.notice(contact.name, warning)

    def safety_number(self, name: str) -> tuple[str, str]:
        """(the 60 digits formatted in 12 groups, the QR payload) for a contact's
        current (or, after a key change, new) identity key."""
        contact = self.need(name)
        key = contact.pending_identity or contact.identity
        me = self.username()
        digits = safety_number(self.identity.public, me, key, name)
        payload = qr_payload(self.identity.public, me, key, name)
        return format_safety_number(digits), payload + self.directory.anchor_payload()

    def verify(self, name: str) -> Contact:
        contact = self.need(name)
        if contact.key_changed:
            raise KeyChangeBlocked(name)
        with self.store.transaction():
            contact.trust = Trust.VERIFIED
            contact.was_verified = True
            self.save(contact)
            self.history.notice(name, f"You marked {name} as verified.")
        self.events.flush()
        return contact

    def accept_key(self, name: str) -> Contact:
        """Accepts a contact's new identity key: sending resumes (to the new key), and
        the contact is unverified until safety numbers are compared again."""
        contact = self.need(name)
        if contact.pending_identity is None:
            raise Refused(f"{name}'s identity key has not changed")
        with self.store.transaction():
            contact.identity = contact.pending_identity
            contact.pending_identity = None
            contact.trust = Trust.UNVERIFIED
            record = self.sessions.load(name)
            record.accept_new_identity()
            self.sessions.save(name, record)
            self.save(contact)
            self.history.notice(name, f"You accepted {name}'s new identity key. Compare "
                                "safety numbers to verify it.")
        self.events.flush()
        return contact

    async def is_impostor(self, conn: RelayConnection, name: str, claimed: bytes
                          ) -> str | None:
        """An initial message from an identity key this profile has not pinned for
        `name`, whose sender certificate binds `name` to that key (client/inbox.py
        checked it): the relay vouches for the binding, and holds the certificate key,
        so the key directory must bind `name` to exactly that key too (client/
        directory.py). Returns why the message is rejected when it does not (someone
        is impersonating the name, or the relay lies about it), else None. Raises
        NotConnected if the relay cannot be asked. No LOOKUP_IDENTITY: the certificate
        replaces it (PROTOCOL.md 10); the KT lookup still names, to the relay, whom
        this client looks up."""
        contact = self.repo.get(name)
        if contact is not None and claimed in (contact.identity, contact.pending_identity):
            return None
        try:
            await self.directory.confirm(conn, name, claimed, warn=False)
        except DirectoryRefused as exc:
            return f"rejected: a message claiming to come from {name}: {exc}"
        except RelayRefused as exc:
            raise ConnectionDropped(f"key directory lookup failed: {exc}") from exc
        return None


def lookalike_warning(name: str, similar: list[str]) -> str:
    others = " and ".join(similar)
    return (f"Careful: {name} looks like your contact{'s' if len(similar) > 1 else ''} "
            f"{others}, but is a different account. Check that this is who you think it "
            "is before you trust it.")
