"""The client library: where the secrets live. The CLI and the chat app are thin
views over `Client`, which composes the parts (docs/CLIENT.md):

- inbox.py: receiving (unseal once, one session record load and save per message);
- outbox.py: sending, in order, several envelopes per SEND;
- prekeys.py: prekey upkeep; trust.py: contacts, verification, key changes;
- failures.py: decryption errors sent to contacts, held-back messages after a key change;
- history.py: the chat history; events.py: what views are told; store.py: the
  encrypted store's typed repositories; errors.py: the one ClientError tree.

Guarantees:
- a received message, the new ratchet state, consumed prekeys and the receipts it
  triggers commit in one transaction *before* the envelope is acknowledged;
- an outgoing message is encrypted, stored and queued in one transaction, and leaves
  the outbox only when the relay acknowledged it;
- identity keys are pinned on first contact; a changed key blocks sending to that
  contact until the user accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from client import account
from client.capability import Capabilities
from client.certificates import (
    CHECK_INTERVAL,
    RETRY_DELAY,
    CertKeyChanged,
    SenderCertificates,
)
from client.connection import RelayConnection
from client.directory import MONITOR_INTERVAL, KeyDirectory, MonitorResult
from client.errors import (
    ClientError,
    DirectoryRefused,
    KeyChangeBlocked,
    NotConnected,
    Refused,
    RelayRefused,
    UnknownContact,
    relay_errors,
)
from client.events import Event, Events, Listener, Status
from client.failures import FailureReports
from client.groups import Groups
from client.history import UNKNOWN_SENDER, History
from client.inbox import BeforeAck, Inbox, ReceiveResult
from client.link import RelayLink
from client.login import log_in
from client.outbox import Outbox
from client.prekeys import PrekeyKeeper
from client.reading import Reading
from client.records import Contact, Direction, Message, Profile, State
from client.store import (
    CertRepo,
    ContactRepo,
    DeliveryRepo,
    KdfParams,
    KtRepo,
    MessageRepo,
    OutboxRepo,
    PrekeyRepo,
    ProfileRepo,
    SessionRepo,
    Store,
)
from client.trust import TrustBook
from protocol.e2e.errors import MessageTooLarge
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.session import Session
from protocol.e2e.size_classes import MAX_ENVELOPE_CLASS, envelope_size
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import Deliver, ErrorCode, GroupDeliver, normalize_url
from protocol.wire.prekeys import PreKeyBundle
from protocol.wire.usernames import check_username

log = logging.getLogger("blindrelay.client")

SEEN_RETENTION = 60 * 24 * 3600
MAX_TEXT = 60_000

__all__ = ["MAX_TEXT", "UNKNOWN_SENDER", "Client", "ClientError", "Event", "KeyChangeBlocked",
           "NotConnected", "ReceiveResult", "Refused", "RelayRefused", "UnknownContact"]


class Client:
    def __init__(self, store: Store, home: Path, clock: Callable[[], float] = time.time,
                 before_ack: BeforeAck | None = None) -> None:
        self.store = store
        self.home = home
        self.clock = clock
        self.before_ack = before_ack
        self.profiles = ProfileRepo(store)
        profile = self.profiles.load()
        if profile is None:
            raise ClientError("the profile holds no identity; run 'blindrelay init' again")
        self.profile = profile
        identity = IdentityKeyPair.from_seed(profile.identity_seed)
        clock = self._now  # the parts read the time through the client: tests replace it
        self.events = Events()
        self.sessions = SessionRepo(store, self.profiles)
        self.messages = History(MessageRepo(store), self.events, clock)
        self.directory = KeyDirectory(store, KtRepo(store), self.messages, self.events, home,
                                      lambda: self.profile.server, lambda: self.username,
                                      lambda: self.identity.public, clock)
        self.kt_monitor_interval = MONITOR_INTERVAL
        """Seconds between owner-monitoring passes while connected (tests shorten it)."""
        self._monitor_task: asyncio.Task[None] | None = None
        self.trust = TrustBook(store, ContactRepo(store), self.sessions, self.messages,
                               self.events, identity, lambda: self.username, clock,
                               self.directory)
        self.prekeys = PrekeyKeeper(store, PrekeyRepo(store), self.profiles, profile,
                                    identity, clock)
        self.certificates = SenderCertificates(store, CertRepo(store), self.events,
                                               lambda: self.profile.server,
                                               lambda: self.username,
                                               lambda: self.identity.public, clock)
        """Sender certificates (PROTOCOL.md 20): the pinned key and our own."""
        self._certificate_task: asyncio.Task[None] | None = None
        self.certificate_check_interval = CHECK_INTERVAL
        """Seconds between looks at the certificate's age while connected (the wall
        clock, not a monotonic timer: a suspended laptop wakes to an old certificate)."""
        self.outbox = Outbox(store, OutboxRepo(store), self.messages, self.events,
                             lambda: self.username, self.max_envelope,
                             self.directory.head_note, self.certificates.current, clock)
        self.inbox = Inbox(store, self.sessions, self.trust, self.prekeys, self.messages,
                           self.outbox, self.events, identity, clock, self.certificates)
        self.failures = FailureReports(store, self.sessions, self.trust, self.outbox,
                                       self.messages, self.events, self._start_session, clock)
        self.reading = Reading(store, self.trust, self.sessions, self.messages, self.outbox)
        self.link = RelayLink(self.events, self)
        self.capabilities = Capabilities(store, DeliveryRepo(store), ContactRepo(store),
                                         lambda: self.profile.server)
        self.outbox.sealed = lambda: self.sealed_sending
        self.outbox.open_sending = lambda: self.link.open_sending(self.profile.server)
        self.outbox.capability_of = self.capabilities.of
        self.outbox.offer = self.capabilities.offer
        self.outbox.receipt_delay = lambda: self.receipt_delay
        self.outbox.contact = self.trust.contact
        self.outbox.sessions = self.sessions
        self._wake_task: asyncio.Task[None] | None = None
        self.groups = Groups(self)  # group chats (client/groups.py, PROTOCOL.md 21)

    @property
    def username(self) -> str:
        return self.profile.username

    @property
    def identity(self) -> IdentityKeyPair:
        return self.inbox.identity

    @identity.setter
    def identity(self, identity: IdentityKeyPair) -> None:
        """Replacing the identity (tests pin one before it is registered) reaches
        every part that signs or decrypts with it."""
        self.inbox.identity = self.trust.identity = self.prekeys.identity = identity

    def _now(self) -> float:
        return self.clock()

    @property
    def listeners(self) -> list[Listener]:
        return self.events.listeners

    # -- creating and opening a profile

    @classmethod
    def create(cls, home: Path, username: str, server: str, passphrase: bytes | None,
               params: KdfParams | None = None) -> Client:
        """A new local profile with a fresh identity (not yet registered)."""
        check_username(username)
        store = Store.create(home, passphrase, params)
        identity = IdentityKeyPair.generate()
        ProfileRepo(store).save(Profile(username, normalize_url(server), identity.seed))
        return cls(store, home)

    @classmethod
    def open(cls, home: Path, passphrase: bytes | None,
             before_ack: BeforeAck | None = None) -> Client:
        """`before_ack` runs after each received envelope committed and before it is
        acknowledged: the crash tests end the process there."""
        return cls(Store.open(home, passphrase), home, before_ack=before_ack)

    def close(self) -> None:
        self.store.close()

    def _save_profile(self) -> None:
        self.profiles.save(self.profile)

    def on_event(self, listener: Listener) -> None:
        self.events.listeners.append(listener)

    # -- the relay link (link.py) and what logging in means here

    @property
    def conn(self) -> RelayConnection | None:
        return self.link.conn

    @property
    def status(self) -> Status:
        return self.link.status

    @property
    def queue_done(self) -> asyncio.Event:
        return self.link.queue_done

    async def connect(self, **kwargs: Any) -> None:
        """Opens a connection, registers (first time) or logs in, and starts handling
        what the relay pushes. Raises NotConnected or RelayRefused on failure."""
        await self.link.connect(self.profile.server, **kwargs)

    async def disconnect(self) -> None:
        await self._stop_monitoring()
        await self._stop_waking()
        await self._stop_certificates()
        await self.groups.stop()  # the group upkeep of this connection
        await self.outbox.close_spare()
        await self.link.disconnect()

    async def run(self, stop: asyncio.Event, max_backoff: float = 30.0) -> None:
        """Stays connected until `stop` is set (reconnecting with backoff); raises
        RelayRefused when the relay refuses this profile for good."""
        await self.link.run(self.profile.server, stop, max_backoff)

    async def login(self, conn: RelayConnection,
                    receiving: Callable[[], None] = lambda: None) -> None:
        """REGISTER (the first time) or LOGIN, then the directory and certificate
        checks. After a LOGIN the queue is handled from the start (`receiving`): the
        relay pushes it all before it answers another request, and a client that
        held it unread to wait for those answers would hit its bound on pushes (and
        with this profile's pinned keys nothing in it needs the checks first). A new
        registration has no queue, and pins the keys before anything can arrive."""
        if not self.profile.registered:  # the directory's head before our own entry
            await self._start_directory(conn)
        with relay_errors():
            if not self.profile.registered:
                await account.register(conn, self.username, self.identity)
                self.profile.registered = True
                self._save_profile()
            else:
                await log_in(conn, self.username, self.identity)  # explains a refusal
                receiving()
                await self._start_directory(conn)
        await self._start_certificates(conn)

    async def ready(self) -> None:
        # envelope ids older than any the relay could still redeliver (its TTL is shorter)
        self.store.forget_seen(int(self.clock()) - SEEN_RETENTION)
        await self._publish_capability()
        try:
            await self.ensure_prekeys()  # before "online": others can reach us from here on
        except (RelayRefused, NotConnected) as exc:
            log.warning("prekey upload failed: %s", exc)
        await self.groups.ready()  # KeyPackage upkeep

    async def online(self) -> None:
        await self.failures.follow_up(self._require_conn())  # PROTOCOL.md 9.2
        await self.flush_outbox()
        await self.groups.online()  # Welcomes to send, self-updates due
        await self._stop_monitoring()
        self._monitor_task = asyncio.get_running_loop().create_task(
            self._monitor_loop(self._require_conn()))
        await self._stop_certificates()
        self._certificate_task = asyncio.get_running_loop().create_task(
            self._certificate_loop(self._require_conn()))

    # -- sender certificates (certificates.py)

    async def _start_certificates(self, conn: RelayConnection) -> None:
        """At each login, before anything is received or sent: pins the relay's
        certificate key the first time, else checks it, and fetches our certificate
        if half its lifetime is over. A failure is not fatal to the connection: a
        changed key was alerted, and without a valid certificate sealed envelopes
        wait in the outbox."""
        try:
            await self.certificates.start(conn)
        except CertKeyChanged:
            pass
        except (RelayRefused, Refused) as exc:
            log.warning("no sender certificate: %s", exc)

    async def _certificate_loop(self, conn: RelayConnection) -> None:
        """Replaces our certificate once half its lifetime is over, for as long as
        this connection lasts: on a timer, never because something is being sent."""
        while not conn.closed.is_set():
            delay = self.certificates.refresh_delay()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.closed.wait(),
                                           min(delay, self.certificate_check_interval))
                continue
            try:
                await self.certificates.refresh(conn)
            except NotConnected:
                return
            except ClientError as exc:
                log.info("sender certificate not renewed: %s", exc)
                if self.certificates.blocked is not None:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.closed.wait(), RETRY_DELAY)
                continue
            await self._flush_quietly()  # envelopes that waited for a certificate

    async def _stop_certificates(self) -> None:
        task, self._certificate_task = self._certificate_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the key directory (directory.py)

    async def _start_directory(self, conn: RelayConnection) -> None:
        """At each connection: pins the relay's directory keys the first time (before
        REGISTER, so monitoring starts before our own entry), else (once logged in, so
        a refused login is said alone) checks them and advances the head. A failure
        is not fatal to the connection: it was alerted, and every key check refuses
        until it is resolved."""
        try:
            await self.directory.start(conn, registered=self.profile.registered)
        except DirectoryRefused:
            pass
        except RelayRefused as exc:
            log.info("the relay has no key directory to verify keys with: %s", exc)

    async def kt_monitor(self) -> MonitorResult:
        """One owner-monitoring pass now (directory.py): alerts are also events."""
        return await self.directory.monitor(self._require_conn())

    async def _monitor_loop(self, conn: RelayConnection) -> None:
        """Owner monitoring after login and then every `kt_monitor_interval` seconds,
        for as long as this connection lasts."""
        while not conn.closed.is_set():
            try:
                await self.directory.monitor(conn)
            except NotConnected:
                return
            except ClientError as exc:  # alerted already (a KtAlert event)
                log.info("owner monitoring: %s", exc)
            except Exception:  # a library bug must not end the connection's other work
                log.exception("owner monitoring failed")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.closed.wait(), self.kt_monitor_interval)

    async def _stop_monitoring(self) -> None:
        task, self._monitor_task = self._monitor_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def max_envelope(self) -> int:
        """The relay's announced max_envelope, or the largest size class offline."""
        conn = self.conn
        return conn.limits.max_envelope if conn is not None else MAX_ENVELOPE_CLASS

    def _require_conn(self) -> RelayConnection:
        return self.link.require()

    async def ensure_prekeys(self) -> None:
        await self.prekeys.ensure(self._require_conn())

    # -- receiving

    async def receive(self, deliver: Deliver) -> ReceiveResult:
        """Handles one delivered envelope: decrypt, store, commit, then acknowledge."""
        return (await self.receive_page([deliver]))[0]

    async def receive_page(self, delivers: list[Deliver]) -> list[ReceiveResult]:
        """Handles delivered envelopes in order: a run of one-to-one envelopes is
        decrypted, committed (one transaction) and acknowledged (one ACK) together
        (inbox.py); group envelopes one by one (groups.py). Then the decryption
        errors, one flush of the outbox (the receipts) and the gossip checks."""
        results: list[ReceiveResult] = []
        run: list[Deliver] = []
        for deliver in [*delivers, None]:
            if deliver is not None and not isinstance(deliver, GroupDeliver):
                run.append(deliver)
                continue
            if run:
                got = await self.inbox.receive_page(run, self.conn, self.before_ack)
                # None: not acknowledged, the relay delivers it again
                results.extend(r if r is not None else ReceiveResult() for r in got)
                run = []
            if deliver is not None:  # before the inbox: not a sealed envelope
                await self.groups.receive(deliver, self.conn, self.before_ack)
                results.append(ReceiveResult())
        await self.failures.send([r for result in results for r in result.reports])
        await self._flush_quietly()
        for result in results:
            for sender, head in result.gossip:  # the contact's directory head (19.8)
                await self._check_gossip(sender, head)
        return results

    async def _check_gossip(self, sender: str, head: bytes) -> None:
        """A contact's head must be in our history of the directory: a fork found here
        is alerted with its evidence (KeyDirectory.gossip); anything else that stops
        the check (no connection, a refusal) waits for the contact's next message."""
        conn = self.conn
        if conn is None:
            return
        try:
            await self.directory.gossip(conn, sender, head)
        except ClientError as exc:
            log.info("a contact's directory head was not checked: %s", exc)

    # -- contacts and trust (trust.py)

    def contact(self, name: str) -> Contact | None:
        return self.trust.contact(name)

    def contacts(self) -> list[Contact]:
        return self.trust.contacts()

    def safety_number(self, name: str) -> tuple[str, str]:
        return self.trust.safety_number(name)

    def verify(self, name: str) -> Contact:
        return self.trust.verify(name)

    def accept_key(self, name: str) -> Contact:
        return self.failures.accept_key(name)

    # -- history

    def history(self, name: str, limit: int = 200, before: int | None = None) -> list[Message]:
        return self.messages.conversation(name, limit, before)

    def message(self, row_id: int) -> Message | None:
        return self.messages.messages.get(row_id)

    def unread(self) -> list[Message]:
        """Every incoming message not yet marked read, oldest first."""
        return self.reading.unread()

    async def mark_read(self, name: str, only: Collection[int] | None = None,
                        send: bool = True) -> int:
        """Marks a conversation read (with `only`: those of its messages, by row id,
        such as what `recv` printed) and sends a READ receipt for what was unread
        (with `send=False` the receipt waits in the outbox for the next flush)."""
        ids = self.reading.mark(name, only)
        self.events.flush()
        if ids and send:
            await self._flush_quietly()
        return len(ids)

    # -- sealed sending (capability.py, PROTOCOL.md 16.10)

    @property
    def sealed_sending(self) -> bool:
        """True (the default): envelopes go in SEALED_SENDs on a connection that never
        logs in; False: every envelope by SEND on the logged-in connection. Kept in
        the profile."""
        return self.capabilities.state().sealed_sending

    @sealed_sending.setter
    def sealed_sending(self, value: bool) -> None:
        delivery = self.capabilities.state()
        delivery.sealed_sending = bool(value)
        self.capabilities.save(delivery)

    @property
    def receipt_delay(self) -> float:
        """0 (the default): automatic DELIVERED and READ receipts go at once; D > 0:
        each waits a random 0 .. D seconds (kept in the outbox across restarts). Kept
        in the profile."""
        return self.capabilities.state().receipt_delay

    @receipt_delay.setter
    def receipt_delay(self, value: float) -> None:
        if not value >= 0 or value == float("inf"):
            raise Refused("the receipt delay is a number of seconds, 0 or more")
        delivery = self.capabilities.state()
        delivery.receipt_delay = float(value)
        self.capabilities.save(delivery)

    @property
    def allow_anyone(self) -> bool:
        """Whether strangers (without our capability) may send to us sealed (off by
        default, as Signal's "allow from anyone")."""
        return self.capabilities.state().allow_anyone

    async def set_allow_anyone(self, value: bool) -> None:
        delivery = self.capabilities.state()
        delivery.allow_anyone = bool(value)
        self.capabilities.save(delivery)
        if self.conn is not None:
            await self._publish_capability()

    async def rotate_capability(self, cut: Collection[str] = ()) -> int:
        """A new delivery capability: the relay is given its hash (now if connected,
        else at the next login) and every contact except those in `cut` is given the
        capability itself; the contacts cut off keep only the old one, which the relay
        refuses from now on (their envelopes then come by SEND, unsealed, and still
        arrive). Returns how many contacts it was queued for."""
        for name in cut:
            if self.contact(name) is None:
                raise UnknownContact(f"no contact {name!r}")
        self.capabilities.rotate(cut)
        given = 0
        with self.store.transaction():
            for contact in self.contacts():
                record = self.sessions.load(contact.name)
                capability = self.capabilities.offer(contact)
                if capability is None:
                    continue
                if self.outbox.queue_content(contact, record, capability):
                    self.sessions.save(contact.name, record)
                    given += 1
                else:  # no session yet: given with the first thing sent to them
                    contact.capability_given = 0
                    self.trust.save(contact)
        if self.conn is not None:
            await self._publish_capability()  # before the contacts can use it
            await self._flush_quietly()
        return given

    async def restore_contact(self, name: str) -> None:
        """Undoes a cut: `name` is given our current capability at once."""
        contact = self.capabilities.restore(name)
        if contact is None:
            raise UnknownContact(f"no contact {name!r}")
        with self.store.transaction():
            record = self.sessions.load(name)
            capability = self.capabilities.offer(contact)
            if capability is not None and self.outbox.queue_content(contact, record,
                                                                    capability):
                self.sessions.save(name, record)
        await self._flush_quietly()

    async def _publish_capability(self) -> None:
        """SET_CAPABILITY if the relay does not hold the current one (each login)."""
        conn = self.conn
        if conn is None or conn.username is None:
            return
        try:
            await self.capabilities.publish(conn)
        except (RelayRefused, NotConnected) as exc:
            log.warning("the relay did not take our delivery capability: %s", exc)

    # -- sending (outbox.py)

    async def send_text(self, name: str, text: str) -> Message:
        try:
            check_username(name)
        except ProtocolError as exc:
            raise Refused(str(exc)) from exc
        if name == self.username:
            raise Refused("you cannot send messages to yourself")
        if len(text.encode("utf-8")) > MAX_TEXT:
            raise Refused(f"message too long (at most {MAX_TEXT} bytes)")
        message = Message(name, Direction.OUT, text, State.SENDING,
                          message_id=os.urandom(16), sent_at_ms=int(self.clock() * 1000))
        plaintext = self.outbox.text(message.message_id, message.sent_at_ms, text)
        try:  # refused here, before the session advances, rather than by the relay
            envelope_size(len(plaintext), self.max_envelope())
        except MessageTooLarge as exc:
            raise Refused(f"message too long: {exc}") from exc
        if self.certificates.blocked is not None:
            raise CertKeyChanged(self.certificates.blocked)
        contact = self.contact(name)
        if contact is not None and contact.key_changed:
            raise KeyChangeBlocked(name)
        record = None if contact is None else self.sessions.load(name)
        if contact is None or record is None or record.current is None:
            await self._start_session(name)  # (what was read before it is read again)
            contact, record = self.trust.need(name), self.sessions.load(name)
            # ... and the directory head the text carries may have advanced meanwhile
            plaintext = self.outbox.text(message.message_id, message.sent_at_ms, text)
        # one transaction, its COMMIT off the event loop; sent only once durable
        async with self.store.atransaction(then=self.events.flush):
            assert record.current is not None
            item = self.outbox.encrypt(contact, record.current, plaintext)
            self.sessions.save(name, record)
            item.message_row = self.messages.add(message).row_id
            self.outbox.queue(item)
            contact.last_activity = self.clock()
            self.trust.save(contact)
        await self._flush_quietly()
        return message

    async def _start_session(self, name: str) -> None:
        """Fetches the bundle and sets a session up (PQXDH), pinning a new contact."""
        conn = self._require_conn()
        try:
            with relay_errors():
                bundle = await conn.fetch_bundle(name)
        except RelayRefused as exc:
            if exc.code == ErrorCode.UNKNOWN_USER:
                raise UnknownContact(f"the relay has no user {name!r}") from exc
            if exc.code == ErrorCode.NO_PREKEYS:
                raise Refused(f"{name} has not published keys yet") from exc
            raise
        try:  # the key the relay served, only if the key directory binds it to `name`
            await self.directory.confirm(conn, name, bundle.identity)
        except RelayRefused as exc:
            raise Refused(f"cannot check {name}'s key in the relay's key directory ({exc}); "
                          "nothing was sent") from exc
        # The pump may have handled this peer's own first message while we waited
        # for the bundle: use what is stored now, not what was read before.
        contact = self.contact(name)
        if contact is not None and contact.key_changed:
            raise KeyChangeBlocked(name)
        if contact is not None and self.sessions.load(name).current is not None:
            return
        self._new_session(name, contact, bundle)

    def _new_session(self, name: str, contact: Contact | None, bundle: PreKeyBundle) -> None:
        if contact is not None and contact.identity != bundle.identity:
            with self.store.transaction():
                self.trust.key_changed(contact, bundle.identity)
            self.events.flush()
            raise KeyChangeBlocked(name)
        try:
            session = Session.initiate(self.identity, bundle)  # verifies every signature
        except ProtocolError as exc:
            raise Refused(f"{name}'s key bundle is invalid ({exc}); nothing was sent") from exc
        with self.store.transaction():
            if contact is None:
                self.trust.first_contact(name, bundle.identity, "Started an end-to-end "
                                         f"encrypted conversation with {name}. Compare "
                                         "safety numbers to verify their key.")
            record = self.sessions.load(name)
            record.current = session
            self.sessions.save(name, record)
        self.events.flush()

    async def _flush_quietly(self) -> None:
        if self.conn is None:
            return
        with contextlib.suppress(NotConnected):
            await self.flush_outbox()

    async def flush_outbox(self) -> int:
        """Sends what is due in the outbox, in order; each item leaves it only after
        SENT. While connected, a flush is due again when the next delayed receipt is."""
        if self.conn is None:
            return 0
        try:
            return await self.outbox.flush(self._require_conn)
        finally:
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        """A flush when the earliest delayed receipt is due (one timer at a time)."""
        due = self.outbox.next_due()
        task = self._wake_task
        current = asyncio.current_task()
        if task is not None and task is not current and not task.done():
            task.cancel()
        self._wake_task = None
        if due is None or self.conn is None or self.conn.closed.is_set():
            return
        self._wake_task = asyncio.get_running_loop().create_task(
            self._wake(max(0.0, due - self.clock())))

    async def _wake(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._flush_quietly()
        except ClientError as exc:
            log.info("a delayed send failed: %s", exc)

    async def _stop_waking(self) -> None:
        task, self._wake_task = self._wake_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def passphrase_from_env(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8")
