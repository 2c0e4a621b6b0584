"""The account's life cycle on this side (docs/CLIENT.md "Creating and deleting an
account"): registering so that no failure can burn the name, knowing whether a
profile's registration is finished, and deleting the account on the relay and here.

Registration is made atomic from the user's view by keeping the profile once a
REGISTER may have reached the relay, and by *reclaiming*: if REGISTER answers
USERNAME_TAKEN, the name may be ours already (an earlier REGISTER whose OK never came
back: Ctrl+C, a dropped connection), so the client tries LOGIN with its own identity
key on the same connection. Only the key that registered the name can log in, so
reclaiming never takes anyone else's account.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from client.connection import RelayConnection, RelayError
from client.errors import ConnectionDropped, NotConnected, RelayRefused
from client.records import Profile
from client.store import Store
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import ErrorCode

NOT_OURS = frozenset({ErrorCode.USERNAME_TAKEN, ErrorCode.IDENTITY_IN_USE,
                      ErrorCode.USERNAME_INVALID})
"""REGISTER refusals that mean the relay holds nothing of this profile's (after the
reclaiming LOGIN failed too): the new local profile is of no use and is removed."""


async def register(conn: RelayConnection, username: str, identity: IdentityKeyPair) -> None:
    """REGISTER, or LOGIN if the name turns out to be registered with our key already.
    Raises the connection's RelayError (USERNAME_TAKEN if the name is someone else's)."""
    try:
        await conn.register(username, identity)
    except RelayError as exc:
        if exc.code != ErrorCode.USERNAME_TAKEN:
            raise
        try:
            await conn.login(username, identity)
        except RelayError:
            raise exc from None


def is_complete(profile: Profile) -> bool:
    """Registered, and the signed prekeys confirmed by this relay: others can reach us.
    Until then `blindrelay init` (again) or any command that connects finishes it."""
    return (profile.registered and profile.signed_prekey_id != 0
            and profile.signed_prekey_server == profile.server)


def nothing_registered(exc: BaseException, profile: Profile) -> bool:
    """Whether a failed first connection certainly left no account on the relay: the
    relay could not be reached at all, or it refused the name for good. Anything else
    (Ctrl+C, a dropped connection, a timeout) may have left the account registered, so
    the profile is kept and finished later."""
    if profile.registered:
        return False
    cause = exc if isinstance(exc, RelayRefused | NotConnected) else exc.__cause__
    if isinstance(cause, RelayRefused):
        return cause.code in NOT_OURS
    return isinstance(cause, NotConnected) and not isinstance(cause, ConnectionDropped)


def discard_profile(home: Path) -> None:
    """Removes the profile's files (the database and its WAL and shared memory)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{Store.path_in(home)}{suffix}")


async def delete_account(conn: RelayConnection, identity: IdentityKeyPair) -> None:
    """DELETE_ACCOUNT on a logged-in connection (PROTOCOL.md 16.4). Raises RelayError
    if the relay refuses; the relay closes the connection after its OK."""
    await conn.delete_account(identity)
