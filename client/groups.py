"""Group chats (docs/PROTOCOL.md 21.4-21.6, issue 13 item 4): MLS groups on top of the
engine in protocol/e2e/mls, their state in the encrypted store, and the relay's
GROUP_SEND / GROUP_DELIVER frames.

Members and keys: a member's MLS signature key is its blindrelay identity key (the
Ed25519 seed signs both), and its credential is basic with identity = the username.
So a member's trust is exactly the one-to-one trust of that name: the key pinned for
the contact, checked in the key directory at first contact, verified by safety
number. A KeyPackage or a leaf that names another key than the pinned one is refused
(adding) or flagged like a key change (received).

Never lose, never desync (docs/CLIENT.md), as for one-to-one messages:
- a received group message, the new group state and the history lines it makes commit
  in one transaction before the envelope is acknowledged;
- an own commit is adopted only once the relay accepted it for its epoch (SENT); on
  COMMIT_CONFLICT it is dropped, the winner's commit (queued for us) is processed,
  and the operation is tried once more;
- an application message's new ratchet state is stored before it is sent.

Group messages travel on the logged-in connection: sealed sending (PROTOCOL.md 16.10)
does not cover groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from client.connection import ConnectionLost, RelayConnection, RelayError
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
from client.group_records import (
    GroupMessage,
    GroupRecord,
    GroupStatus,
    KeyPackagePool,
    StoredKeyPackage,
    conversation_key,
)
from client.lazy import lazy_module
from client.records import Direction, State, Trust
from protocol.e2e.content import Text, decode_content
from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.padding import pad, unpad
from protocol.wire import tls
from protocol.wire.errors import DecodeError, ProtocolError
from protocol.wire.frames import (
    Ack,
    ErrorCode,
    FetchKeyPackage,
    GroupDeliver,
    GroupSend,
    KeyPackageAnswer,
    Ok,
    Sent,
    UploadKeyPackages,
)
from protocol.wire.mls_header import GroupHeader, parse_group_header
from protocol.wire.usernames import check_username

if TYPE_CHECKING:
    from client.client import Client
    from protocol.e2e import groups as e2e_groups
    from protocol.e2e.mls import committing, framing, proposals, state
    from protocol.e2e.mls import group as mls_group
    from protocol.e2e.mls import key_package as mls_key_package
else:  # the MLS engine loads at the first group message or group command, not at start
    e2e_groups = lazy_module("protocol.e2e.groups")
    committing = lazy_module("protocol.e2e.mls.committing")
    framing = lazy_module("protocol.e2e.mls.framing")
    mls_key_package = lazy_module("protocol.e2e.mls.key_package")
    proposals = lazy_module("protocol.e2e.mls.proposals")
    state = lazy_module("protocol.e2e.mls.state")
    mls_group = lazy_module("protocol.e2e.mls.group")

log = logging.getLogger("blindrelay.client")

KEY_PACKAGE_TARGET = 20
"""One-time KeyPackages kept on the relay (plus one last-resort)."""
KEY_PACKAGE_LOW = 5
"""Below this many (counted locally) the pool is topped up after login."""
SELF_UPDATE_PERIOD = 7 * 24 * 3600.0
"""A member whose last commit is older than this commits a self-update (PCS)."""
CONFLICT_WAIT = 10.0
"""Seconds a commit that lost its epoch waits for the winner's commit to arrive."""
MAX_GROUP_TEXT = 60_000
MAX_ORPHANS = 100
ORPHAN_EXPIRY = 7 * 24 * 3600.0
"""Messages for a group not joined yet are kept this long for its Welcome."""
UPKEEP_WAIT = 30.0
"""Seconds the upkeep after login waits for the relay's queue to be handled."""


NOT_THEIR_KEY = "NOT THEIR KEY"
"""A member's trust when its leaf names a contact but holds neither the key pinned for
that contact nor a new key the key directory binds to the name: an impostor."""


class GroupNotFound(Refused):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    leaf: int
    key: bytes
    trust: str
    """"you", "verified", "unverified", "KEY CHANGED" (the name's identity key changed,
    not yet accepted), "NOT THEIR KEY" (the leaf names a contact but holds another key
    than theirs) or "unchecked" (no contact: the key could not be checked)."""


@dataclass(frozen=True)
class GroupView:
    group_id: bytes
    name: str
    epoch: int
    members: list[Member]
    status: GroupStatus
    unread: int
    last_activity: float
    epoch_authenticator: bytes = field(repr=False)

    @property
    def code(self) -> str:
        """The epoch authenticator as a code members compare (like safety numbers):
        equal codes mean the same group state, the same members, the same keys."""
        return e2e_groups.epoch_code(self.epoch_authenticator)


@dataclass(frozen=True)
class GroupEvent:
    """A group's history or state changed (told to views once committed)."""

    group_id: bytes
    message: GroupMessage | None = None


GroupListener = Callable[[GroupEvent], None]


def group_name_of(group: mls_group.Group) -> str:
    return e2e_groups.group_name(group.context.extensions)


def _check_group_name(name: str) -> str:
    try:
        return e2e_groups.check_group_name(name)
    except DecodeError as exc:
        raise Refused(str(exc)) from exc


def members_of(group: mls_group.Group) -> dict[int, tuple[str, bytes]]:
    """Leaf index -> (username, signature key) of every member."""
    out = {}
    for index, leaf in group.tree.leaves():
        try:
            name = leaf.credential.identity.decode("ascii")
        except UnicodeDecodeError:
            name = "?" + leaf.credential.identity.hex()
        out[index] = (name, leaf.signature_key)
    return out


