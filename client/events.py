"""Typed events for views (the CLI and the app subscribe with `Client.on_event`).

Events raised while a transaction is open are deferred and reach views only once it
committed, so a view never shows what a rollback undid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from client.records import Contact, Message

log = logging.getLogger("blindrelay.client")


class Status(StrEnum):
    """The connection to the relay, as the status bar shows it."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"


@dataclass(frozen=True)
class MessageEvent:
    message: Message


@dataclass(frozen=True)
class ContactEvent:
    contact: Contact


@dataclass(frozen=True)
class StatusEvent:
    status: Status
    detail: str = ""


class KtAlertKind(StrEnum):
    """What the key directory check caught (client/directory.py)."""

    KEYS_CHANGED = "keys-changed"
    """The relay's directory keys are not the ones pinned at first use."""
    ROLLBACK = "rollback"
    """The relay showed an older head than one it showed before."""
    FORK = "fork"
    """The relay signed two heads that cannot both be true."""
    BAD_PROOF = "bad-proof"
    """An answer from the directory did not verify."""
    NOT_IN_DIRECTORY = "not-in-directory"
    """A key the relay served is bound to no key in the directory (absent, deleted)."""
    KEY_MISMATCH = "key-mismatch"
    """The directory binds the name to another key than the one the relay served."""
    FOREIGN_BINDING = "foreign-binding"
    """Owner monitoring: a binding under our own name that we did not make."""
    CERT_KEY_CHANGED = "cert-key-changed"
    """The relay's sender-certificate key is not the one pinned at the first login
    (client/certificates.py; PROTOCOL.md 20)."""


@dataclass(frozen=True)
class KtAlert:
    """A loud, blocking warning from the key directory check: `text` says what was
    caught and what it means; `evidence` is the file anyone can check, if any."""

    kind: KtAlertKind
    name: str
    text: str
    evidence: Path | None = None


Event = MessageEvent | ContactEvent | StatusEvent | KtAlert
Listener = Callable[[Event], None]


class Events:
    """The listeners, and the events waiting for their transaction to commit."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self._deferred: list[Event] = []

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def defer(self, event: Event) -> None:
        self._deferred.append(event)

    def flush(self) -> None:
        """The transaction committed: deliver what it raised."""
        events, self._deferred = self._deferred, []
        for event in events:
            self.emit(event)

    def discard(self) -> None:
        """The transaction rolled back: what it raised never happened."""
        self._deferred.clear()
