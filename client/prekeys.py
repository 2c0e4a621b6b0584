"""Prekey upkeep (PQXDH section 3.2; docs/CLIENT.md "Sessions and keys"): one-time
prekeys replenished when few are left, the signed and last-resort prekeys rotated
weekly and their old private keys kept for a grace period; and the lookup an initial
message needs.

What the relay says about our prekeys is not trusted to cost us without bound (issue
9 item 13: a relay that always answered "none left" and pushed PREKEYS_LOW every 20 ms
made a client generate 6,800 ML-KEM keys): at most MAX_UNUSED_ONE_TIME unused one-time
private keys of each kind are kept (the oldest, handed out by the relay first and never
used, are deleted beyond it), a refused upload stops replenishing for REFUSED_BACKOFF
and deletes the keys it carried (the relay does not hold them), and the link
(client/link.py) answers PREKEYS_LOW at most once a minute."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from client.connection import RelayConnection
from client.errors import RelayRefused, relay_errors
from client.records import PrekeyKind, Profile
from client.store import PrekeyRepo, ProfileRepo, Store
from protocol.e2e.errors import SessionSetupError
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import Consumed, PrivatePrekeys
from protocol.wire.frames import ErrorCode
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey

PREKEY_TARGET = 100
PREKEY_LOW = 20
PREKEY_UPLOAD_BATCH = 50
SIGNED_PREKEY_ROTATION = 7 * 24 * 3600
SIGNED_PREKEY_GRACE = 30 * 24 * 3600
MAX_UNUSED_ONE_TIME = 2 * PREKEY_TARGET
"""Unused one-time private keys kept of each kind; the oldest beyond it are deleted."""
REFUSED_BACKOFF = 3600.0
"""After the relay refused an upload, no replenishing for this long (seconds)."""


class PrekeyKeeper:
    def __init__(self, store: Store, prekeys: PrekeyRepo, profiles: ProfileRepo,
                 profile: Profile, identity: IdentityKeyPair, clock: Callable[[], float]
                 ) -> None:
        self.store = store
        self.repo = prekeys
        self.profiles = profiles
        self.profile = profile
        self.identity = identity
        self.clock = clock
        self._lock = asyncio.Lock()
        self._refused_at: float | None = None

    async def ensure(self, conn: RelayConnection) -> None:
        """Rotates the signed prekey when due and tops the one-time prekeys up."""
        async with self._lock:
            with relay_errors():
                await self._ensure(conn)

    async def _ensure(self, conn: RelayConnection) -> None:
        profile = self.profile
        now = self.clock()
        if (profile.signed_prekey_id == 0
                or now - profile.signed_prekey_created > SIGNED_PREKEY_ROTATION
                or profile.signed_prekey_server != profile.server):
            # also when the last upload was never confirmed (the connection dropped
            # after the local commit) or went to another relay: without a signed
            # prekey on the relay nobody can start a conversation with this user
            await self._rotate_signed_prekey(conn, now)
        if self._refused_at is not None and now - self._refused_at < REFUSED_BACKOFF:
            return
        one, kem = await conn.prekey_counts()
        while one < PREKEY_LOW or kem < PREKEY_LOW:
            add_one = min(PREKEY_UPLOAD_BATCH, max(0, PREKEY_TARGET - one))
            add_kem = min(PREKEY_UPLOAD_BATCH, max(0, PREKEY_TARGET - kem))
            if not add_one and not add_kem:
                break
            ones, kems = [], []
            with self.store.transaction():
                for _ in range(add_one):
                    key_id = profile.next_one_time_id
                    profile.next_one_time_id += 1
                    pair, record = make_one_time_prekey(key_id)
                    self.repo.put(PrekeyKind.ONE_TIME, key_id, pair.private, now)
                    ones.append(record)
                for _ in range(add_kem):
                    key_id = profile.next_kem_id
                    profile.next_kem_id += 1
                    kem_pair, kem_record = make_kem_prekey(self.identity, key_id)
                    self.repo.put(PrekeyKind.KEM_ONE_TIME, key_id, kem_pair.seed, now)
                    kems.append(kem_record)
                self.profiles.save(profile)
            try:
                with relay_errors():
                    await conn.upload_one_time_prekeys(ones, kems)
            except RelayRefused as exc:
                if exc.code != ErrorCode.TOO_MANY_PREKEYS:
                    raise
                self._refused(ones, kems, now)
                break
            one, kem = one + len(ones), kem + len(kems)
        with self.store.transaction():
            for kind in (PrekeyKind.ONE_TIME, PrekeyKind.KEM_ONE_TIME):
                for key_id, _ in self.repo.ids(kind)[:-MAX_UNUSED_ONE_TIME]:
                    self.repo.delete(kind, key_id)
        # old signed and last-resort prekeys are kept for a grace period so that
        # initial messages made from an older bundle still open
        with self.store.transaction():
            self.repo.prune(PrekeyKind.SIGNED, profile.signed_prekey_id,
                            now - SIGNED_PREKEY_GRACE)
            self.repo.prune(PrekeyKind.KEM_LAST_RESORT, profile.last_resort_id,
                            now - SIGNED_PREKEY_GRACE)

    def _refused(self, ones: list[OneTimePreKey], kems: list[KemPreKey], now: float) -> None:
        """The relay holds as many one-time prekeys as it will: the ones just made are
        not on it, so nobody can use them, and asking again soon would only repeat."""
        self._refused_at = now
        with self.store.transaction():
            for record in ones:
                self.repo.delete(PrekeyKind.ONE_TIME, record.key_id)
            for kem_record in kems:
                self.repo.delete(PrekeyKind.KEM_ONE_TIME, kem_record.key_id)

    async def _rotate_signed_prekey(self, conn: RelayConnection, now: float) -> None:
        profile = self.profile
        with self.store.transaction():
            spk_id = profile.signed_prekey_id + 1
            lr_id = profile.next_kem_id
            spk_pair, spk = make_signed_prekey(self.identity, spk_id)
            lr_pair, lr = make_kem_prekey(self.identity, lr_id)
            self.repo.put(PrekeyKind.SIGNED, spk_id, spk_pair.private, now)
            self.repo.put(PrekeyKind.KEM_LAST_RESORT, lr_id, lr_pair.seed, now)
            profile.signed_prekey_id = spk_id
            profile.last_resort_id = lr_id
            profile.next_kem_id += 1
            profile.signed_prekey_created = now
            profile.signed_prekey_server = ""
            self.profiles.save(profile)
        await conn.upload_signed_prekeys(spk, lr)
        profile.signed_prekey_server = profile.server
        self.profiles.save(profile)

    # -- what an initial message needs

    def _private(self, kind: PrekeyKind, key_id: int) -> bytes:
        private = self.repo.get(kind, key_id)
        if private is None:
            raise SessionSetupError(f"unknown {kind.value} prekey {key_id}")
        return private

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        """Private prekeys by (kind, id), as the spec requires for the KEM key."""
        spk = X25519KeyPair.from_private(self._private(PrekeyKind.SIGNED, msg.signed_prekey_id))
        kem_kind = (PrekeyKind.KEM_ONE_TIME if msg.kem_kind is KemKind.ONE_TIME
                    else PrekeyKind.KEM_LAST_RESORT)
        kem = KemKeyPair.from_seed(self._private(kem_kind, msg.kem_prekey_id))
        opk = None
        if msg.one_time_prekey_id is not None:
            opk = X25519KeyPair.from_private(
                self._private(PrekeyKind.ONE_TIME, msg.one_time_prekey_id))
        return PrivatePrekeys(spk, kem, opk)

    def live_ids(self) -> tuple[set[int], set[int]]:
        """The ids of the signed and the last-resort KEM prekeys still held: an
        initial message's entry in a replay memory lives as long as they do
        (PROTOCOL.md 13.3)."""
        return ({i for i, _ in self.repo.ids(PrekeyKind.SIGNED)},
                {i for i, _ in self.repo.ids(PrekeyKind.KEM_LAST_RESORT)})

    def consume(self, consumed: Consumed) -> None:
        """Deletes the one-time prekeys an accepted initial message used."""
        if consumed.one_time_prekey_id is not None:
            self.repo.delete(PrekeyKind.ONE_TIME, consumed.one_time_prekey_id)
        if consumed.kem_prekey_id is not None:
            self.repo.delete(PrekeyKind.KEM_ONE_TIME, consumed.kem_prekey_id)
