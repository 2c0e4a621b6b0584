"""The client library: where the secrets live. The CLI and the chat app are thin
views over `Client`.

Guarantees (docs/CLIENT.md):
- a received message, the new ratchet state, consumed prekeys and the receipts it
  triggers commit in one transaction *before* the envelope is acknowledged, so a
  crash redelivers it (and the seen-envelope table drops the copy) or it is stored,
  never both shown twice and never a ratchet out of step;
- an outgoing message is encrypted, stored and queued in the outbox in one
  transaction, and leaves the outbox only when the relay acknowledged it;
- identity keys are pinned on first contact; a changed key blocks sending to that
  contact until the user accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.connection import ConnectionLost, RelayConnection, RelayError
from client.models import STATE_ORDER, Contact, Direction, Message, OutboxItem, State, Trust
from client.store import KdfParams, Store
from protocol.e2e.content import Receipt as ReceiptContent
from protocol.e2e.content import ReceiptType, Text, decode_content
from protocol.e2e.errors import (
    DecryptionFailed,
    DuplicateMessage,
    MessageTooLarge,
    SessionSetupError,
    TooManySkipped,
)
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.safety_numbers import format_safety_number, qr_payload, safety_number
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.e2e.size_classes import MAX_ENVELOPE_CLASS, envelope_size, max_plaintext_len
from protocol.wire.errors import DecodeError, ProtocolError
from protocol.wire.frames import Deliver, ErrorCode, PrekeysLow, QueueDone, normalize_url
from protocol.wire.prekeys import KemKind, PreKeyBundle
from protocol.wire.usernames import check_username

log = logging.getLogger("blindrelay.client")

PREKEY_TARGET = 100
PREKEY_LOW = 20
PREKEY_UPLOAD_BATCH = 50
SIGNED_PREKEY_ROTATION = 7 * 24 * 3600
SIGNED_PREKEY_GRACE = 30 * 24 * 3600
SEEN_RETENTION = 60 * 24 * 3600
MAX_BASE_KEYS = 2000
"""How many accepted initial messages (by their EK_A) are remembered to refuse replays."""
UNKNOWN_SENDER = "?unknown"
MAX_TEXT = 60_000

FAULT_ENV = "BLINDRELAY_FAULT"
"""Fault injection for crash tests: 'exit-before-ack' ends the process right after a
received message is committed and before it is acknowledged."""


class ClientError(Exception):
    """A request the client refuses or cannot carry out; the message says why."""


class KeyChangeBlocked(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name}'s identity key has changed. Nothing is sent until you compare safety "
            f"numbers and accept the new key (blindrelay accept-key {name}).")
        self.name = name


class NotConnected(ClientError):
    pass


class UnknownContact(ClientError):
    pass


# -- events for views


@dataclass(frozen=True)
class MessageEvent:
    message: Message


@dataclass(frozen=True)
class ContactEvent:
    contact: Contact


@dataclass(frozen=True)
class StatusEvent:
    status: str  # "offline", "connecting", "online"
    detail: str = ""


Event = MessageEvent | ContactEvent | StatusEvent


@dataclass
class Profile:
    username: str
    server: str
    identity_seed: bytes
    next_one_time_id: int = 1
    next_kem_id: int = 1
    signed_prekey_id: int = 0
    last_resort_id: int = 0
    signed_prekey_created: float = 0.0
    registered: bool = False
    signed_prekey_server: str = ""  # the relay that confirmed the current signed prekey

    def encode(self) -> bytes:
        d = dict(self.__dict__)
        d["identity_seed"] = self.identity_seed.hex()
        return json.dumps(d).encode()

    @classmethod
    def decode(cls, data: bytes) -> Profile:
        d = json.loads(data)
        d["identity_seed"] = bytes.fromhex(d["identity_seed"])
        return cls(**d)


@dataclass
class ReceiveResult:
    """What one delivered envelope turned into, for callers that print it."""

    messages: list[Message] = field(default_factory=list)


class Client:
    def __init__(self, store: Store, home: Path, clock: Callable[[], float] = time.time
                 ) -> None:
        self.store = store
        self.home = home
        self.clock = clock
        data = store.get("settings", b"setting", b"profile")
        if data is None:
            raise ClientError("the profile holds no identity; run 'blindrelay init' again")
        self.profile = Profile.decode(data)
        self.identity = IdentityKeyPair.from_seed(self.profile.identity_seed)
        self.conn: RelayConnection | None = None
        self.listeners: list[Callable[[Event], None]] = []
        self.status = "offline"
        self.queue_done = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._prekey_lock = asyncio.Lock()
        self._pump_task: asyncio.Task[None] | None = None
        self._replenish_task: asyncio.Task[None] | None = None
        self._deferred: list[Event] = []

    @property
    def username(self) -> str:
        return self.profile.username

    # -- creating and opening a profile

    @classmethod
    def create(cls, home: Path, username: str, server: str, passphrase: bytes | None,
               params: KdfParams | None = None) -> Client:
        """A new local profile with a fresh identity (not yet registered)."""
        check_username(username)
        store = Store.create(home, passphrase, params)
        identity = IdentityKeyPair.generate()
        profile = Profile(username, normalize_url(server), identity.seed)
        store.put("settings", b"setting", b"profile", profile.encode())
        return cls(store, home)

    @classmethod
    def open(cls, home: Path, passphrase: bytes | None) -> Client:
        return cls(Store.open(home, passphrase), home)

    def close(self) -> None:
        self.store.close()

    def _save_profile(self) -> None:
        self.store.put("settings", b"setting", b"profile", self.profile.encode())

    def on_event(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def _emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def _defer(self, event: Event) -> None:
        """Events raised inside a transaction reach views only once it committed."""
        self._deferred.append(event)

    def _flush_events(self) -> None:
        events, self._deferred = self._deferred, []
        for event in events:
            self._emit(event)

    def _set_status(self, status: str, detail: str = "") -> None:
        self.status = status
        self._emit(StatusEvent(status, detail))

    # -- connection

    async def connect(self, **kwargs: Any) -> None:
        """Opens a connection, registers (first time) or logs in, and starts handling
        what the relay pushes. Raises on failure. A connection still held (say one the
        relay closed) is closed and replaced, not leaked with its handler task."""
        if self.conn is not None or self._pump_task is not None:
            await self.disconnect()
        self._set_status("connecting")
        self.queue_done.clear()
        try:
            conn = await RelayConnection.open(self.profile.server, **kwargs)
        except (OSError, ConnectionLost) as exc:
            self._set_status("offline", str(exc))
            raise NotConnected(f"cannot reach {self.profile.server}: {exc}") from exc
        except Exception as exc:
            self._set_status("offline", str(exc))
            raise NotConnected(f"cannot reach {self.profile.server}: {exc}") from exc
        try:
            if not self.profile.registered:
                await conn.register(self.username, self.identity)
                self.profile.registered = True
                self._save_profile()
            else:
                await conn.login(self.username, self.identity)
        except BaseException:
            await conn.close()
            self._set_status("offline", "login failed")
            raise
        self.conn = conn
        # envelope ids older than any the relay could still redeliver (its TTL is shorter)
        self.store.forget_seen(int(self.clock()) - SEEN_RETENTION)
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(conn))
        try:
            await self.ensure_prekeys()  # before "online": others can reach us from here on
        except (RelayError, ConnectionLost) as exc:
            log.warning("prekey upload failed: %s", exc)
        self._set_status("online")
        await self.flush_outbox()

    async def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        for task in (self._pump_task, self._replenish_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._pump_task = None
        self._replenish_task = None
        self._set_status("offline")

    async def run(self, stop: asyncio.Event, max_backoff: float = 30.0) -> None:
        """Stays connected until `stop` is set: reconnects with exponential backoff and
        full jitter, and resumes from the relay's queue each time."""
        attempt = 0
        while not stop.is_set():
            try:
                await self.connect()
                attempt = 0
                assert self.conn is not None
                closed = asyncio.create_task(self.conn.closed.wait())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait([closed, stopped], return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                stopped.cancel()
            except (NotConnected, ConnectionLost, OSError) as exc:
                log.info("connection failed: %s", exc)
            except RelayError as exc:
                self._set_status("offline", str(exc))
                if exc.code in (ErrorCode.BAD_SIGNATURE, ErrorCode.UNKNOWN_USER,
                                ErrorCode.USERNAME_TAKEN):
                    raise
            await self.disconnect()
            if stop.is_set():
                break
            delay = random.uniform(0, min(max_backoff, 0.5 * 2 ** attempt))
            attempt += 1
            self._set_status("offline", f"reconnecting in {delay:.1f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _pump(self, conn: RelayConnection) -> None:
        try:
            while True:
                frame = await conn.pushes.get()
                if isinstance(frame, Deliver):
                    await self.receive(frame)
                elif isinstance(frame, QueueDone):
                    self.queue_done.set()
                elif isinstance(frame, PrekeysLow):
                    self._schedule_replenish()
        except (ConnectionLost, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("handling a pushed frame failed")
            await conn.close()

    def _schedule_replenish(self) -> None:
        if self._replenish_task is None or self._replenish_task.done():
            self._replenish_task = asyncio.get_running_loop().create_task(
                self._replenish_quietly())

    async def _replenish_quietly(self) -> None:
        try:
            await self.ensure_prekeys()
        except (ConnectionLost, NotConnected):
            pass  # done again at the next login
        except RelayError as exc:
            log.warning("prekey upload failed: %s", exc)

    def _require_conn(self) -> RelayConnection:
        if self.conn is None or self.conn.closed.is_set():
            raise NotConnected("not connected to the relay")
        return self.conn

    # -- prekeys (PQXDH section 3.2): replenish one-time keys, rotate the signed one

    async def ensure_prekeys(self) -> None:
        async with self._prekey_lock:
            await self._ensure_prekeys()

    async def _ensure_prekeys(self) -> None:
        conn = self._require_conn()
        now = self.clock()
        if (self.profile.signed_prekey_id == 0
                or now - self.profile.signed_prekey_created > SIGNED_PREKEY_ROTATION
                or self.profile.signed_prekey_server != self.profile.server):
            # also when the last upload was never confirmed (the connection dropped
            # after the local commit) or went to another relay: without a signed
            # prekey on the relay nobody can start a conversation with this user
            await self._rotate_signed_prekey(conn, now)
        one, kem = await conn.prekey_counts()
        while one < PREKEY_LOW or kem < PREKEY_LOW:
            add_one = min(PREKEY_UPLOAD_BATCH, max(0, PREKEY_TARGET - one))
            add_kem = min(PREKEY_UPLOAD_BATCH, max(0, PREKEY_TARGET - kem))
            if not add_one and not add_kem:
                break
            ones, kems = [], []
            with self.store.transaction():
                for _ in range(add_one):
                    key_id = self.profile.next_one_time_id
                    self.profile.next_one_time_id += 1
                    pair, record = make_one_time_prekey(key_id)
                    self._put_prekey("opk", key_id, pair.private, now)
                    ones.append(record)
                for _ in range(add_kem):
                    key_id = self.profile.next_kem_id
                    self.profile.next_kem_id += 1
                    kem_pair, kem_record = make_kem_prekey(self.identity, key_id)
                    self._put_prekey("kem_ot", key_id, kem_pair.seed, now)
                    kems.append(kem_record)
                self._save_profile()
            await conn.upload_one_time_prekeys(ones, kems)
            one, kem = one + len(ones), kem + len(kems)
        self._prune_old_signed_prekeys(now)

    async def _rotate_signed_prekey(self, conn: RelayConnection, now: float) -> None:
        with self.store.transaction():
            spk_id = self.profile.signed_prekey_id + 1
            lr_id = self.profile.next_kem_id
            spk_pair, spk = make_signed_prekey(self.identity, spk_id)
            lr_pair, lr = make_kem_prekey(self.identity, lr_id)
            self._put_prekey("spk", spk_id, spk_pair.private, now)
            self._put_prekey("kem_lr", lr_id, lr_pair.seed, now)
            self.profile.signed_prekey_id = spk_id
            self.profile.last_resort_id = lr_id
            self.profile.next_kem_id += 1
            self.profile.signed_prekey_created = now
            self.profile.signed_prekey_server = ""
            self._save_profile()
        await conn.upload_signed_prekeys(spk, lr)
        self.profile.signed_prekey_server = self.profile.server
        self._save_profile()

    def _prune_old_signed_prekeys(self, now: float) -> None:
        """Old signed and last-resort prekeys are kept for a grace period so that
        initial messages made from an older bundle still open."""
        for kind, current in (("spk", self.profile.signed_prekey_id),
                              ("kem_lr", self.profile.last_resort_id)):
            rows = self.store.db.execute("SELECT tag, data FROM prekeys WHERE kind=?",
                                         (kind,)).fetchall()
            for tag, data in rows:
                entry = json.loads(self.store._open(b"prekeys", bytes(tag), bytes(data)))
                if entry["id"] != current and now - entry["created"] > SIGNED_PREKEY_GRACE:
                    self.store.db.execute("DELETE FROM prekeys WHERE tag=?", (tag,))

    def _prekey_name(self, kind: str, key_id: int) -> tuple[bytes, bytes]:
        return b"prekey:" + kind.encode(), key_id.to_bytes(4, "big")

    def _put_prekey(self, kind: str, key_id: int, private: bytes, now: float) -> None:
        k, n = self._prekey_name(kind, key_id)
        self.store.put("prekeys", k, n, json.dumps(
            {"id": key_id, "private": private.hex(), "created": now}).encode(),
            extra={"kind": kind})

    def _get_prekey(self, kind: str, key_id: int) -> bytes:
        data = self.store.get("prekeys", *self._prekey_name(kind, key_id))
        if data is None:
            raise SessionSetupError(f"unknown {kind} prekey {key_id}")
        return bytes.fromhex(json.loads(data)["private"])

    def _lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        """Private prekeys by (kind, id), as the spec requires for the KEM key."""
        spk = X25519KeyPair.from_private(self._get_prekey("spk", msg.signed_prekey_id))
        kem_kind = "kem_ot" if msg.kem_kind is KemKind.ONE_TIME else "kem_lr"
        kem = KemKeyPair.from_seed(self._get_prekey(kem_kind, msg.kem_prekey_id))
        opk = None
        if msg.one_time_prekey_id is not None:
            opk = X25519KeyPair.from_private(self._get_prekey("opk", msg.one_time_prekey_id))
        return PrivatePrekeys(spk, kem, opk)

    # -- contacts, sessions and trust

    def contact(self, name: str) -> Contact | None:
        data = self.store.get("contacts", b"contact", name.encode())
        return None if data is None else Contact.decode(data)

    def contacts(self) -> list[Contact]:
        found = [Contact.decode(d) for d in self.store.all("contacts")]
        return sorted(found, key=lambda c: (-c.last_activity, c.name))

    def _save_contact(self, contact: Contact) -> None:
        self.store.put("contacts", b"contact", contact.name.encode(), contact.encode())

    def _session(self, name: str, pending: bool = False) -> Session | None:
        data = self.store.get("sessions", b"pending" if pending else b"session", name.encode())
        return None if data is None else Session.deserialize(data)

    def _save_session(self, name: str, session: Session, pending: bool = False) -> None:
        self.store.put("sessions", b"pending" if pending else b"session", name.encode(),
                       session.serialize())

    def _previous_session(self, name: str) -> Session | None:
        """The session a newer one from the same identity replaced: when both sides
        start a conversation at once, each replaces its own session with the one the
        other set up, and the peer may still be sending in the replaced one."""
        data = self.store.get("sessions", b"previous", name.encode())
        return None if data is None else Session.deserialize(data)

    def _promote_previous(self, name: str, previous: Session) -> None:
        """The peer is using the previous session: it becomes the current one (and
        the current one is kept as the previous), so replies go where the peer is."""
        current = self.store.get("sessions", b"session", name.encode())
        if current is not None:
            self.store.put("sessions", b"previous", name.encode(), current)
        self._save_session(name, previous)

    def safety_number(self, name: str) -> tuple[str, str]:
        """(the 60 digits formatted in 12 groups, the QR payload) for a contact's
        current (or, after a key change, new) identity key."""
        contact = self._need_contact(name)
        key = contact.pending_identity or contact.identity
        digits = safety_number(self.identity.public, self.username, key, name)
        return format_safety_number(digits), qr_payload(self.identity.public, self.username,
                                                        key, name)

    def verify(self, name: str) -> Contact:
        contact = self._need_contact(name)
        if contact.key_changed:
            raise KeyChangeBlocked(name)
        contact.trust = Trust.VERIFIED
        contact.was_verified = True
        self._save_contact(contact)
        self._add_notice(name, f"You marked {name} as verified.")
        self._defer(ContactEvent(contact))
        self._flush_events()
        return contact

    def accept_key(self, name: str) -> Contact:
        """Accepts a contact's new identity key: sending resumes (to the new key), and
        the contact is unverified until safety numbers are compared again."""
        contact = self._need_contact(name)
        if contact.pending_identity is None:
            raise ClientError(f"{name}'s identity key has not changed")
        with self.store.transaction():
            contact.identity = contact.pending_identity
            contact.pending_identity = None
            contact.trust = Trust.UNVERIFIED
            pending = self._session(name, pending=True)
            self.store.delete("sessions", b"previous", name.encode())
            if pending is not None:
                self._save_session(name, pending)
                self.store.delete("sessions", b"pending", name.encode())
            else:
                self.store.delete("sessions", b"session", name.encode())
            self._save_contact(contact)
            self._add_notice(name, f"You accepted {name}'s new identity key. Compare safety "
                             "numbers to verify it.")
            self._defer(ContactEvent(contact))
        self._flush_events()
        return contact

    def _need_contact(self, name: str) -> Contact:
        contact = self.contact(name)
        if name == UNKNOWN_SENDER:
            raise ClientError("envelopes that could not be opened have no known sender")
        if contact is None:
            raise UnknownContact(f"no contact named {name!r}")
        return contact

    def _key_changed(self, contact: Contact, new_identity: bytes) -> None:
        contact.pending_identity = new_identity
        verified = contact.trust is Trust.VERIFIED
        contact.trust = Trust.UNVERIFIED
        self._save_contact(contact)
        warning = (f"{contact.name}'s identity key has CHANGED. This can mean they reinstalled, "
                   "or that someone is intercepting. Nothing will be sent until you compare "
                   "safety numbers and accept the new key.")
        if verified:
            warning = f"{contact.name} WAS VERIFIED and is no longer: " + warning
        self._add_notice(contact.name, warning)
        self._defer(ContactEvent(contact))

    # -- messages and history

    def history(self, name: str, limit: int = 200, before: int | None = None) -> list[Message]:
        return [Message.decode(d, row) for row, d in self.store.messages(name, limit, before)]

    def _add_message(self, message: Message) -> Message:
        message.stored_at = message.stored_at or self.clock()
        message.row_id = self.store.add_message(message.contact, message.message_id or None,
                                                message.encode())
        self._defer(MessageEvent(message))
        return message

    def _update_message(self, message: Message) -> None:
        self.store.update_message(message.row_id, message.encode())
        self._defer(MessageEvent(message))

    def _add_notice(self, name: str, text: str) -> Message:
        return self._add_message(Message(name, Direction.NOTICE, text, State.NOTICE))

    def unread(self) -> list[Message]:
        """Every incoming message not yet marked read, oldest first."""
        out: list[Message] = []
        for contact in self.contacts():
            if contact.unread:
                out += [m for m in self.history(contact.name, max(200, contact.unread * 2))
                        if m.unread]
        return sorted(out, key=lambda m: m.row_id)

    async def mark_read(self, name: str) -> int:
        """Marks a conversation read and sends a READ receipt for what was unread."""
        contact = self.contact(name)
        if contact is None:
            return 0
        ids: list[bytes] = []
        with self.store.transaction():
            for message in self.history(name, max(200, contact.unread * 2)):
                if message.unread:
                    message.unread = False
                    self._update_message(message)
                    if message.direction is Direction.IN and message.message_id:
                        ids.append(message.message_id)
            contact.unread = 0
            self._save_contact(contact)
            if ids and not contact.key_changed:
                self._queue_receipt(name, ReceiptType.READ, ids)
            self._defer(ContactEvent(contact))
        self._flush_events()
        if ids:
            await self._flush_quietly()
        return len(ids)

    # -- sending

    async def send_text(self, name: str, text: str) -> Message:
        check_username(name)
        if name == self.username:
            raise ClientError("you cannot send messages to yourself")
        if len(text.encode("utf-8")) > MAX_TEXT:
            raise ClientError(f"message too long (at most {MAX_TEXT} bytes)")
        try:  # refused here, before the session advances, rather than by the relay
            envelope_size(len(Text(bytes(16), 0, text).encode()), self._max_envelope())
        except MessageTooLarge as exc:
            raise ClientError(f"message too long: {exc}") from exc
        contact = self.contact(name)
        if contact is not None and contact.key_changed:
            raise KeyChangeBlocked(name)
        session = self._session(name)
        if session is None or contact is None:
            conn = self._require_conn()
            try:
                bundle = await conn.fetch_bundle(name)
            except RelayError as exc:
                if exc.code == ErrorCode.UNKNOWN_USER:
                    raise UnknownContact(f"the relay has no user {name!r}") from exc
                if exc.code == ErrorCode.NO_PREKEYS:
                    raise ClientError(f"{name} has not published keys yet") from exc
                raise
            # The pump may have handled this peer's own first message while we waited
            # for the bundle: use what is stored now, not what was read before.
            contact = self.contact(name)
            if contact is not None and contact.key_changed:
                raise KeyChangeBlocked(name)
            current = self._session(name)
            session = current if current is not None and contact is not None else \
                self._start_session(name, contact, bundle)
            contact = self._need_contact(name)
        message = Message(name, Direction.OUT, text, State.SENDING,
                          message_id=os.urandom(16), sent_at_ms=int(self.clock() * 1000))
        plaintext = Text(message.message_id, message.sent_at_ms, text).encode()
        with self.store.transaction():
            envelope = self._encrypt(contact, session, plaintext)
            self._add_message(message)
            self.store.add_outbox(OutboxItem(name, envelope, message.row_id).encode())
            contact.last_activity = self.clock()
            self._save_contact(contact)
            self._defer(ContactEvent(contact))
        self._flush_events()
        await self._flush_quietly()
        return message

    def _start_session(self, name: str, contact: Contact | None,
                       bundle: PreKeyBundle) -> Session:
        if contact is not None and contact.identity != bundle.identity:
            with self.store.transaction():
                self._key_changed(contact, bundle.identity)
            self._flush_events()
            raise KeyChangeBlocked(name)
        try:
            session = Session.initiate(self.identity, bundle)  # verifies every signature
        except ProtocolError as exc:
            raise ClientError(f"{name}'s key bundle is invalid ({exc}); nothing was sent") \
                from exc
        with self.store.transaction():
            if contact is None:
                contact = Contact(name, bundle.identity, last_activity=self.clock())
                self._save_contact(contact)
                self._add_notice(name, f"Started an end-to-end encrypted conversation with "
                                 f"{name}. Compare safety numbers to verify their key.")
                self._defer(ContactEvent(contact))
            self._save_session(name, session)
        self._flush_events()
        return session

    def _encrypt(self, contact: Contact, session: Session, plaintext: bytes) -> bytes:
        kind, message = session.encrypt(plaintext)
        self._save_session(contact.name, session)
        return seal(contact.identity, SealedContent(self.username, kind, message))

    def _max_envelope(self) -> int:
        """The relay's announced max_envelope, or the largest size class offline."""
        return self.conn.limits.max_envelope if self.conn is not None else MAX_ENVELOPE_CLASS

    def _queue_receipt(self, name: str, receipt_type: ReceiptType, ids: list[bytes]) -> None:
        contact = self.contact(name)
        session = self._session(name)
        if contact is None or session is None or contact.key_changed:
            return
        # receipt = version, kind, type, u16 count, 16 bytes per id (PROTOCOL.md 9.1)
        per = max(1, min(500, (max_plaintext_len(self._max_envelope()) - 5) // 16))
        for start in range(0, len(ids), per):
            envelope = self._encrypt(
                contact, session, ReceiptContent(receipt_type, tuple(ids[start:start + per]))
                .encode())
            self.store.add_outbox(OutboxItem(name, envelope, None).encode())

    async def _flush_quietly(self) -> None:
        if self.conn is None:
            return
        with contextlib.suppress(ConnectionLost, NotConnected):
            await self.flush_outbox()

    async def flush_outbox(self) -> int:
        """Sends the outbox in order; each item leaves it only after SENT."""
        if self.conn is None:
            return 0
        sent = 0
        async with self._flush_lock:
            for row_id, data in self.store.outbox():
                item = OutboxItem.decode(data)
                conn = self._require_conn()
                try:
                    await conn.send([(item.recipient, item.envelope)])
                except RelayError as exc:
                    if exc.code in (ErrorCode.QUEUE_FULL, ErrorCode.RATE_LIMITED,
                                    ErrorCode.INTERNAL_ERROR):
                        log.info("relay deferred a send: %s", exc)
                        break
                    self._fail_outbox(row_id, item, exc.message)
                    continue
                with self.store.transaction():
                    self.store.delete_outbox(row_id)
                    self._set_state(item.message_row, State.SENT)
                self._flush_events()
                sent += 1
        return sent

    def _fail_outbox(self, row_id: int, item: OutboxItem, reason: str) -> None:
        with self.store.transaction():
            self.store.delete_outbox(row_id)
            if item.message_row is not None:
                data = self.store.message(item.message_row)
                if data is not None:
                    message = Message.decode(data, item.message_row)
                    message.state = State.FAILED
                    message.error = reason
                    self._update_message(message)
        self._flush_events()

    def _set_state(self, row_id: int | None, state: State) -> Message | None:
        """Moves an outgoing message forward (sending < sent < delivered < read)."""
        if row_id is None:
            return None
        data = self.store.message(row_id)
        if data is None:
            return None
        message = Message.decode(data, row_id)
        if STATE_ORDER.get(message.state, -1) >= STATE_ORDER[state]:
            return None
        message.state = state
        self._update_message(message)
        return message

    # -- receiving

    async def receive(self, deliver: Deliver) -> ReceiveResult:
        """Handles one delivered envelope: decrypt, store, commit, then acknowledge."""
        result = ReceiveResult()
        conn = self.conn
        if self.store.seen(deliver.envelope_id):
            if conn is not None:
                try:
                    await conn.ack([deliver.envelope_id])
                except (ConnectionLost, RelayError) as exc:
                    log.info("ack failed, the relay will redeliver: %s", exc)
            return result
        try:
            impostor = await self._check_claim(deliver.body)
        except (ConnectionLost, NotConnected):
            return result  # not acknowledged: the relay delivers it again
        try:
            with self.store.transaction():
                self._process(deliver, result, impostor)
                self.store.mark_seen(deliver.envelope_id, int(self.clock()))
        except BaseException:
            self._deferred.clear()
            raise
        if os.environ.get(FAULT_ENV) == "exit-before-ack":
            os._exit(75)
        self._flush_events()
        if conn is not None:
            try:
                await conn.ack([deliver.envelope_id])
            except (ConnectionLost, RelayError) as exc:
                log.info("ack failed, the relay will redeliver: %s", exc)
        await self._flush_quietly()
        return result

    async def _check_claim(self, body: bytes) -> str | None:
        """A sealed envelope names its sender, but only the sender says so. An initial
        message from an identity key this profile has not pinned for that name is
        checked against the key the relay has for the name; returns the name when
        they differ (someone is impersonating it), else None."""
        try:
            sealed = unseal(self.identity, body)
            if sealed.kind is not MessageKind.PREKEY:
                return None
            claimed = PreKeyMessage.decode(sealed.message).identity
        except ProtocolError:
            return None  # _process shows why it cannot be read
        contact = self.contact(sealed.sender)
        if contact is not None and claimed in (contact.identity, contact.pending_identity):
            return None
        conn = self._require_conn()
        try:
            registered = await conn.lookup_identity(sealed.sender)
        except RelayError as exc:
            if exc.code != ErrorCode.UNKNOWN_USER:
                raise ConnectionLost(f"identity lookup failed: {exc}") from exc
            registered = None
        return None if registered == claimed else sealed.sender

    def _process(self, deliver: Deliver, result: ReceiveResult,
                 impostor: str | None = None) -> None:
        def note(message: Message) -> None:
            self._add_message(message)
            result.messages.append(message)

        def unattributed(error: str) -> None:
            """A placeholder in the 'unknown sender' conversation, never dropped."""
            note(Message(UNKNOWN_SENDER, Direction.IN, "", State.UNDECRYPTABLE, error=error,
                         unread=True))
            unknown = self.contact(UNKNOWN_SENDER) or Contact(UNKNOWN_SENDER, b"")
            unknown.unread += 1
            unknown.last_activity = self.clock()
            self._save_contact(unknown)
            self._defer(ContactEvent(unknown))

        if impostor is not None:
            unattributed(f"rejected: a message claiming to come from {impostor} was made "
                         f"with an identity key that is not {impostor}'s (someone is "
                         "impersonating them)")
            return

        try:
            sealed = unseal(self.identity, deliver.body)
        except ProtocolError:
            # the sender's name is inside the seal
            unattributed("could not be decrypted: failed authentication (the envelope was "
                         "damaged or not sealed to this key; its sender is hidden inside "
                         "it)")
            return
        name = sealed.sender
        contact = self.contact(name)
        try:
            plaintext, contact = self._decrypt(name, contact, sealed)
        except DuplicateMessage:
            note(Message(name, Direction.NOTICE, "A duplicate of a message already received "
                         "was rejected and is not shown again (a replayed, or resent, "
                         "envelope).", State.NOTICE))
            return
        except TooManySkipped:
            note(Message(name, Direction.IN, "", State.UNDECRYPTABLE,
                         error="could not be decrypted: too many skipped messages"))
            return
        except (DecryptionFailed, SessionSetupError, DecodeError) as exc:
            reason = ("failed authentication" if isinstance(exc, DecryptionFailed)
                      else str(exc))
            if contact is None:  # no conversation to show it in: keep it findable
                unattributed(f"could not be decrypted: {reason} (it claims to come from "
                             f"{name}, with whom there is no conversation)")
                return
            note(Message(name, Direction.IN, "", State.UNDECRYPTABLE,
                         error=f"could not be decrypted: {reason}", unread=True))
            contact.unread += 1
            self._save_contact(contact)
            self._defer(ContactEvent(contact))
            return
        try:
            item = decode_content(plaintext)
        except DecodeError as exc:
            note(Message(name, Direction.IN, "", State.UNDECRYPTABLE,
                         error=f"unreadable content: {exc}"))
            return
        if isinstance(item, Text):
            message = Message(name, Direction.IN, item.text, State.RECEIVED,
                              message_id=item.message_id, sent_at_ms=item.sent_at_ms,
                              unread=True)
            note(message)
            contact.unread += 1
            contact.last_activity = self.clock()
            self._save_contact(contact)
            self._defer(ContactEvent(contact))
            self._queue_receipt(name, ReceiptType.DELIVERED, [item.message_id])
        else:
            state = State.READ if item.receipt_type is ReceiptType.READ else State.DELIVERED
            for mid in item.message_ids:
                for row_id, data in self.store.find_messages(mid):
                    found = Message.decode(data)
                    if found.direction is Direction.OUT and found.contact == name:
                        self._set_state(row_id, state)

    def _decrypt(self, name: str, contact: Contact | None, sealed: SealedContent
                 ) -> tuple[bytes, Contact]:
        """Decrypts with the right session, creating or replacing it for a new initial
        message, and handles first contact and key changes. Writes inside the caller's
        transaction."""
        session = self._session(name)
        before = session.missing if session is not None else 0
        if sealed.kind is MessageKind.PREKEY:
            msg = PreKeyMessage.decode(sealed.message)
            for pending in (False, True):
                existing = self._session(name, pending)
                if existing is not None and existing.base_key == msg.ephemeral:
                    gap_before = existing.missing
                    plaintext = existing.decrypt(sealed.kind, sealed.message)
                    self._save_session(name, existing, pending)
                    assert contact is not None
                    self._note_gap(name, gap_before, existing.missing)
                    return plaintext, contact
            previous = self._previous_session(name)
            if (contact is not None and previous is not None
                    and previous.base_key == msg.ephemeral):
                plaintext = previous.decrypt(sealed.kind, sealed.message)
                self._promote_previous(name, previous)
                return plaintext, contact
            used = self._used_base_keys()
            if msg.ephemeral.hex() in used:
                # an initial message that set up a session before (now replaced): a
                # replay, possible when the relay withheld one-time prekeys (PQXDH 4.2)
                raise DuplicateMessage("initial message already used")
            new, plaintext, consumed = Session.respond(self.identity, sealed.message,
                                                       self._lookup)
            used.append(msg.ephemeral.hex())
            self.store.put("settings", b"setting", b"base_keys",
                           json.dumps(used[-MAX_BASE_KEYS:]).encode())
            if consumed.one_time_prekey_id is not None:
                self.store.delete("prekeys", *self._prekey_name("opk",
                                                                 consumed.one_time_prekey_id))
            if consumed.kem_prekey_id is not None:
                self.store.delete("prekeys", *self._prekey_name("kem_ot",
                                                                 consumed.kem_prekey_id))
            if contact is None:
                contact = Contact(name, msg.identity, last_activity=self.clock())
                self._save_contact(contact)
                self._add_notice(name, f"{name} started an end-to-end encrypted conversation "
                                 "with you. Compare safety numbers to verify their key.")
                self._save_session(name, new)
            elif msg.identity == contact.identity:
                if session is not None:  # kept: the peer may still use it
                    self.store.put("sessions", b"previous", name.encode(),
                                   session.serialize())
                self._save_session(name, new)
            else:
                if msg.identity != contact.pending_identity:
                    self._key_changed(contact, msg.identity)
                self._save_session(name, new, pending=True)
            return plaintext, contact
        if contact is None or session is None:
            raise SessionSetupError("no session with this sender")
        try:
            plaintext = session.decrypt(sealed.kind, sealed.message)
        except DecryptionFailed as exc:
            pending_session = self._session(name, pending=True)
            if pending_session is not None:
                with contextlib.suppress(DecryptionFailed):
                    plaintext = pending_session.decrypt(sealed.kind, sealed.message)
                    self._save_session(name, pending_session, pending=True)
                    return plaintext, contact
            previous = self._previous_session(name)
            if previous is not None:
                with contextlib.suppress(DecryptionFailed):
                    plaintext = previous.decrypt(sealed.kind, sealed.message)
                    self._promote_previous(name, previous)
                    return plaintext, contact
            raise exc
        self._save_session(name, session)
        self._note_gap(name, before, session.missing)
        return plaintext, contact

    def _used_base_keys(self) -> list[str]:
        data = self.store.get("settings", b"setting", b"base_keys")
        return [] if data is None else list(json.loads(data))

    def _note_gap(self, name: str, before: int, after: int) -> None:
        """A message whose counter skips ahead stores keys for the ones in between:
        those have not arrived (yet), and the user is told so."""
        if after > before:
            gap = after - before
            self._add_notice(name, f"{gap} earlier message{'s' if gap > 1 else ''} from "
                             f"{name} {'have' if gap > 1 else 'has'} not arrived (the message "
                             "counters show a gap).")


def passphrase_from_env(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8")
