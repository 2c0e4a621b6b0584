"""Logging in, and saying why a login was refused (issue 9, item 17).

LOGIN carries only the username and a signature (PROTOCOL.md 16.4), so BAD_SIGNATURE
alone cannot tell two very different situations apart: the relay holds this name
with another identity key (someone else registered it there, or the relay's data was
replaced), or the relay does not accept signatures for the URL this profile dials (a
relay behind a proxy without that URL in `--public-url`). The relay checks a REGISTER
signature before it looks at the name, so one REGISTER of the same name, key and URL
on the same connection tells them apart without changing anything: USERNAME_TAKEN
(or IDENTITY_IN_USE) means the signature was good and the name belongs to another
key; BAD_SIGNATURE means the URL is the problem. Should the name have become free in
between, the REGISTER simply registers this profile's own name and key, which is
what logging in meant.
"""

from __future__ import annotations

from client.connection import RelayConnection
from client.errors import NotConnected, RelayRefused, relay_errors
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import ErrorCode


class LoginRefused(RelayRefused):
    """A LOGIN the relay refused with BAD_SIGNATURE, and what that meant."""

    def __init__(self, explanation: str) -> None:
        super().__init__(ErrorCode.BAD_SIGNATURE, explanation)


def _fingerprint(key: bytes) -> str:
    return " ".join(key[i:i + 4].hex() for i in range(0, 16, 4))


async def log_in(conn: RelayConnection, username: str, identity: IdentityKeyPair) -> None:
    try:
        with relay_errors():
            await conn.login(username, identity)
        return
    except RelayRefused as exc:
        if exc.code != ErrorCode.BAD_SIGNATURE:
            raise
        refused = exc
    try:
        with relay_errors():
            await conn.register(username, identity)
        return  # the name was free after all: it is now this profile's
    except RelayRefused as probe:
        if probe.code in (ErrorCode.USERNAME_TAKEN, ErrorCode.IDENTITY_IN_USE):
            raise LoginRefused(
                f"the relay has the name {username} with a different identity key: this "
                f"profile's key ({_fingerprint(identity.public)} …) is not the one "
                f"{username} is registered with there. Someone else registered "
                f"{username} on this relay, or its data was replaced; this profile "
                "cannot log in there.") from refused
        if probe.code == ErrorCode.BAD_SIGNATURE:
            raise LoginRefused(
                f"the relay does not accept signatures for {conn.url}, the URL this "
                "profile dials (a relay behind a proxy must list it with --public-url)"
            ) from refused
        raise refused from probe
    except NotConnected:
        raise refused from None
