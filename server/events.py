"""What the relay tells its observers (the teaching demo): one frozen dataclass per
thing that happens. Metadata only, the same the relay could log (docs/DATA.md), plus
the ciphertext in `Stored` only so the demo can show an excerpt of it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameIn:
    """A frame that decoded; `user` is who the connection is logged in as, if anyone."""

    frame_type: str
    size: int
    user: str | None


@dataclass(frozen=True, slots=True)
class Registered:
    user: str


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The login sequence ended: `delivered` queued envelopes went out before QUEUE_DONE."""

    user: str
    delivered: int


@dataclass(frozen=True, slots=True)
class BundleTaken:
    """FETCH_BUNDLE handed out `user`'s keys to `requester`; the one-time keys named
    were deleted (None: none was left)."""

    user: str
    requester: str
    one_time_prekey: int | None
    kem_prekey: int
    kem_kind: str


@dataclass(frozen=True, slots=True)
class Stored:
    envelope_id: bytes
    recipient: str
    size: int
    received_at: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Acked:
    """ACK from `recipient`: `count` of the named envelopes existed and were deleted."""

    recipient: str
    envelope_ids: tuple[bytes, ...]
    count: int


@dataclass(frozen=True, slots=True)
class Expired:
    count: int


@dataclass(frozen=True, slots=True)
class CheckpointPublished:
    """The key directory grew to `size` updates and signed a checkpoint for it
    (PROTOCOL.md 19.10); `root_hex_prefix`: the first 16 hex digits of its root."""

    size: int
    root_hex_prefix: str


@dataclass(frozen=True, slots=True)
class DirectoryLookup:
    """KT_LOOKUP from `requester` about `user` (19.10). Like BundleTaken it names
    both, for the teaching demo's relay pane; the relay logs neither."""

    requester: str
    user: str


RelayEvent = (FrameIn | Registered | LoggedIn | BundleTaken | Stored | Acked | Expired
              | CheckpointPublished | DirectoryLookup)
"""Everything an observer of Relay.observers receives."""
