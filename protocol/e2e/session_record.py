"""Everything a client keeps about its sessions with one peer, and the rules that
decide which session opens a message (docs/PROTOCOL.md section 13.3).

Like libsignal's SessionRecord, and sans-I/O: the caller loads the record once per
received message, calls `open`, and saves it once if the open succeeded. A failed
open raises and leaves the record exactly as it was (every session's ratchet is
atomic, and nothing here is assigned before the message authenticated).

A record holds up to three sessions:

- current: the session messages are sent in;
- pending: a session set up by an initial message made with an identity key that is
  not the pinned one; it opens that key's messages but nothing is sent in it until the
  user accepts the new key (`accept_new_identity`);
- previous: the session a newer one from the same identity replaced. When both sides
  start a conversation at once, each replaces its own session with the one the other
  set up, and the peer may still be sending in the replaced one;

and the base keys EK_A of the initial messages that set a session up, oldest first:
the replay memory, so that an initial message cannot set a conversation up twice (a
relay that withheld one-time prekeys could otherwise replay it, PQXDH section 4.2).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage, SessionSetupError
from protocol.e2e.keys import IdentityKeyPair, Rng, default_rng
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Consumed, PrekeyLookup, Session
from protocol.wire import codec
from protocol.wire.errors import DecodeError

RECORD_VERSION = 1

MAX_ACCEPTED = 2000
"""How many accepted initial messages (by their EK_A) one record remembers."""


class Slot(Enum):
    """Which session opened a message; NEW is one the message itself set up."""

    CURRENT = "current"
    PENDING = "pending"
    PREVIOUS = "previous"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as it came out of the seal: its kind, its bytes and, for an initial
    message, its decoded form, so it is decoded once whoever looks at it."""

    kind: MessageKind
    message: bytes
    initial: PreKeyMessage | None

    @classmethod
    def parse(cls, kind: MessageKind, message: bytes) -> Incoming:
        """Raises DecodeError for a malformed initial message."""
        initial = PreKeyMessage.decode(message) if kind is MessageKind.PREKEY else None
        return cls(kind, message, initial)


@dataclass(frozen=True, slots=True)
class Opened:
    """What `SessionRecord.open` did. A successful open always changed the record (a
    message key was used up), so the caller saves it; a failed one raised instead."""

    plaintext: bytes
    slot: Slot
    gap: int = 0
    """Messages newly found missing (their keys were stored): the caller says so."""
    consumed: Consumed | None = None
    """For NEW: the one-time prekeys the initial message used, to delete now."""
    identity: bytes | None = None
    """For NEW: the sender's identity key IK_A named by the initial message."""
    stored_as: Slot | None = None
    """For NEW: CURRENT (first contact or the pinned identity) or PENDING (another)."""


