"""Group chats' records as stored (JSON inside the store's encryption, client/store.py)
and as the CLI and the app show them (docs/PROTOCOL.md 21.4-21.6).

They live in the store's existing encrypted, versioned tables, under row kinds of
their own, so no schema change was needed:

- `settings`, kind "mls-group", one row per group (its MLS state, state.serialize,
  and what the client keeps beside it); kind "mls" rows "groups" (the list of group
  ids) and "key-packages" (the private keys of the KeyPackages on the relay);
- `messages`: a group's history under the conversation key `#group:<hex id>`, which
  no username can be (usernames are [a-z0-9_.-]).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from client.records import Direction, State


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def conversation_key(group_id: bytes) -> str:
    """The history's conversation key of a group (never a username)."""
    return "#group:" + group_id.hex()


class GroupStatus(StrEnum):
    ACTIVE = "active"
    LEAVING = "leaving"
    """This member proposed its removal; another member's commit carries it out."""
    REMOVED = "removed"
    """A commit removed this member (or carried out its leaving): the group is over."""


@dataclass
class GroupRecord:
    group_id: bytes
    state: bytes = field(repr=False)
    status: GroupStatus = GroupStatus.ACTIVE
    unread: int = 0
    last_activity: float = 0.0
    last_commit: float = 0.0
    """When this member last committed (or joined): the self-update period runs from it."""
    pending_welcome: bytes = b""
    welcome_to: list[str] = field(default_factory=list)
    """A Welcome not yet accepted by the relay (sent again at the next connection)."""
    name: str = ""
    """The group's name as of the stored state (from its context; kept for listing)."""
    previous_state: bytes = field(default=b"", repr=False)
    """The state of the epoch before this one: application messages sent in it that
    arrive after the commit that ended it (late, not reordered) can still be read.
    Kept until the next epoch change, so forward secrecy lags by one epoch."""
    unconfirmed: bytes = field(default=b"", repr=False)
    """The state after an own commit whose GROUP_SEND got no answer (the connection
    dropped): adopted once the group is seen to have moved on with it, dropped when
    another commit for that epoch arrives (PROTOCOL.md 21.6)."""
    unconfirmed_commit: bytes = b""
    unconfirmed_welcome: bytes = b""
    unconfirmed_welcome_to: list[str] = field(default_factory=list)
    unconfirmed_notice: str = ""

    _BYTES: ClassVar[tuple[str, ...]] = (
        "group_id", "state", "pending_welcome", "previous_state", "unconfirmed",
        "unconfirmed_commit", "unconfirmed_welcome")

    def encode(self) -> bytes:
        d = asdict(self)
        for key in self._BYTES:
            d[key] = d[key].hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes) -> GroupRecord:
        d = json.loads(data)
        for key in cls._BYTES:
            d[key] = bytes.fromhex(d[key])
        d["status"] = GroupStatus(d["status"])
        return cls(**d)


@dataclass
class GroupMessage:
    """One line of a group's history: a member's text (direction in/out) or a system
    line (direction notice: joins, leaves, renames, key warnings)."""

    group_id: bytes
    sender: str
    direction: Direction
    text: str
    state: State
    message_id: bytes = b""
    sent_at_ms: int = 0
    stored_at: float = 0.0
    unread: bool = False
    epoch: int = 0
    error: str = ""
    row_id: int = field(default=0, compare=False)
    group_name: str = field(default="", compare=False)
    """Filled in when shown (not stored): the group's current name."""

    def encode(self) -> bytes:
        d = asdict(self)
        d.pop("row_id")
        d.pop("group_name")
        d["group_id"] = self.group_id.hex()
        d["message_id"] = self.message_id.hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes, row_id: int = 0) -> GroupMessage:
        d = json.loads(data)
        d["group_id"] = bytes.fromhex(d["group_id"])
        d["message_id"] = bytes.fromhex(d["message_id"])
        d["direction"] = Direction(d["direction"])
        d["state"] = State(d["state"])
        return cls(**d, row_id=row_id)

    def to_json(self) -> dict[str, Any]:
        """What `blindrelay recv --json` and `group history --json` print."""
        party = {Direction.IN: "from", Direction.OUT: "to"}.get(self.direction)
        return {
            "group": self.group_name,
            "group_id": self.group_id.hex(),
            **({"from": self.sender} if party == "from" else {}),
            "direction": self.direction.value,
            "text": self.text,
            "state": self.state.value,
            "id": self.message_id.hex(),
            "sent_at_ms": self.sent_at_ms,
            "stored_at": self.stored_at,
            "epoch": self.epoch,
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class StoredKeyPackage:
    """A KeyPackage this client made: the MLSMessage uploaded and its private keys."""

    message: bytes
    init_private: bytes = field(repr=False)
    encryption_private: bytes = field(repr=False)
    last_resort: bool
    created: float
    uploaded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message.hex(), "init": self.init_private.hex(),
                "enc": self.encryption_private.hex(), "last_resort": self.last_resort,
                "created": self.created, "uploaded": self.uploaded}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoredKeyPackage:
        return cls(bytes.fromhex(d["message"]), bytes.fromhex(d["init"]),
                   bytes.fromhex(d["enc"]), bool(d["last_resort"]), float(d["created"]),
                   bool(d["uploaded"]))


@dataclass
class KeyPackagePool:
    """Every KeyPackage whose private keys are kept, by KeyPackageRef (hex), and the
    relay they were uploaded to."""

    server: str = ""
    packages: dict[str, StoredKeyPackage] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _dumps({"server": self.server,
                       "packages": {k: v.to_json() for k, v in self.packages.items()}})

    @classmethod
    def decode(cls, data: bytes) -> KeyPackagePool:
        d = json.loads(data)
        return cls(d["server"], {k: StoredKeyPackage.from_json(v)
                                 for k, v in d["packages"].items()})

    def one_time(self) -> int:
        return sum(1 for p in self.packages.values() if not p.last_resort)

    def last_resort(self) -> str | None:
        return next((k for k, p in self.packages.items() if p.last_resort), None)
