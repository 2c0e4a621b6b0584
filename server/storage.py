"""The relay's one small storage interface.

Everything the relay keeps goes through these methods, so another backend can be
added without touching the protocol code, and docs/DATA.md can list it all.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.wire.prekeys import KemKind


class StorageError(Exception):
    """Base of the storage layer's refusals; the relay maps each to an error code."""


class UsernameTaken(StorageError):
    pass


class IdentityInUse(StorageError):
    pass


class UnknownUser(StorageError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")
        self.username = username


class NoPrekeys(StorageError):
    pass


class TooManyPrekeys(StorageError):
    pass


class QueueFull(StorageError):
    def __init__(self, username: str) -> None:
        super().__init__(f"the queue of {username!r} is full")
        self.username = username


class DirectoryOutOfStep(StorageError):
    """A directory update's index is not the next one in kt_updates: the relay's
    in-memory directory and the stored log disagree, so nothing is written."""


class CommitConflict(StorageError):
    """A commit of this group was already admitted for this epoch or a later one
    (PROTOCOL.md 21.3): the sender applies that one and retries."""

    def __init__(self, epoch: int, latest: int) -> None:
        super().__init__(f"a commit for epoch {latest} of this group was accepted first; "
                         f"apply it and commit again (this one is for epoch {epoch})")
        self.epoch, self.latest = epoch, latest


class NoKeyPackages(StorageError):
    pass


class StorageFull(StorageError):
    """The global disk budget: stored envelopes would count for more than it."""

    def __init__(self, budget: str) -> None:
        super().__init__(f"the relay's storage for envelopes is full ({budget}); try again "
                         "later")


ENVELOPE_OVERHEAD = 64
"""Bytes an envelope counts for beyond its body (its id, recipient, times and index
entries), so that a flood of tiny envelopes is not free against the budgets."""


RECEIVED_AT_GRANULARITY = 300
"""Seconds to which an envelope's stored (and delivered) received_at is rounded down
(docs/DATA.md, PROTOCOL.md 16.5): rows at rest, and DELIVERs, cannot order a message
and the receipt it triggers by time within one such window."""


def received_at_granularity(envelope_ttl: int) -> int:
    """The granularity a relay with this TTL uses: RECEIVED_AT_GRANULARITY, but never
    more than a quarter of the TTL (at least 1 s), so that rounding down, which ages an
    envelope by up to the granularity, cannot eat a short TTL (test setups)."""
    return max(1, min(RECEIVED_AT_GRANULARITY, envelope_ttl // 4))


def coarse_time(now: float, granularity: int = RECEIVED_AT_GRANULARITY) -> int:
    """`now` (Unix seconds) rounded down to a multiple of `granularity`."""
    return int(now) // granularity * granularity


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """One queued envelope. `seq` orders its recipient's queue and nothing else: it is
    unrelated to any other recipient's seqs (docs/DATA.md)."""

    seq: int
    envelope_id: bytes
    recipient: str
    body: bytes
    received_at: int
    group: bool = False
    """A group message (PROTOCOL.md 21.3), pushed as GROUP_DELIVER; its body is
    stored once for all its recipients."""


@dataclass(frozen=True, slots=True)
class DirectoryUpdate:
    """One row of kt_updates (docs/DATA.md): the update at log index `index` set
    `username`'s binding to `value` (protocol.wire.kt.directory.Binding's encoding)
    behind a commitment with `opening` (16 random bytes). Kept forever, append-only:
    the directory's log is rebuilt from these rows at start (PROTOCOL.md 19.10)."""

    index: int
    username: str
    value: bytes
    opening: bytes


@dataclass(frozen=True, slots=True)
class BundleParts:
    """The stored records a bundle is assembled from, and what is left afterwards."""

    identity: bytes
    signed_prekey: bytes
    kem_kind: KemKind
    kem_prekey: bytes
    one_time_prekey: bytes | None
    one_time_left: int
    kem_one_time_left: int


T = TypeVar("T")

_THEN_TASKS: set[asyncio.Task[Any]] = set()
"""The default callback forms' tasks, held until they finish."""

Done = Callable[[T | None, BaseException | None], None]
"""Told (result, None) once a write has durably committed, or (None, the exception)."""


class Storage(abc.ABC):
    """Async storage API. Every mutating call returns only after it is durably
    committed.

    The two writes the relay makes per envelope also come in a callback form
    (`store_envelopes_then`, `delete_envelopes_then`): the same write, its caller told
    by a callback once it committed instead of awaiting, so the relay pipelines a
    connection's SENDs and quiet ACKs without a task each. The defaults here run the
    awaitable form in a task; a backend that group-commits (SqliteStorage) answers a
    whole group from one callback instead."""

    def _then(self, write: Coroutine[Any, Any, T], done: Done[T]) -> None:
        tasks = _THEN_TASKS
        task = asyncio.get_running_loop().create_task(write)
        tasks.add(task)

        def finished(task: asyncio.Task[T]) -> None:
            tasks.discard(task)
            if task.cancelled():
                done(None, asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                done(None, exc)
            else:
                done(task.result(), None)

        task.add_done_callback(finished)

    def store_envelopes_then(
        self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
        max_stored_bytes: int, max_stored_envelopes: int,
        done: Done[list[StoredEnvelope]],
    ) -> None:
        """store_envelopes, its outcome passed to `done` once committed."""
        self._then(self.store_envelopes(envelopes, now, max_queue, max_stored_bytes,
                                        max_stored_envelopes), done)

    def delete_envelopes_then(self, recipient: str, envelope_ids: list[bytes],
                              done: Done[int]) -> None:
        """delete_envelopes, its outcome passed to `done` once committed."""
        self._then(self.delete_envelopes(recipient, envelope_ids), done)

    @abc.abstractmethod
    async def register(self, username: str, identity: bytes,
                       update: DirectoryUpdate | None = None) -> None:
        """Raises UsernameTaken or IdentityInUse. `update` (the directory's REGISTER or
        RESET for the name) is appended in the same transaction, or neither is
        stored; DirectoryOutOfStep if its index is not the next one."""

    @abc.abstractmethod
    async def identity(self, username: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete_account(self, username: str,
                             update: DirectoryUpdate | None = None) -> int:
        """Deletes the account, its prekeys and every envelope queued for it, in one
        transaction; returns how many envelopes went with it. Raises UnknownUser.
        Nothing of the account is kept: its name is free again (docs/DATA.md). The
        directory's DELETE `update` is appended in the same transaction; the
        directory's log keeps the name's past updates (they are public, 19.10)."""

    @abc.abstractmethod
    async def accounts(self) -> list[tuple[str, bytes]]:
        """(username, identity key) of every account, for the directory's check at
        start that it binds exactly the registered accounts."""

    @abc.abstractmethod
    async def directory_updates(self) -> list[DirectoryUpdate]:
        """Every stored directory update, in log order."""

    async def directory_updates_since(self, index: int) -> list[DirectoryUpdate]:
        """The stored directory updates at log index `index` and beyond, in log order:
        how a relay process catches up with updates another process appended
        (server/cluster.py). Backends should override this with a range query."""
        return [u for u in await self.directory_updates() if u.index >= index]

    @contextlib.asynccontextmanager
    async def directory_lock(self) -> AsyncIterator[None]:
        """Held while a directory update is computed and written, so that relay
        processes sharing this storage append one at a time, each after catching up
        (server/cluster.py). This default serialises the users of this one storage
        object (one process, or relays modelled in one test process); a backend that
        several processes share must override it with a lock they all see (an
        advisory lock on PostgreSQL)."""
        lock = self.__dict__.get("_directory_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_directory_lock", asyncio.Lock())
        async with lock:
            yield

    @abc.abstractmethod
    async def append_directory_updates(self, updates: list[DirectoryUpdate]) -> None:
        """Appends updates that change no account (bringing a directory in line with
        accounts stored before it existed), all or none."""

    @abc.abstractmethod
    async def set_capability(self, username: str, capability_hash: bytes,
                             allow_anyone: bool, set_at: int) -> None:
        """Replaces the account's delivery capability (PROTOCOL.md 16.10): one row per
        account, deleted with it. Raises UnknownUser."""

    @abc.abstractmethod
    async def capability(self, username: str) -> tuple[bytes, bool] | None:
        """(SHA-256 of the capability, allow anyone) of an account, or None if it has
        set none or does not exist."""

    @abc.abstractmethod
    async def set_signed_prekeys(self, username: str, signed_prekey: bytes,
                                 last_resort_kem: bytes) -> None: ...

    @abc.abstractmethod
    async def add_one_time_prekeys(
        self,
        username: str,
        one_time: list[tuple[int, bytes]],
        kem_one_time: list[tuple[int, bytes]],
        max_each: int,
    ) -> tuple[int, int]:
        """Adds (or replaces, by id) one-time prekeys; returns the new counts.
        Raises TooManyPrekeys, adding nothing, if a kind would exceed max_each."""

    @abc.abstractmethod
    async def prekey_counts(self, username: str) -> tuple[int, int]: ...

    @abc.abstractmethod
    async def take_bundle(self, username: str) -> BundleParts:
        """Atomically removes one one-time prekey of each kind, if any is left.
        Raises UnknownUser or NoPrekeys."""

    @abc.abstractmethod
    async def store_envelopes(
        self, envelopes: list[tuple[str, bytes]], now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
    ) -> list[StoredEnvelope]:
        """Stores all or none, each with `now` as its received_at (the relay passes
        its coarse time: coarse_time). Each envelope's seq is above every seq its
        recipient's envelopes got before, in this process or stored, and says nothing
        about other recipients' envelopes. Raises UnknownUser, QueueFull, or
        StorageFull if the stored envelopes would count for more than max_stored_bytes
        (each counts its body plus ENVELOPE_OVERHEAD) or number more than
        max_stored_envelopes (0: no limit)."""

    @abc.abstractmethod
    async def store_group_message(
        self, recipients: list[str], body: bytes, now: int, max_queue: int,
        max_stored_bytes: int = 0, max_stored_envelopes: int = 0,
        commit: tuple[bytes, int] | None = None, forget_before: int = 0,
    ) -> list[StoredEnvelope]:
        """Stores `body` once and queues it for every recipient, all or none, with the
        limits of store_envelopes (the body counts once against the storage budget).
        `commit` = (SHA-256 of the group id, epoch) for a commit: raises CommitConflict
        if a commit of that group was admitted for that epoch or a later one, else
        records the epoch in the same transaction (group_epochs, docs/DATA.md); records
        not touched since `forget_before` are dropped first."""

    @abc.abstractmethod
    async def add_key_packages(self, username: str, key_packages: list[bytes],
                               last_resort: bool, max_count: int) -> int:
        """Adds one-time KeyPackages (TooManyPrekeys, adding nothing, beyond max_count)
        or replaces the last-resort one; returns how many one-time ones are kept."""

    @abc.abstractmethod
    async def take_key_package(self, username: str) -> bytes:
        """A one-time KeyPackage, deleted in the same transaction (each is handed out
        at most once), else the last-resort one (kept). Raises UnknownUser or
        NoKeyPackages."""

    @abc.abstractmethod
    async def queued(self, recipient: str, after_seq: int, limit: int,
                     not_before: int = 0) -> list[StoredEnvelope]:
        """The recipient's envelopes with seq > after_seq, in seq order, leaving out
        those received before `not_before` (expired, even if not yet swept)."""

    @abc.abstractmethod
    async def delete_envelopes(self, recipient: str, envelope_ids: list[bytes]) -> int:
        """Deletes those of the ids addressed to recipient; returns how many."""

    @abc.abstractmethod
    async def expire(self, before: int) -> int:
        """Deletes envelopes received before `before`; returns how many."""

    @abc.abstractmethod
    async def stored_bytes(self) -> int:
        """What the stored envelopes count for against max_stored_bytes."""

    @abc.abstractmethod
    async def close(self) -> None: ...