class SessionRecord:
    __slots__ = ("accepted", "current", "pending", "previous")

    def __init__(self, current: Session | None = None, pending: Session | None = None,
                 previous: Session | None = None, accepted: list[bytes] | None = None
                 ) -> None:
        self.current = current
        self.pending = pending
        self.previous = previous
        self.accepted: list[bytes] = [] if accepted is None else accepted

    # -- receiving (section 13.3, "Which session opens a message")

    def open(self, incoming: Incoming, *, identity: IdentityKeyPair, pinned: bytes | None,
             lookup: PrekeyLookup, rng: Rng = default_rng) -> Opened:
        """Opens a message from this peer. `pinned` is the identity key the client
        pinned for the peer (None before first contact). Raises DecodeError,
        SessionSetupError or DecryptionFailed (DuplicateMessage for a replayed initial
        message, TooManySkipped) and then changes nothing."""
        if incoming.initial is not None:
            return self._open_initial(incoming.initial, identity, pinned, lookup, rng)
        return self._open_ratchet(incoming, pinned)

    def _open_initial(self, msg: PreKeyMessage, identity: IdentityKeyPair,
                      pinned: bytes | None, lookup: PrekeyLookup, rng: Rng) -> Opened:
        # 1. a repeat of the initial message that set up the current or pending session
        for slot, session in ((Slot.CURRENT, self.current), (Slot.PENDING, self.pending)):
            if session is not None and session.base_key == msg.ephemeral:
                before = session.missing
                plaintext = session.decrypt_initial(msg)
                return Opened(plaintext, slot, gap=max(0, session.missing - before))
        # 2. ... or the previous one: the peer is still there, so it becomes current
        previous = self.previous
        if pinned is not None and previous is not None and previous.base_key == msg.ephemeral:
            plaintext = previous.decrypt_initial(msg)
            self._promote_previous()
            return Opened(plaintext, Slot.PREVIOUS)
        # 3. an initial message that set a session up before (since replaced): a replay
        if msg.ephemeral in self.accepted:
            raise DuplicateMessage("initial message already used")
        # 4. a new session
        new, plaintext, consumed = Session.respond(identity, msg, lookup, rng)
        self.accepted.append(msg.ephemeral)
        del self.accepted[:-MAX_ACCEPTED]
        if pinned is None or msg.identity == pinned:
            if pinned is not None and self.current is not None:
                self.previous = self.current  # kept: the peer may still use it
            self.current = new
            stored_as = Slot.CURRENT
        else:
            self.pending = new
            stored_as = Slot.PENDING
        return Opened(plaintext, Slot.NEW, consumed=consumed, identity=msg.identity,
                      stored_as=stored_as)

    def _open_ratchet(self, incoming: Incoming, pinned: bytes | None) -> Opened:
        current = self.current
        if pinned is None or current is None:
            raise SessionSetupError("no session with this sender")
        before = current.missing
        try:
            plaintext = current.decrypt(incoming.kind, incoming.message)
        except DecryptionFailed:
            if self.pending is not None:
                with contextlib.suppress(DecryptionFailed):
                    plaintext = self.pending.decrypt(incoming.kind, incoming.message)
                    return Opened(plaintext, Slot.PENDING)
            if self.previous is not None:
                with contextlib.suppress(DecryptionFailed):
                    plaintext = self.previous.decrypt(incoming.kind, incoming.message)
                    self._promote_previous()
                    return Opened(plaintext, Slot.PREVIOUS)
            raise
        return Opened(plaintext, Slot.CURRENT, gap=max(0, current.missing - before))

    def _promote_previous(self) -> None:
        """The peer is using the previous session: it becomes the current one (and
        the current one the previous), so replies go where the peer is."""
        self.current, self.previous = self.previous, self.current

    # -- the user's decisions

    def accept_new_identity(self) -> None:
        """The user accepted the peer's new identity key: the pending session (if
        any) becomes current; sessions with the old key are dropped."""
        self.current, self.pending, self.previous = self.pending, None, None

    # -- serialisation (section 13.3)

    def serialize(self) -> bytes:
        return b"".join((
            codec.u8(RECORD_VERSION),
            _optional_session(self.current),
            _optional_session(self.pending),
            _optional_session(self.previous),
            codec.u16(len(self.accepted)),
            *self.accepted,
        ))

    @classmethod
    def deserialize(cls, data: bytes, rng: Rng = default_rng) -> SessionRecord:
        r = codec.Reader(data)
        r.expect(RECORD_VERSION, "session record version")
        current = _read_session(r, rng)
        pending = _read_session(r, rng)
        previous = _read_session(r, rng)
        count = r.u16()
        if count > MAX_ACCEPTED:
            raise DecodeError("too many accepted initial messages in a session record")
        accepted = [r.take(32) for _ in range(count)]
        if len(set(accepted)) != count:
            raise DecodeError("repeated base key in a session record")
        r.finish()
        return cls(current, pending, previous, accepted)


def _optional_session(session: Session | None) -> bytes:
    return b"\x00" if session is None else b"\x01" + codec.var32(session.serialize())


def _read_session(r: codec.Reader, rng: Rng) -> Session | None:
    return Session.deserialize(r.var32(), rng) if r.flag() else None
