"""The client's records: the profile, contacts, messages and outbox entries, as stored
(JSON inside the store's encryption, client/store.py) and as the CLI and the app show
them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    NOTICE = "notice"


class State(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    RECEIVED = "received"
    FAILED = "failed"
    UNDECRYPTABLE = "undecryptable"
    NOTICE = "notice"


STATE_ORDER = {State.SENDING: 0, State.SENT: 1, State.DELIVERED: 2, State.READ: 3}


class PrekeyKind(StrEnum):
    """Which private prekey a stored one is (PROTOCOL.md section 4)."""

    ONE_TIME = "opk"
    KEM_ONE_TIME = "kem_ot"
    SIGNED = "spk"
    KEM_LAST_RESORT = "kem_lr"


class Trust(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Contact:
    name: str
    identity: bytes
    trust: Trust = Trust.UNVERIFIED
    pending_identity: bytes | None = None
    unread: int = 0
    last_activity: float = 0.0
    was_verified: bool = False
    capability: bytes | None = field(default=None, repr=False)
    """The delivery capability this contact gave us (PROTOCOL.md 9.1, 16.10): what our
    sealed envelopes to them carry. A secret: never shown, never logged."""
    capability_given: int = 0
    """The generation of our own capability this contact was given (0: none yet)."""
    cut_off: bool = False
    """A rotation cut this contact off: it is given no newer capability of ours."""

    @property
    def key_changed(self) -> bool:
        """A new identity key was seen and not yet accepted: nothing is sent."""
        return self.pending_identity is not None

    def encode(self) -> bytes:
        d = asdict(self)
        d["identity"] = self.identity.hex()
        d["pending_identity"] = None if self.pending_identity is None else \
            self.pending_identity.hex()
        d["capability"] = None if self.capability is None else self.capability.hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes) -> Contact:
        d = json.loads(data)
        d["identity"] = bytes.fromhex(d["identity"])
        if d["pending_identity"] is not None:
            d["pending_identity"] = bytes.fromhex(d["pending_identity"])
        if d.get("capability") is not None:
            d["capability"] = bytes.fromhex(d["capability"])
        d["trust"] = Trust(d["trust"])
        return cls(**d)


@dataclass
class Message:
    contact: str
    direction: Direction
    text: str
    state: State
    message_id: bytes = b""
    sent_at_ms: int = 0
    stored_at: float = 0.0
    error: str = ""
    unread: bool = False
    count: int = 1  # a collapsed row of placeholders: how many it stands for
    row_id: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        d = asdict(self)
        d.pop("row_id")
        d["message_id"] = self.message_id.hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes, row_id: int = 0) -> Message:
        d = json.loads(data)
        d["message_id"] = bytes.fromhex(d["message_id"])
        d["direction"] = Direction(d["direction"])
        d["state"] = State(d["state"])
        return cls(**d, row_id=row_id)

    def to_json(self) -> dict[str, Any]:
        """What `blindrelay recv --json` prints."""
        party = {Direction.IN: "from", Direction.OUT: "to"}.get(self.direction)
        return {
            "contact": self.contact,
            **({party: self.contact} if party else {}),
            "direction": self.direction.value,
            "text": self.text,
            "state": self.state.value,
            "id": self.message_id.hex(),
            "sent_at_ms": self.sent_at_ms,
            "stored_at": self.stored_at,
            **({"error": self.error} if self.error else {}),
            **({"count": self.count} if self.count != 1 else {}),
        }


@dataclass
class OutboxItem:
    """One queued envelope. Sealed at flush time, not at queue time (PROTOCOL.md 10,
    20): the row keeps what sealing needs (the recipient's identity key, the message's
    kind and bytes), so an envelope queued offline carries the certificate current when
    it leaves. `envelope` is set only in rows written by versions that sealed at queue
    time: those bytes are sent as they are."""

    recipient: str
    envelope: bytes = b""
    message_row: int | None = None
    identity: bytes = b""
    kind: int = 0
    message: bytes = b""
    not_before: float = 0.0
    """Not sent before this time (an automatic receipt's random delay; 0: at once)."""
    deferred: bytes = b""
    """A delayed receipt's content, encrypted only when it is due (so the ratchet's
    order is the order things leave in); `message` is empty until then."""

    @property
    def sealed(self) -> bool:
        """Whether the row holds a sealed envelope already (an older version's row)."""
        return bool(self.envelope)

    def encode(self) -> bytes:
        if self.sealed:
            return _dumps({"recipient": self.recipient, "envelope": self.envelope.hex(),
                           "message_row": self.message_row})
        d: dict[str, Any] = {"recipient": self.recipient, "identity": self.identity.hex(),
                             "kind": self.kind, "message": self.message.hex(),
                             "message_row": self.message_row}
        if self.not_before:
            d["not_before"] = self.not_before
        if self.deferred:
            d["deferred"] = self.deferred.hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes) -> OutboxItem:
        d = json.loads(data)
        if "envelope" in d:  # sealed at queue time by an older version
            return cls(d["recipient"], bytes.fromhex(d["envelope"]), d["message_row"])
        return cls(d["recipient"], b"", d["message_row"], bytes.fromhex(d["identity"]),
                   int(d["kind"]), bytes.fromhex(d["message"]),
                   float(d.get("not_before", 0.0)), bytes.fromhex(d.get("deferred", "")))


