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

and the replay memory: the initial messages that set a session up, each by its base
key EK_A and the prekeys it used, so that an initial message cannot set a conversation
up twice (a relay that withheld one-time prekeys could otherwise replay it, PQXDH
section 4.2). An entry is kept exactly as long as the private keys it used live
(`forget_replays`), never dropped to make room: when the memory is full, new sessions
are refused instead, so a flood of first messages cannot push a replay's entry out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum

from protocol.e2e.errors import DecryptionFailed, DuplicateMessage, SessionSetupError
from protocol.e2e.keys import IdentityKeyPair, Rng, default_rng
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Consumed, PrekeyLookup, Session
from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.prekeys import KemKind

RECORD_VERSION = 2
LEGACY_RECORD_VERSION = 1
"""Records of version 1 remembered base keys without their prekeys (section 13.3)."""

MAX_ACCEPTED = 10_000
"""How many accepted initial messages one record remembers while their prekeys live;
beyond it new sessions from this peer are refused (SessionSetupError), not the oldest
entry forgotten (a forgotten entry is a replay accepted again)."""

LEGACY_MAX_ACCEPTED = 2000


@dataclass(frozen=True, slots=True)
class AcceptedInitial:
    """One entry of the replay memory (PROTOCOL.md 13.3): the base key EK_A of an
    accepted initial message and the prekeys it used, which say how long to keep it.
    `kem_kind` None: migrated from a version 1 record, prekeys unknown, kept for good."""

    base_key: bytes
    signed_prekey_id: int = 0
    kem_kind: KemKind | None = None
    kem_prekey_id: int = 0
    one_time_prekey_id: int | None = None

    @classmethod
    def of(cls, msg: PreKeyMessage) -> AcceptedInitial:
        return cls(msg.ephemeral, msg.signed_prekey_id, msg.kem_kind, msg.kem_prekey_id,
                   msg.one_time_prekey_id)

    def encode(self) -> bytes:
        opk = self.one_time_prekey_id
        return b"".join((self.base_key, codec.u32(self.signed_prekey_id),
                         codec.u8(0 if self.kem_kind is None else self.kem_kind),
                         codec.u32(self.kem_prekey_id),
                         codec.u8(opk is not None), codec.u32(opk or 0)))

    @classmethod
    def read(cls, r: codec.Reader) -> AcceptedInitial:
        base_key, spk_id, kind, kem_id = r.take(32), r.u32(), r.u8(), r.u32()
        has_opk, opk_id = r.flag(), r.u32()
        if kind == 0:
            kem_kind = None
            if spk_id or kem_id or has_opk or opk_id:
                raise DecodeError("a migrated replay memory entry names prekeys")
        else:
            try:
                kem_kind = KemKind(kind)
            except ValueError:
                raise DecodeError(f"unknown KEM prekey kind {kind} in a session record"
                                  ) from None
        if not has_opk and opk_id:
            raise DecodeError("a one-time prekey id without its flag")
        return cls(base_key, spk_id, kem_kind, kem_id, opk_id if has_opk else None)

    def lives(self, signed: Collection[int], last_resort: Collection[int]) -> bool:
        """Whether the private keys a replay of this message would need still live: its
        signed prekey and, if it used one, its last-resort KEM prekey (its one-time
        prekeys were deleted when it was accepted)."""
        if self.kem_kind is None:
            return True
        if self.signed_prekey_id not in signed:
            return False
        return self.kem_kind is not KemKind.LAST_RESORT or self.kem_prekey_id in last_resort


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
    __slots__ = ("current", "pending", "previous", "replays")

    def __init__(self, current: Session | None = None, pending: Session | None = None,
                 previous: Session | None = None,
                 accepted: Sequence[bytes | AcceptedInitial] | None = None) -> None:
        """`accepted` may name bare base keys (a migrated memory, prekeys unknown)."""
        self.current = current
        self.pending = pending
        self.previous = previous
        self.replays: list[AcceptedInitial] = [
            e if isinstance(e, AcceptedInitial) else AcceptedInitial(e)
            for e in accepted or ()]

    @property
    def accepted(self) -> list[bytes]:
        """The base keys EK_A the replay memory holds, oldest first."""
        return [entry.base_key for entry in self.replays]

    def forget_replays(self, signed: Collection[int], last_resort: Collection[int]) -> None:
        """Drops the replay memory's entries whose prekeys are gone (`signed`,
        `last_resort`: the ids of the signed and last-resort KEM prekeys the client
        still holds): a replay of them can no longer set a session up."""
        self.replays = [e for e in self.replays if e.lives(signed, last_resort)]

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
        # 4. a new session, if the replay memory can remember it
        if len(self.replays) >= MAX_ACCEPTED:
            raise SessionSetupError("too many new sessions from this peer while the "
                                    "prekeys they used live")
        new, plaintext, consumed = Session.respond(identity, msg, lookup, rng)
        self.replays.append(AcceptedInitial.of(msg))
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
            codec.u16(len(self.replays)),
            *(entry.encode() for entry in self.replays),
        ))

    @classmethod
    def deserialize(cls, data: bytes, rng: Rng = default_rng) -> SessionRecord:
        """Reads version 2, and version 1 (whose base keys become entries with
        unknown prekeys, kept for good)."""
        r = codec.Reader(data)
        version = r.u8()
        if version not in (RECORD_VERSION, LEGACY_RECORD_VERSION):
            raise DecodeError(f"unknown session record version {version}")
        current = _read_session(r, rng)
        pending = _read_session(r, rng)
        previous = _read_session(r, rng)
        count = r.u16()
        if count > (MAX_ACCEPTED if version == RECORD_VERSION else LEGACY_MAX_ACCEPTED):
            raise DecodeError("too many accepted initial messages in a session record")
        accepted = [AcceptedInitial.read(r) if version == RECORD_VERSION
                    else AcceptedInitial(r.take(32)) for _ in range(count)]
        if len({entry.base_key for entry in accepted}) != count:
            raise DecodeError("repeated base key in a session record")
        r.finish()
        return cls(current, pending, previous, accepted)


def _optional_session(session: Session | None) -> bytes:
    return b"\x00" if session is None else b"\x01" + codec.var32(session.serialize())


def _read_session(r: codec.Reader, rng: Rng) -> Session | None:
    return Session.deserialize(r.var32(), rng) if r.flag() else None
