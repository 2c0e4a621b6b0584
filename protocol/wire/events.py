"""What the connection cores (protocol.wire.connection) report, as typed events.

A shell feeds bytes to a core and acts on these; it never inspects frames itself to
decide what they mean for the conversation. Every event carries the `frame` it came
from and its `request_id` (0 for pushes), so a shell that keeps raw frames (the
conformance probe) can do so without a second parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocol.wire.frames import (
    Deliver,
    Error,
    ErrorCode,
    Frame,
    Hello,
    Limits,
    PrekeysLow,
    QueueDone,
)

# ---- what a client learns from the server (ClientConnection.receive_data) ----------


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """HELLO, the first frame of every connection (PROTOCOL.md 16.3)."""

    frame: Hello
    request_id: ClassVar[int] = 0

    @property
    def challenge(self) -> bytes:
        return self.frame.challenge

    @property
    def limits(self) -> Limits:
        return self.frame.limits


@dataclass(frozen=True, slots=True)
class Answered:
    """The typed answer (or OK) to an outstanding request. `request` is the request's
    frame class, or None for bytes sent raw that did not decode."""

    request_id: int
    request: type[Frame] | None
    frame: Frame


@dataclass(frozen=True, slots=True)
class Refused:
    """ERROR answering a request; request id 0 when the server could not read one
    (a frame shorter than its header, PROTOCOL.md 16.7)."""

    request_id: int
    frame: Error

    @property
    def code(self) -> int:
        return self.frame.code

    @property
    def message(self) -> str:
        return self.frame.message


@dataclass(frozen=True, slots=True)
class Delivered:
    """DELIVER: an envelope, from the queue at login or pushed live (16.5)."""

    frame: Deliver
    request_id: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class QueueDrained:
    """QUEUE_DONE: every envelope queued at login was delivered (16.5)."""

    frame: QueueDone
    request_id: ClassVar[int] = 0

    @property
    def delivered(self) -> int:
        return self.frame.delivered


@dataclass(frozen=True, slots=True)
class PrekeysRunningLow:
    """PREKEYS_LOW: the account's one-time prekeys are below prekey_low (16.5, 16.6)."""

    frame: PrekeysLow
    request_id: ClassVar[int] = 0

    @property
    def one_time(self) -> int:
        return self.frame.one_time

    @property
    def kem_one_time(self) -> int:
        return self.frame.kem_one_time


@dataclass(frozen=True, slots=True)
class Violation:
    """A well-formed frame the server may not send now: an answer to no request in
    flight, an answer of the wrong type, a push before login or with a request id.
    A client drops the connection; the conformance suite reports it."""

    reason: str
    request_id: int
    frame: Frame


ServerEvent = HelloReceived | Answered | Refused | Delivered | QueueDrained | \
    PrekeysRunningLow | Violation
"""Everything ClientConnection.receive_data returns."""


# ---- what a server learns from a client (ServerConnection.receive_data) ------------


@dataclass(frozen=True, slots=True)
class Request:
    """A frame the client may send in this state: the shell carries it out."""

    request_id: int
    frame: Frame


@dataclass(frozen=True, slots=True)
class Refusal:
    """A frame to answer with ERROR `code` and nothing else. `frame` is the decoded
    frame when it decoded but the state does not allow it (NOT_AUTHENTICATED,
    ALREADY_AUTHENTICATED), else None."""

    request_id: int
    code: ErrorCode
    message: str
    frame: Frame | None = None


ClientEvent = Request | Refusal
"""Everything ServerConnection.receive_data returns."""