def _pending_leave(group: mls_group.Group) -> bool:
    """Whether the group holds another member's proposal to remove itself."""
    return any(isinstance(p.body, proposals.Remove) and by.index == p.body.removed
               and p.body.removed != group.own_leaf for p, by in group.proposals.values())


def _valid_name(name: str) -> bool:
    try:
        check_username(name)
    except ProtocolError:
        return False
    return True


def _read_mls(data: bytes) -> framing.MLSMessage:
    r = tls.Reader(data)
    message = framing.MLSMessage.read(r)
    r.finish()
    return message


@dataclass
class _Plan:
    """What one received group message turns into, before it is stored."""

    record: GroupRecord | None = None
    lines: list[GroupMessage] = field(default_factory=list)
    new_names: list[tuple[str, bytes]] = field(default_factory=list)
    used_package: str | None = None
    commit_leave: bool = False
    resend_leave: bool = False
    orphan: bool = False
    """For a group not joined (yet): kept until its Welcome arrives."""
    joined: bytes | None = None
    """The group a Welcome joined."""


class Groups:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.store = client.store
        self.listeners: list[GroupListener] = []
        self._deferred: list[GroupEvent] = []
        self._lock = asyncio.Lock()
        self._epoch_changed = asyncio.Condition()
        self.self_update_period = SELF_UPDATE_PERIOD
        self._upkeep_task: asyncio.Task[None] | None = None

    # -- identity: the blindrelay identity key is the MLS signature key

    @property
    def identity(self) -> committing.Identity:
        return e2e_groups.member_identity(self.client.identity.seed, self.client.username)

    # -- the store

    def _index(self) -> list[bytes]:
        data = self.store.get("settings", b"mls", b"groups")
        return [] if data is None else [bytes.fromhex(h) for h in json.loads(data)]

    def _save_index(self, ids: list[bytes]) -> None:
        self.store.put("settings", b"mls", b"groups",
                       json.dumps([i.hex() for i in ids]).encode())

    def record(self, group_id: bytes) -> GroupRecord | None:
        data = self.store.get("settings", b"mls-group", group_id)
        return None if data is None else GroupRecord.decode(data)

    def _save(self, record: GroupRecord) -> None:
        with self.store.transaction():
            if record.group_id not in (ids := self._index()):
                self._save_index([*ids, record.group_id])
            self.store.put("settings", b"mls-group", record.group_id, record.encode())
        self._deferred.append(GroupEvent(record.group_id))

    def _pool(self) -> KeyPackagePool:
        data = self.store.get("settings", b"mls", b"key-packages")
        return KeyPackagePool() if data is None else KeyPackagePool.decode(data)

    def _save_pool(self, pool: KeyPackagePool) -> None:
        self.store.put("settings", b"mls", b"key-packages", pool.encode())

    def _add_line(self, line: GroupMessage) -> GroupMessage:
        line.stored_at = line.stored_at or self.client.clock()
        line.row_id = self.store.add_message(conversation_key(line.group_id),
                                             line.message_id or None, line.encode())
        self._deferred.append(GroupEvent(line.group_id, line))
        return line

    def _update_line(self, line: GroupMessage) -> None:
        self.store.update_message(line.row_id, line.encode())
        self._deferred.append(GroupEvent(line.group_id, line))

    def _flush(self) -> None:
        events, self._deferred = self._deferred, []
        for event in events:
            for listener in list(self.listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("group event listener failed")

    def _discard(self) -> None:
        self._deferred.clear()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self._discard()
            self.client.events.discard()
            raise
        self.client.events.flush()
        self._flush()

    # -- what views read

    def view(self, record: GroupRecord) -> GroupView:
        group = state.deserialize(record.state)
        members = []
        for index, (name, key) in sorted(members_of(group).items()):
            members.append(Member(name, index, key, self._trust(index, group, name, key)))
        return GroupView(record.group_id, group_name_of(group) or record.name, group.epoch,
                         members, record.status, record.unread, record.last_activity,
                         group.epoch_authenticator)

    def _trust(self, index: int, group: mls_group.Group, name: str, key: bytes) -> str:
        if index == group.own_leaf:
            return "you"
        contact = self.client.contact(name)
        if contact is None:
            return "unchecked"
        if contact.pending_identity == key or (contact.identity == key
                                               and contact.key_changed):
            return "KEY CHANGED"
        if contact.identity != key:
            return NOT_THEIR_KEY
        return "verified" if contact.trust is Trust.VERIFIED else "unverified"

    def all(self) -> list[GroupView]:
        views = []
        for group_id in self._index():
            record = self.record(group_id)
            if record is not None:
                views.append(self.view(record))
        return sorted(views, key=lambda v: (-v.last_activity, v.name))

    def find(self, ref: str) -> GroupView:
        """A group by its id (hex, or a prefix of at least 4 digits) or its name."""
        views = self.all()
        by_id = [v for v in views if len(ref) >= 4 and v.group_id.hex().startswith(ref.lower())]
        if len(by_id) == 1:
            return by_id[0]
        by_name = [v for v in views if v.name == ref]
        active = [v for v in by_name if v.status is not GroupStatus.REMOVED]
        if len(by_name) == 1:
            return by_name[0]
        if len(active) == 1:
            return active[0]
        if by_name or by_id:
            raise Refused(f"more than one group is called {ref!r}: name it by its id")
        raise GroupNotFound(f"no group {ref!r}")

    def history(self, group_id: bytes, limit: int = 200, before: int | None = None
                ) -> list[GroupMessage]:
        record = self.record(group_id)
        name = "" if record is None else record.name
        out = []
        for row, data in self.store.messages(conversation_key(group_id), limit, before):
            line = GroupMessage.decode(data, row)
            line.group_name = name
            out.append(line)
        return out

    def unread(self) -> list[GroupMessage]:
        out: list[GroupMessage] = []
        for view in self.all():
            if view.unread:
                out += [m for m in self.history(view.group_id, 1000) if m.unread]
        return out

    def mark_read(self, group_id: bytes, only: set[int] | None = None) -> int:
        with self._transaction():
            record = self.record(group_id)
            if record is None:
                return 0
            marked = 0
            for line in self.history(group_id, 1000):
                if line.unread and (only is None or line.row_id in only):
                    line.unread = False
                    self._update_line(line)
                    marked += 1
            record.unread = max(0, record.unread - marked) if only is not None else 0
            self._save(record)
        return marked

    # -- KeyPackages (PROTOCOL.md 21.2, 21.4)

    async def ensure_key_packages(self, conn: RelayConnection) -> None:
        """Tops the relay's pool up to KEY_PACKAGE_TARGET one-time packages when fewer
        than KEY_PACKAGE_LOW are left (counted here: a package leaves the count when a
        Welcome uses it), and keeps one last-resort package there. Private keys are
        stored before the upload; an upload that does not complete is repeated."""
        server = self.client.profile.server
        now = self.client.clock()
        with self._transaction():
            pool = self._pool()
            if pool.server != server:  # another relay: what the old one held is moot
                pool = KeyPackagePool(server)
            if pool.last_resort() is None:
                self._new_package(pool, True, now)
            if pool.one_time() < KEY_PACKAGE_LOW:
                for _ in range(KEY_PACKAGE_TARGET - pool.one_time()):
                    self._new_package(pool, False, now)
            self._save_pool(pool)
        waiting = {k: p for k, p in pool.packages.items() if not p.uploaded}
        if not waiting:
            return
        with relay_errors():
            for package in waiting.values():
                if package.last_resort:
                    await conn.request(UploadKeyPackages(True, (package.message,)), Ok)
            one_time = [(k, p) for k, p in waiting.items() if not p.last_resort]
            if one_time:
                try:
                    await conn.request(UploadKeyPackages(
                        False, tuple(p.message for _, p in one_time)), Ok)
                except RelayError as exc:
                    if exc.code != ErrorCode.TOO_MANY_PREKEYS:
                        raise
                    with self._transaction():  # the relay does not hold them
                        pool = self._pool()
                        for k, _ in one_time:
                            pool.packages.pop(k, None)
                        self._save_pool(pool)
                    one_time = []
        with self._transaction():
            pool = self._pool()
            for ref in waiting:
                if ref in pool.packages:
                    pool.packages[ref].uploaded = True
            self._save_pool(pool)

    def _new_package(self, pool: KeyPackagePool, last_resort: bool, now: float) -> None:
        secrets = committing.new_key_package(self.identity)
        if last_resort:
            for k in [k for k, p in pool.packages.items() if p.last_resort]:
                del pool.packages[k]
        pool.packages[secrets.key_package.ref().hex()] = StoredKeyPackage(
            framing.MLSMessage(framing.WireFormat.KEY_PACKAGE, secrets.key_package).encode(),
            secrets.init_private, secrets.encryption_private, last_resort, now)

    async def _fetch_key_package(self, conn: RelayConnection,
                                 name: str) -> mls_key_package.KeyPackage:
        """A member's KeyPackage, checked: it verifies, names `name`, and its key is the
        one pinned for `name` (checked in the key directory at first contact)."""
        try:
            with relay_errors():
                answer = await conn.request(FetchKeyPackage(name), KeyPackageAnswer)
        except RelayRefused as exc:
            if exc.code == ErrorCode.UNKNOWN_USER:
                raise UnknownContact(f"the relay has no user {name!r}") from exc
            if exc.code == ErrorCode.NO_KEY_PACKAGES:
                raise Refused(f"{name} has not published group keys yet (their client "
                              "uploads them when it next connects)") from exc
            raise
        try:
            message = _read_mls(answer.key_package)
            key_package = message.message
            if not isinstance(key_package, mls_key_package.KeyPackage):
                raise DecodeError("not a KeyPackage")
            key_package.verify()
            key_package.leaf_node.verify()
        except (ProtocolError, ValueError) as exc:
            raise Refused(f"{name}'s KeyPackage is invalid ({exc}); nothing was sent") from exc
        if key_package.leaf_node.credential.identity != name.encode("ascii"):
            raise Refused(f"the relay served a KeyPackage for {name} that names someone "
                          "else; nothing was sent")
        await self._check_key(conn, name, key_package.leaf_node.signature_key, block=True)
        return key_package

    async def _check_key(self, conn: RelayConnection | None, name: str, key: bytes,
                         block: bool) -> str | None:
        """The one-to-one trust of `name` applied to a member's key (21.4). The pinned
        key: fine. Another key: the key directory must bind `name` to it (as for a
        served prekey bundle); then it is `name`'s new key, a key change (raised with
        `block`, else flagged and returned as a warning); if it does not, the member is
        not `name` at all (raised with `block`; else a warning in the group only, so
        no member can make us doubt a contact by claiming their name). A name never
        seen has its key checked in the directory and pinned."""
        contact = self.client.contact(name)
        if contact is not None and contact.identity == key:
            if contact.key_changed and block:
                raise KeyChangeBlocked(name)
            return None
        changed = (f"{name}'s identity key changed (the key directory confirms the new "
                   "one): compare safety numbers before trusting what they write")
        if contact is not None and contact.pending_identity == key:
            if block:
                raise KeyChangeBlocked(name)
            return changed
        if conn is None:
            raise NotConnected("not connected to the relay")
        try:
            await self.client.directory.confirm(conn, name, key, warn=block)
        except DirectoryRefused:
            if block:
                raise
            return (f"A member calls itself {name}, but the key directory does not bind "
                    f"{name} to its key: what it writes is not from {name}.")
        with self._transaction():
            contact = self.client.contact(name)
            if contact is None:
                self.client.trust.first_contact(
                    name, key, f"{name} is in a group with you; their key was checked in "
                    "the key directory. Compare safety numbers to verify it.")
                return None
            self.client.trust.key_changed(contact, key)
        if block:
            raise KeyChangeBlocked(name)
        return changed

    # -- operations

    async def create(self, name: str, members: list[str]) -> GroupView:
        name = _check_group_name(name)
        names = list(dict.fromkeys(members))
        for member in names:
            self._check_member_name(member)
        conn = self.client.link.require()
        packages = [await self._fetch_key_package(conn, m) for m in names]
        async with self._lock:
            group = committing.create_group(self.identity,
                                            extensions=(e2e_groups.name_extension(name),))
            now = self.client.clock()
            record = GroupRecord(group.context.group_id, b"", last_activity=now,
                                 last_commit=now, name=name)
            pending = committing.commit(group, adds=packages)
            # the creator is alone at epoch 0: the commit has no one to go to
            with self._transaction():
                record.state = state.serialize(pending.group)
                joining = members_of(pending.group)
                if pending.welcome is not None:
                    record.pending_welcome = pending.welcome.encode()
                    record.welcome_to = [joining[i][0] for i in pending.added]
                self._save(record)
                self._add_line(GroupMessage(
                    record.group_id, "", Direction.NOTICE,
                    f"You created the group {name} with {', '.join(names) or 'no one'}.",
                    State.NOTICE, epoch=pending.group.epoch))
            await self._send_welcome(conn, record.group_id)
        return self.view(self.need(record.group_id))

    def _check_member_name(self, name: str) -> None:
        try:
            check_username(name)
        except ProtocolError as exc:
            raise Refused(str(exc)) from exc
        if name == self.client.username:
            raise Refused("you are in your own groups already")

    def need(self, group_id: bytes) -> GroupRecord:
        record = self.record(group_id)
        if record is None:
            raise GroupNotFound("no such group")
        return record

    def _active(self, group_id: bytes) -> tuple[GroupRecord, mls_group.Group]:
        record = self.need(group_id)
        if record.status is GroupStatus.REMOVED:
            raise Refused("you are no longer a member of this group")
        return record, state.deserialize(record.state)

    async def add(self, group_id: bytes, names: list[str]) -> GroupView:
        _, group = self._active(group_id)
        present = {n for n, _ in members_of(group).values()}
        for name in names:
            self._check_member_name(name)
            if name in present:
                raise Refused(f"{name} is in the group already")
        conn = self.client.link.require()
        packages = [await self._fetch_key_package(conn, n) for n in names]
        await self._commit(group_id, lambda g: committing.commit(g, adds=packages),
                           f"You added {', '.join(names)}.")
        return self.view(self.need(group_id))

    async def remove(self, group_id: bytes, name: str) -> GroupView:
        def build(group: mls_group.Group) -> committing.PendingCommit | None:
            leaf = next((i for i, (n, _) in members_of(group).items() if n == name), None)
            if leaf is None:
                return None  # gone already (the winner of a race removed them)
            if any(isinstance(p.body, proposals.Remove) and p.body.removed == leaf
                   for p, _ in group.proposals.values()):
                return committing.commit(group)  # they asked to leave: carried out
            return committing.commit(group, removes=[leaf])

        _, group = self._active(group_id)
        if name == self.client.username:
            raise Refused("to leave a group, use leave")
        if name not in {n for n, _ in members_of(group).values()}:
            raise Refused(f"{name} is not in the group")
        await self._commit(group_id, build, f"You removed {name}.")
        return self.view(self.need(group_id))

    async def rename(self, group_id: bytes, new_name: str) -> GroupView:
        new_name = _check_group_name(new_name)
        self._active(group_id)
        await self._commit(group_id, lambda g: committing.commit(
            g, extensions=e2e_groups.with_name(g.context.extensions, new_name)),
            f"You renamed the group to {new_name}.")
        return self.view(self.need(group_id))

    async def self_update(self, group_id: bytes) -> GroupView:
        """A commit with nothing but fresh keys for this member (post-compromise
        security: whoever copied the old state cannot follow past it)."""
        self._active(group_id)
        await self._commit(group_id, committing.commit,
                           "You updated your keys in this group (a self-update).")
        return self.view(self.need(group_id))

    async def leave(self, group_id: bytes) -> None:
        """Sends a Remove proposal for this member; another member commits it."""
        async with self._lock:
            record, group = self._active(group_id)
            conn = self.client.link.require()
            message = committing.leave(group)
            with self._transaction():
                record.state = state.serialize(group)
                record.status = GroupStatus.LEAVING
                self._save(record)
                self._add_line(GroupMessage(
                    group_id, "", Direction.NOTICE, "You asked to leave the group; the next "
                    "member online carries it out.", State.NOTICE, epoch=group.epoch))
            await self._group_send(conn, self._recipients(group), message.encode())

    def _recipients(self, group: mls_group.Group) -> list[str]:
        return [n for i, (n, _) in sorted(members_of(group).items()) if i != group.own_leaf]

    async def _group_send(self, conn: RelayConnection, recipients: list[str],
                          message: bytes) -> tuple[bytes, ...]:
        if not recipients:
            return ()
        with relay_errors():
            sent = await conn.request(GroupSend(tuple(recipients), message), Sent)
        return sent.envelope_ids

    async def _commit(self, group_id: bytes,
                      build: Callable[[mls_group.Group], committing.PendingCommit | None],
                      notice: str, attempts: int = 2) -> None:
        """An own commit: sent, adopted once SENT; on COMMIT_CONFLICT the winner's
        commit is awaited and processed and `build` runs once more on the new epoch.
        Until the relay answers, the commit waits in the record as unconfirmed, so a
        dropped connection cannot leave this member behind the group (21.6)."""
        for attempt in range(attempts):
            conn = self.client.link.require()
            async with self._lock:
                record, group = self._active(group_id)
                if record.unconfirmed:
                    raise Refused("an earlier change to this group is not confirmed by the "
                                  "relay yet; it is settled at the next connection")
                epoch = group.epoch
                try:
                    pending = build(group)
                except ProtocolError as exc:  # the engine's rules (RFC 9420 12.2)
                    raise Refused(f"the group does not allow this change: {exc}") from exc
                if pending is None:
                    return
                with self._transaction():
                    record.unconfirmed = state.serialize(pending.group)
                    record.unconfirmed_commit = pending.message.encode()
                    members = members_of(pending.group)
                    record.unconfirmed_welcome = (b"" if pending.welcome is None
                                                  else pending.welcome.encode())
                    record.unconfirmed_welcome_to = [members[i][0] for i in pending.added]
                    record.unconfirmed_notice = notice or self._own_notice(group,
                                                                           pending.group)
                    self._save(record)
                try:
                    await self._group_send(conn, self._recipients(group),
                                           record.unconfirmed_commit)
                except RelayRefused as exc:
                    with self._transaction():
                        record = self.need(group_id)
                        self._clear_unconfirmed(record)
                        self._save(record)
                    if exc.code != ErrorCode.COMMIT_CONFLICT:
                        raise
                    log.info("group commit lost its epoch to another member's")
                else:
                    with self._transaction():
                        self._adopt(self.need(group_id))
                    await self._send_welcome(conn, group_id)
                    await self._notify_epoch()
                    return
            if attempt + 1 < attempts:
                await self._wait_epoch(group_id, epoch)
        raise Refused("another member's change won the race twice; try again")

    def _own_notice(self, before: mls_group.Group, after: mls_group.Group) -> str:
        old, new = members_of(before), members_of(after)
        gone = [n for i, (n, _) in old.items() if new.get(i, ("", b""))[0] != n]
        if gone:
            return f"{', '.join(gone)} left the group (you carried it out)."
        return "You updated your keys in this group."

    @staticmethod
    def _clear_unconfirmed(record: GroupRecord) -> None:
        record.unconfirmed = record.unconfirmed_commit = record.unconfirmed_welcome = b""
        record.unconfirmed_welcome_to = []
        record.unconfirmed_notice = ""

    def _adopt(self, record: GroupRecord) -> mls_group.Group:
        """The relay accepted this member's commit: its state becomes the group's
        (the old one kept for late messages), its Welcome is queued."""
        group = state.deserialize(record.unconfirmed)
        record.previous_state, record.state = record.state, record.unconfirmed
        record.name = group_name_of(group)
        record.last_commit = record.last_activity = self.client.clock()
        if record.unconfirmed_welcome:
            record.pending_welcome = record.unconfirmed_welcome
            record.welcome_to = record.unconfirmed_welcome_to
        notice = record.unconfirmed_notice
        self._clear_unconfirmed(record)
        self._save(record)
        self._add_line(GroupMessage(record.group_id, "", Direction.NOTICE, notice,
                                    State.NOTICE, epoch=group.epoch))
        return group

    async def settle(self) -> None:
        """Commits sent without an answer (the connection dropped): once the queue is
        handled, each is sent again. SENT: it is the epoch's commit now. COMMIT_CONFLICT
        while the group is still at that epoch: the relay admitted it the first time
        (another member's winning commit would have been queued for us, and handled),
        so it is adopted. Anything else leaves it for the next connection."""
        conn = self.client.conn
        if conn is None:
            return
        for group_id in self._index():
            async with self._lock:
                record = self.record(group_id)
                if record is None or not record.unconfirmed:
                    continue
                group = state.deserialize(record.state)
                try:
                    await self._group_send(conn, self._recipients(group),
                                           record.unconfirmed_commit)
                except RelayRefused as exc:
                    if exc.code != ErrorCode.COMMIT_CONFLICT:
                        log.info("an unconfirmed group commit was refused: %s", exc)
                        with self._transaction():
                            self._clear_unconfirmed(record)
                            self._save(record)
                        continue
                except ClientError as exc:
                    log.info("an unconfirmed group commit waits: %s", exc)
                    return
                with self._transaction():
                    self._adopt(record)
                await self._send_welcome(conn, group_id)
            await self._notify_epoch()

    async def _notify_epoch(self) -> None:
        async with self._epoch_changed:
            self._epoch_changed.notify_all()

    async def _wait_epoch(self, group_id: bytes, epoch: int) -> None:
        """Waits (at most CONFLICT_WAIT) until the group moved past `epoch`: the
        winner's commit arrives in this member's queue like any group message."""
        def moved() -> bool:
            record = self.record(group_id)
            return record is None or record.status is GroupStatus.REMOVED or \
                state.deserialize(record.state).epoch > epoch
        async with self._epoch_changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._epoch_changed.wait_for(moved), CONFLICT_WAIT)

    async def _send_welcome(self, conn: RelayConnection, group_id: bytes) -> None:
        record = self.record(group_id)
        if record is None or not record.pending_welcome:
            return
        try:
            await self._group_send(conn, record.welcome_to, record.pending_welcome)
        except RelayRefused as exc:  # kept: it goes at the next connection
            log.warning("a group Welcome was refused: %s", exc)
            return
        with self._transaction():
            record = self.need(group_id)
            record.pending_welcome, record.welcome_to = b"", []
            self._save(record)

    async def send_text(self, group_id: bytes, text: str) -> GroupMessage:
        if not text:
            raise Refused("nothing to send")
        if len(text.encode("utf-8")) > MAX_GROUP_TEXT:
            raise Refused(f"message too long (at most {MAX_GROUP_TEXT} bytes)")
        conn = self.client.link.require()
        async with self._lock:
            record, group = self._active(group_id)
            for index, (name, key) in members_of(group).items():
                trust = self._trust(index, group, name, key)
                if trust == "KEY CHANGED":
                    raise KeyChangeBlocked(name)
                if trust == NOT_THEIR_KEY:
                    raise Refused(f"a member calls itself {name} but does not hold {name}'s "
                                  "key: remove it from the group before writing to it")
            line = GroupMessage(group_id, self.client.username, Direction.OUT, text,
                                State.SENDING, os.urandom(16),
                                int(self.client.clock() * 1000), epoch=group.epoch)
            message = committing.encrypt_application(
                group, pad(Text(line.message_id, line.sent_at_ms, text).encode()))
            with self._transaction():  # the ratchet moved: stored before it is sent
                record.state = state.serialize(group)
                record.last_activity = self.client.clock()
                self._save(record)
                self._add_line(line)
            try:
                await self._group_send(conn, self._recipients(group), message.encode())
            except ClientError as exc:
                line.state, line.error = State.FAILED, str(exc)
            else:
                line.state = State.SENT
            with self._transaction():
                self._update_line(line)
            if line.state is State.FAILED:
                raise Refused(f"the message was not sent: {line.error}")
            return line

    # -- upkeep at each connection

    async def ready(self) -> None:
        """After login (Client.ready): KeyPackage upkeep; a failure waits for the next
        login and never ends the connection's other work."""
        try:
            await self.ensure_key_packages(self.client.link.require())
        except (RelayRefused, NotConnected) as exc:
            log.warning("KeyPackage upload failed: %s", exc)

    async def online(self) -> None:
        """Once the relay's queue is handled: unconfirmed commits settled, Welcomes
        not yet sent, and self-updates due."""
        await self.stop()
        self._upkeep_task = asyncio.get_running_loop().create_task(self._upkeep_quietly())

    async def stop(self) -> None:
        task, self._upkeep_task = self._upkeep_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _upkeep_quietly(self) -> None:
        try:
            await self._upkeep()
        except asyncio.CancelledError:
            raise
        except Exception:  # a library bug must not end the connection's other work
            log.exception("group upkeep failed")

    async def _upkeep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.client.queue_done.wait(), UPKEEP_WAIT)
        conn = self.client.conn
        if conn is None or conn.closed.is_set():
            return
        try:
            await self.settle()
        except ClientError as exc:
            log.info("group upkeep: %s", exc)
        now = self.client.clock()
        for group_id in self._index():
            record = self.record(group_id)
            if record is None or record.status is GroupStatus.REMOVED:
                continue
            try:
                if record.pending_welcome:
                    await self._send_welcome(conn, group_id)
                if record.status is GroupStatus.ACTIVE and not record.unconfirmed and \
                        _pending_leave(state.deserialize(record.state)):
                    # a member asked to leave and nobody carried it out yet (the member
                    # who would have was away): whoever logs in first does
                    await self._commit(group_id, self._commit_pending, "", attempts=1)
                    record = self.need(group_id)
                if record.status is GroupStatus.ACTIVE and not record.unconfirmed and \
                        now - record.last_commit > self.self_update_period:
                    await self.self_update(group_id)
            except ClientError as exc:
                log.info("group upkeep: %s", exc)

    # -- receiving (GROUP_DELIVER)

    async def receive(self, deliver: GroupDeliver, conn: RelayConnection | None,
                      before_ack: Callable[[GroupDeliver], None] | None = None) -> bool:
        """Handles one group message; returns False when it was neither stored nor
        acknowledged (the relay delivers it again)."""
        if self.store.seen(deliver.envelope_id):
            await _ack(conn, deliver)
            return True
        live = conn if conn is not None and not conn.closed.is_set() else None
        async with self._lock:
            plan = self._plan(deliver.body)
            if not await self._check_keys(plan, live):
                return False
            with self._transaction():
                self._store_plan(plan)
                if plan.orphan:
                    self._keep_orphan(deliver.body)
                self.store.mark_seen(deliver.envelope_id, int(self.client.clock()))
            if before_ack is not None:
                before_ack(deliver)
            await _ack(conn, deliver)
            if plan.joined is not None:
                await self._replay_orphans(plan.joined, live)
        await self._notify_epoch()
        if plan.record is not None and live is not None:
            await self._after(plan, live)
        return True

    def _plan(self, body: bytes) -> _Plan:
        try:
            message = _read_mls(body)
            header = parse_group_header(body)
        except (DecodeError, ValueError):
            return _Plan()
        if message.wire_format == framing.WireFormat.WELCOME:
            return self._welcome(message)
        return self._handle(message, header)

    async def _check_keys(self, plan: _Plan, live: RelayConnection | None) -> bool:
        """New members' keys against the one-to-one trust of their names (21.4). False:
        not connected (the message is not acknowledged; the relay delivers it again)."""
        for name, key in plan.new_names:
            try:
                warning = await self._check_key(live, name, key, block=False)
            except NotConnected:
                return False
            except ClientError as exc:  # the relay would not answer the lookup
                warning = f"{name}'s key could not be checked in the key directory: {exc}"
            if warning is not None and plan.record is not None:
                plan.lines.append(GroupMessage(plan.record.group_id, "", Direction.NOTICE,
                                               warning, State.NOTICE))
        return True

    def _store_plan(self, plan: _Plan) -> None:
        if plan.record is not None:
            self._save(plan.record)
            epoch = state.deserialize(plan.record.state).epoch
            for line in plan.lines:
                line.epoch = line.epoch or epoch
                self._add_line(line)
        if plan.used_package is not None:
            pool = self._pool()
            used = pool.packages.get(plan.used_package)
            if used is not None and not used.last_resort:
                del pool.packages[plan.used_package]
                self._save_pool(pool)

    # -- messages that arrive before their group's Welcome

    def _orphans(self) -> list[dict[str, Any]]:
        data = self.store.get("settings", b"mls", b"orphans")
        return [] if data is None else list(json.loads(data))

    def _keep_orphan(self, body: bytes) -> None:
        """A message for a group this member has not joined (yet): a member who
        processed the commit that adds us may write before the adder's Welcome
        reaches the relay. Kept (at most MAX_ORPHANS, for ORPHAN_EXPIRY) and handled
        once the Welcome arrives."""
        now = self.client.clock()
        kept = [o for o in self._orphans() if now - o["at"] < ORPHAN_EXPIRY]
        kept.append({"body": body.hex(), "at": now,
                     "group": parse_group_header(body).group_id.hex()})
        self.store.put("settings", b"mls", b"orphans",
                       json.dumps(kept[-MAX_ORPHANS:]).encode())

    async def _replay_orphans(self, group_id: bytes, live: RelayConnection | None) -> None:
        for orphan in [o for o in self._orphans() if o["group"] == group_id.hex()]:
            plan = self._plan(bytes.fromhex(orphan["body"]))
            if not await self._check_keys(plan, live):
                return
            with self._transaction():
                self._store_plan(plan)
                self.store.put("settings", b"mls", b"orphans", json.dumps(
                    [o for o in self._orphans() if o != orphan]).encode())

    async def _after(self, plan: _Plan, conn: RelayConnection) -> None:
        assert plan.record is not None
        group_id = plan.record.group_id
        try:
            if plan.resend_leave:
                async with self._lock:
                    record, group = self._active(group_id)
                    message = committing.leave(group)
                    with self._transaction():
                        record.state = state.serialize(group)
                        self._save(record)
                    await self._group_send(conn, self._recipients(group), message.encode())
            if plan.commit_leave:
                await self._commit(group_id, self._commit_pending, "", attempts=1)
        except ClientError as exc:
            log.info("group follow-up: %s", exc)

    def _commit_pending(self, group: mls_group.Group) -> committing.PendingCommit | None:
        if not group.proposals:
            return None
        return committing.commit(group)

    def _welcome(self, message: framing.MLSMessage) -> _Plan:
        welcome = message.message
        pool = self._pool()
        plan = _Plan()
        for ref, package in pool.packages.items():
            key_package = _read_mls(package.message).message
            assert isinstance(key_package, mls_key_package.KeyPackage)
            if not any(s.new_member == key_package.ref() for s in welcome.secrets):  # type: ignore[attr-defined]
                continue
            try:
                group = mls_group.Group.join(welcome, key_package, package.init_private,  # type: ignore[arg-type]
                                   package.encryption_private, self.client.identity.seed)
            except (ProtocolError, ValueError) as exc:
                log.info("a group Welcome could not be opened: %s", exc)
                return plan
            plan.used_package = ref
            if self.record(group.context.group_id) is not None:
                return plan  # joined already (the Welcome came twice)
            plan.joined = group.context.group_id
            now = self.client.clock()
            name = group_name_of(group)
            plan.record = GroupRecord(group.context.group_id, state.serialize(group),
                                      unread=1, last_activity=now, last_commit=now,
                                      name=name)
            others = [m for i, m in sorted(members_of(group).items()) if i != group.own_leaf]
            plan.new_names = [(n, k) for n, k in others if _valid_name(n)]
            plan.lines.append(GroupMessage(
                group.context.group_id, "", Direction.NOTICE,
                f"You were added to the group {name} with "
                f"{', '.join(n for n, _ in others)}.", State.NOTICE, unread=True,
                epoch=group.epoch))
            return plan
        log.info("a group Welcome for none of this client's KeyPackages")
        return plan

    def _late(self, record: GroupRecord, message: framing.MLSMessage, plan: _Plan) -> _Plan:
        """An application message of the epoch before this one (sent before its sender
        processed the commit that ended it), read with that epoch's state."""
        previous = state.deserialize(record.previous_state)
        try:
            authenticated = previous.unprotect(message)
            body = authenticated.content.body
            item = decode_content(unpad(body)) if isinstance(body, bytes) else None
        except (mls_group.GroupError, DecryptionFailed, DecodeError, ValueError) as exc:
            plan.lines.append(GroupMessage(
                record.group_id, "", Direction.NOTICE,
                f"A late group message could not be read ({exc}).", State.NOTICE))
            return plan
        record.previous_state = state.serialize(previous)  # its key is used up
        if isinstance(item, Text):
            sender = members_of(previous).get(authenticated.content.sender.index, ("?", b""))[0]
            plan.lines.append(GroupMessage(record.group_id, sender, Direction.IN, item.text,
                                           State.RECEIVED, item.message_id, item.sent_at_ms,
                                           unread=True, epoch=previous.epoch))
            record.unread += 1
            record.last_activity = self.client.clock()
        return plan

    def _handle(self, message: framing.MLSMessage, header: GroupHeader) -> _Plan:
        plan = _Plan()
        record = self.record(header.group_id)
        if record is None:
            plan.orphan = True
            return plan
        if record.status is GroupStatus.REMOVED:
            return plan  # not a group of ours any more: acknowledged and dropped
        group = state.deserialize(record.state)
        plan.record = record
        if record.unconfirmed and header.epoch == group.epoch + 1:
            # our unanswered commit is the one the group moved on with
            group = self._adopt(record)
        if header.epoch + 1 == group.epoch and record.previous_state \
                and not header.is_commit:
            return self._late(record, message, plan)
        before = members_of(group)
        old_name = group_name_of(group)
        epoch = group.epoch
        leavers = {p.body.removed for p, by in group.proposals.values()
                   if isinstance(p.body, proposals.Remove) and by.index == p.body.removed}
        plan.record = record
        old_state = record.state
        try:
            authenticated = group.handle(message)
        except (mls_group.GroupError, DecryptionFailed, DecodeError, ValueError) as exc:
            plan.lines.append(GroupMessage(
                record.group_id, "", Direction.NOTICE,
                f"A group message could not be read ({exc}).", State.NOTICE, epoch=epoch))
            return plan
        record.state = state.serialize(group)
        if group.epoch != epoch:  # a commit: the old epoch stays for late messages
            record.previous_state = old_state
            if record.unconfirmed:  # another member's commit won that epoch
                self._clear_unconfirmed(record)
        sender_index = authenticated.content.sender.index
        sender = before.get(sender_index, ("?", b""))[0]
        body = authenticated.content.body
        now = self.client.clock()
        if isinstance(body, bytes):
            try:
                item = decode_content(unpad(body))
            except DecodeError as exc:
                plan.lines.append(GroupMessage(record.group_id, sender, Direction.IN, "",
                                               State.UNDECRYPTABLE, error=str(exc),
                                               epoch=epoch))
                return plan
            if isinstance(item, Text):
                plan.lines.append(GroupMessage(record.group_id, sender, Direction.IN,
                                               item.text, State.RECEIVED, item.message_id,
                                               item.sent_at_ms, unread=True, epoch=epoch))
                record.unread += 1
                record.last_activity = now
            return plan
        if isinstance(body, proposals.Proposal):
            if isinstance(body.body, proposals.Remove) and body.body.removed == sender_index:
                plan.lines.append(GroupMessage(record.group_id, "", Direction.NOTICE,
                                               f"{sender} asked to leave the group.",
                                               State.NOTICE, epoch=epoch))
                # the lowest other member carries it out at once; any later commit does too
                others = [i for i in before if i not in (sender_index,)]
                plan.commit_leave = bool(others) and min(others) == group.own_leaf
            return plan
        assert isinstance(body, proposals.Commit)
        if group.removed:
            left = record.status is GroupStatus.LEAVING
            record.status = GroupStatus.REMOVED
            plan.lines.append(GroupMessage(
                record.group_id, "", Direction.NOTICE,
                "You left the group." if left else f"{sender} removed you from the group.",
                State.NOTICE, unread=True, epoch=group.epoch))
            record.unread += 1
            return plan
        after = members_of(group)
        record.name = group_name_of(group)
        for index, (name, _) in before.items():
            if after.get(index, ("", b""))[0] != name:
                what = "left the group" if index in leavers else f"was removed by {sender}"
                plan.lines.append(GroupMessage(record.group_id, "", Direction.NOTICE,
                                               f"{name} {what}.", State.NOTICE,
                                               epoch=group.epoch))
        joined = [(n, k) for i, (n, k) in after.items()
                  if before.get(i, ("", b""))[0] != n]
        for name, _ in joined:
            plan.lines.append(GroupMessage(record.group_id, "", Direction.NOTICE,
                                           f"{sender} added {name}.", State.NOTICE,
                                           epoch=group.epoch))
        plan.new_names = [(n, k) for i, (n, k) in after.items()
                          if i != group.own_leaf and before.get(i) != (n, k)
                          and _valid_name(n)]
        if record.name != old_name:
            plan.lines.append(GroupMessage(record.group_id, "", Direction.NOTICE,
                                           f"{sender} renamed the group to {record.name}.",
                                           State.NOTICE, epoch=group.epoch))
        if not plan.lines:
            plan.lines.append(GroupMessage(record.group_id, "", Direction.NOTICE,
                                           f"{sender} updated their keys.", State.NOTICE,
                                           epoch=group.epoch))
        record.last_activity = now
        plan.resend_leave = record.status is GroupStatus.LEAVING
        return plan


async def _ack(conn: RelayConnection | None, deliver: GroupDeliver) -> None:
    if conn is None:
        return
    try:
        await conn.request(Ack((deliver.envelope_id,)), Ok)
    except (ConnectionLost, RelayError) as exc:
        log.info("ack failed, the relay will redeliver: %s", exc)


__all__ = ["GroupEvent", "GroupMessage", "GroupNotFound",
           "GroupStatus", "GroupView", "Groups", "Member", "group_name_of", "members_of"]
