"""The client's errors: one root, `ClientError`, so views catch only that.

Three kinds, by whose doing it is:
- `Refused`: a request this client will not carry out (local misuse, or a rule such as
  a blocked key change); the message says why and what to do;
- `RelayRefused`: the relay answered with an ERROR frame (PROTOCOL.md 16.7);
- `NotConnected`: there is no connection, or it dropped (`ConnectionDropped`) while a
  request was in flight.

client/connection.py's RelayError and ConnectionLost stop at the client's edge: the
`relay_errors()` context wraps them into this tree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from client.connection import ConnectionLost, RelayError
from client.events import KtAlert
from protocol.wire.frames import ErrorCode, error_name


class ClientError(Exception):
    """A request the client refuses or cannot carry out; the message says why."""


class Refused(ClientError):
    """This client will not do what was asked (misuse, or a rule that blocks it)."""


class KeyChangeBlocked(Refused):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name}'s identity key has changed. Nothing is sent until you compare safety "
            f"numbers and accept the new key (blindrelay accept-key {name}).")
        self.name = name


class DirectoryRefused(Refused):
    """The key directory did not confirm a key the relay served (client/directory.py):
    nothing is sent to it and nothing from it is accepted. `alert` says what was
    caught and names the evidence file."""

    def __init__(self, alert: KtAlert) -> None:
        super().__init__(alert.text)
        self.alert = alert


class UnknownContact(Refused):
    """No contact by that name here, or no user by that name on the relay."""


class RelayRefused(ClientError):
    """The relay refused a request; `code` is its error code (PROTOCOL.md 16.7)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{error_name(code)}: {message}")
        self.code = code
        self.message = message

    @property
    def fatal(self) -> bool:
        """Retrying cannot help: this profile is not (or no longer) the account."""
        return self.code in (ErrorCode.BAD_SIGNATURE, ErrorCode.UNKNOWN_USER,
                             ErrorCode.USERNAME_TAKEN)


class NotConnected(ClientError):
    """No connection to the relay (it could not be reached, or is closed)."""


class ConnectionDropped(NotConnected):
    """The connection dropped while a request was in flight."""


def from_relay_error(exc: RelayError) -> RelayRefused:
    return RelayRefused(exc.code, exc.message)


@contextlib.contextmanager
def relay_errors() -> Iterator[None]:
    """Turns the connection's errors into ClientErrors at the client's edge."""
    try:
        yield
    except RelayError as exc:
        raise from_relay_error(exc) from exc
    except ConnectionLost as exc:
        raise ConnectionDropped(str(exc) or "the connection dropped") from exc