@dataclass
class Delivery:
    """This profile's sealed-sending settings (PROTOCOL.md 16.10, docs/CLIENT.md): its
    delivery capability (32 random bytes; the relay holds only its SHA-256), which
    generation it is (each rotation makes a new one), whether strangers may send to
    us sealed, which generation and flag each relay holds, and the sending knobs."""

    capability: bytes = field(repr=False)
    generation: int = 1
    allow_anyone: bool = False
    relays: dict[str, list[Any]] = field(default_factory=dict)
    """server URL -> [generation, allow_anyone] it confirmed (OK to SET_CAPABILITY)."""
    sealed_sending: bool = True
    receipt_delay: float = 0.0

    def encode(self) -> bytes:
        d = asdict(self)
        d["capability"] = self.capability.hex()
        return _dumps(d)

    @classmethod
    def decode(cls, data: bytes) -> Delivery:
        d = json.loads(data)
        d["capability"] = bytes.fromhex(d["capability"])
        return cls(**d)


@dataclass
class KtState:
    """What this profile knows of one relay's key directory (docs/PROTOCOL.md 19.8):
    the keys pinned at first use (like an ssh host key; never re-pinned silently), the
    newest signed head it verified (so no older one is ever accepted), and how far the
    owner's monitoring has read the log (size and the root at that size)."""

    server: str
    origin: str
    log_key: str
    vrf_public_key: bytes
    head_note: bytes
    checked_size: int | None = None
    checked_root: bytes | None = None
    witnesses: list[str] = field(default_factory=list)
    """Witness verifier keys the user configured: newer heads need one's cosignature."""
    anchors: dict[int, bytes] = field(default_factory=dict)
    """Roots of the log at the anchor sizes of the head (verifier.anchor_sizes), proven
    consistent with it: what the safety-number screen shows for comparison."""

    def encode(self) -> bytes:
        return _dumps({"server": self.server, "origin": self.origin, "log_key": self.log_key,
                       "vrf_public_key": self.vrf_public_key.hex(),
                       "head_note": self.head_note.hex(), "checked_size": self.checked_size,
                       "checked_root": None if self.checked_root is None
                       else self.checked_root.hex(), "witnesses": self.witnesses,
                       "anchors": {str(k): v.hex() for k, v in self.anchors.items()}})

    @classmethod
    def decode(cls, data: bytes) -> KtState:
        d = json.loads(data)
        root = d["checked_root"]
        return cls(d["server"], d["origin"], d["log_key"], bytes.fromhex(d["vrf_public_key"]),
                   bytes.fromhex(d["head_note"]), d["checked_size"],
                   None if root is None else bytes.fromhex(root),
                   list(d.get("witnesses", [])),
                   {int(k): bytes.fromhex(v) for k, v in d.get("anchors", {}).items()})


@dataclass
class Profile:
    """Who this profile is and where its prekey upkeep stands."""

    username: str
    server: str
    identity_seed: bytes
    next_one_time_id: int = 1
    next_kem_id: int = 1
    signed_prekey_id: int = 0
    last_resort_id: int = 0
    signed_prekey_created: float = 0.0
    registered: bool = False
    signed_prekey_server: str = ""  # the relay that confirmed the current signed prekey

    def encode(self) -> bytes:
        d = dict(self.__dict__)
        d["identity_seed"] = self.identity_seed.hex()
        return json.dumps(d).encode()

    @classmethod
    def decode(cls, data: bytes) -> Profile:
        d = json.loads(data)
        d["identity_seed"] = bytes.fromhex(d["identity_seed"])
        return cls(**d)


@dataclass
class CertState:
    """What this profile knows of one relay's sender certificates (PROTOCOL.md 20):
    its certificate key, pinned at the first login (never re-pinned silently), and the
    newest certificate it issued us, with when we fetched it (local time), which says
    when half its lifetime is over."""

    server: str
    cert_key: bytes
    certificate: bytes = b""
    fetched_at: float = 0.0

    def encode(self) -> bytes:
        return _dumps({"server": self.server, "cert_key": self.cert_key.hex(),
                       "certificate": self.certificate.hex(), "fetched_at": self.fetched_at})

    @classmethod
    def decode(cls, data: bytes) -> CertState:
        d = json.loads(data)
        return cls(d["server"], bytes.fromhex(d["cert_key"]), bytes.fromhex(d["certificate"]),
                   float(d["fetched_at"]))
