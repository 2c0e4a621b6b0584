"""Client-server frames: one binary WebSocket message each, parsed strictly.

    frame = version u8 (1) || type u8 || request id u32 || payload

A client picks the request id; the server echoes it in its answer (a typed
answer, OK or ERROR). Frames the server pushes unasked carry request id 0.
Only these layouts cross the wire between client and relay; the relay never sees
anything inside an envelope body. See docs/PROTOCOL.md, "Client-server frames".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar
from urllib.parse import urlsplit

from protocol.wire import codec
from protocol.wire.errors import DecodeError, UnknownFrameType, UnsupportedVersion
from protocol.wire.mls_header import GroupHeader, parse_group_header
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, SignedPreKey
from protocol.wire.publickeys import (
    ENCODED_ED25519_LEN,
    SIGNATURE_LEN,
    TYPE_ED25519,
    decode_key,
    encode_key,
)
from protocol.wire.usernames import decode_username

FRAME_VERSION = 1
FRAME_HEADER_LEN = 6
CHALLENGE_LEN = 32
ENVELOPE_ID_LEN = 16
CAPABILITY_LEN = 32

REGISTER_PURPOSE = b"blindrelay-register-v1\x00"
LOGIN_PURPOSE = b"blindrelay-login-v1\x00"
DELETE_ACCOUNT_PURPOSE = b"blindrelay-delete-account-v1\x00"


class ErrorCode(IntEnum):
    """Stable error codes of the ERROR frame. Numbers never change meaning."""

    MALFORMED_FRAME = 1
    UNKNOWN_FRAME_TYPE = 2
    UNSUPPORTED_VERSION = 3
    FRAME_TOO_LARGE = 4
    NOT_AUTHENTICATED = 5
    ALREADY_AUTHENTICATED = 6
    LOGIN_TIMEOUT = 7
    TOO_MANY_CONNECTIONS = 8
    USERNAME_INVALID = 10
    USERNAME_TAKEN = 11
    UNKNOWN_USER = 12
    BAD_SIGNATURE = 13
    IDENTITY_IN_USE = 14
    REGISTRATION_LIMITED = 15
    NO_PREKEYS = 20
    TOO_MANY_PREKEYS = 21
    ENVELOPE_TOO_LARGE = 30
    QUEUE_FULL = 31
    RATE_LIMITED = 32
    TOO_MANY_RECIPIENTS = 33
    SENDER_BUDGET = 34
    STORAGE_FULL = 35
    BAD_CAPABILITY = 36
    COMMIT_CONFLICT = 37
    NO_KEY_PACKAGES = 22
    INTERNAL_ERROR = 40
    KT_OUT_OF_RANGE = 50


def error_name(code: int) -> str:
    """The name docs/PROTOCOL.md 16.7 gives an ERROR code, for messages; a code this
    side does not know (a newer relay's) is named by its number."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"unknown error code {code}"


def login_statement(server_url: str, challenge: bytes, username: str) -> bytes:
    """What LOGIN signs: purpose || var16(server URL) || challenge || var8(username).
    The purpose string and the URL the client dialed keep the signature from being
    replayed to another server or used for anything else."""
    return (LOGIN_PURPOSE + codec.var16(server_url.encode("utf-8")) + challenge
            + codec.var8(username.encode("ascii")))


def register_statement(server_url: str, challenge: bytes, username: str,
                       identity: bytes) -> bytes:
    """What REGISTER signs: like LOGIN, with its own purpose and Encode(IK) appended."""
    return (REGISTER_PURPOSE + codec.var16(server_url.encode("utf-8")) + challenge
            + codec.var8(username.encode("ascii")) + encode_key(TYPE_ED25519, identity))


def delete_account_statement(server_url: str, challenge: bytes, username: str) -> bytes:
    """What DELETE_ACCOUNT signs: like LOGIN, with its own purpose. The challenge is
    the one the connection's HELLO carried (the one its LOGIN or REGISTER signed), so
    the signature is good for this connection only, and a login signature (another
    purpose) can never delete an account (PROTOCOL.md 16.4)."""
    return (DELETE_ACCOUNT_PURPOSE + codec.var16(server_url.encode("utf-8")) + challenge
            + codec.var8(username.encode("ascii")))


class Frame:
    """Base of every frame. Subclasses define TYPE and the payload layout."""

    TYPE: ClassVar[int]

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Frame:
        return cls()


def encode_frame(frame: Frame, request_id: int = 0) -> bytes:
    return (bytes((FRAME_VERSION, frame.TYPE)) + codec.u32(request_id)
            + frame.encode_payload())


# ---- client -> server -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register(Frame):
    """0x02: var8 username || Encode(IK) || signature over register_statement."""

    TYPE: ClassVar[int] = 0x02
    username: str
    identity: bytes
    signature: bytes

    def encode_payload(self) -> bytes:
        return (codec.var8(self.username.encode("ascii"))
                + encode_key(TYPE_ED25519, self.identity) + self.signature)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Register:
        username = decode_username(r.var8())
        identity = decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN))
        return cls(username, identity, r.take(SIGNATURE_LEN))


@dataclass(frozen=True, slots=True)
class Login(Frame):
    """0x03: var8 username || signature over login_statement."""

    TYPE: ClassVar[int] = 0x03
    username: str
    signature: bytes

    def encode_payload(self) -> bytes:
        return codec.var8(self.username.encode("ascii")) + self.signature

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Login:
        return cls(decode_username(r.var8()), r.take(SIGNATURE_LEN))


@dataclass(frozen=True, slots=True)
class DeleteAccount(Frame):
    """0x04: signature (64) over delete_account_statement for the logged-in username.
    Answered by OK, after which the relay closes the connection."""

    TYPE: ClassVar[int] = 0x04
    signature: bytes

    def encode_payload(self) -> bytes:
        return self.signature

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> DeleteAccount:
        return cls(r.take(SIGNATURE_LEN))


@dataclass(frozen=True, slots=True)
class UploadSignedPrekeys(Frame):
    """0x10: SignedPreKey (101) || last-resort KemPreKey (1253). Replaces both."""

    TYPE: ClassVar[int] = 0x10
    signed_prekey: SignedPreKey
    last_resort_kem: KemPreKey

    def encode_payload(self) -> bytes:
        return self.signed_prekey.encode() + self.last_resort_kem.encode()

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> UploadSignedPrekeys:
        return cls(SignedPreKey.read(r), KemPreKey.read(r))


@dataclass(frozen=True, slots=True)
class UploadOneTimePrekeys(Frame):
    """0x11: u16 n || n OneTimePreKey (37 each) || u16 m || m one-time KemPreKey (1253 each)."""

    TYPE: ClassVar[int] = 0x11
    one_time: tuple[OneTimePreKey, ...]
    kem_one_time: tuple[KemPreKey, ...]

    def encode_payload(self) -> bytes:
        return b"".join((
            codec.u16(len(self.one_time)),
            *(k.encode() for k in self.one_time),
            codec.u16(len(self.kem_one_time)),
            *(k.encode() for k in self.kem_one_time),
        ))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> UploadOneTimePrekeys:
        one_time = tuple(OneTimePreKey.read(r) for _ in range(r.u16()))
        kem = tuple(KemPreKey.read(r) for _ in range(r.u16()))
        return cls(one_time, kem)


@dataclass(frozen=True, slots=True)
class FetchBundle(Frame):
    """0x12: var8 username. Answered by BUNDLE."""

    TYPE: ClassVar[int] = 0x12
    username: str

    def encode_payload(self) -> bytes:
        return codec.var8(self.username.encode("ascii"))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> FetchBundle:
        return cls(decode_username(r.var8()))


@dataclass(frozen=True, slots=True)
class LookupIdentity(Frame):
    """0x14: var8 username. Answered by IDENTITY, without touching any prekey: how a
    client checks the identity key that a sealed envelope's sender claims."""

    TYPE: ClassVar[int] = 0x14
    username: str

    def encode_payload(self) -> bytes:
        return codec.var8(self.username.encode("ascii"))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> LookupIdentity:
        return cls(decode_username(r.var8()))


@dataclass(frozen=True, slots=True)
class PrekeyCount(Frame):
    """0x13: empty. Answered by PREKEY_COUNTS."""

    TYPE: ClassVar[int] = 0x13


@dataclass(frozen=True, slots=True)
class Outgoing:
    recipient: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Send(Frame):
    """0x20: u16 n || n * (var8 recipient || var32 body). Answered by SENT once every
    envelope is durably stored; all or none are accepted."""

    TYPE: ClassVar[int] = 0x20
    envelopes: tuple[Outgoing, ...]

    def encode_payload(self) -> bytes:
        parts = [codec.u16(len(self.envelopes))]
        for env in self.envelopes:
            parts.append(codec.var8(env.recipient.encode("ascii")))
            parts.append(codec.var32(env.body))
        return b"".join(parts)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Send:
        count = r.u16()
        if count == 0:
            raise DecodeError("SEND names no recipient")
        envelopes = []
        for _ in range(count):
            recipient = decode_username(r.var8())
            body = r.var32()
            if not body:
                raise DecodeError("empty envelope body")
            envelopes.append(Outgoing(recipient, body))
        return cls(tuple(envelopes))


@dataclass(frozen=True, slots=True)
class Ack(Frame):
    """0x21: u16 n || n envelope ids (16 bytes each). The server deletes them."""

    TYPE: ClassVar[int] = 0x21
    envelope_ids: tuple[bytes, ...]

    def encode_payload(self) -> bytes:
        return codec.u16(len(self.envelope_ids)) + b"".join(self.envelope_ids)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Ack:
        count = r.u16()
        if count == 0:
            raise DecodeError("ACK names no envelope")
        return cls(tuple(r.take(ENVELOPE_ID_LEN) for _ in range(count)))


# ---- sealed sending (PROTOCOL.md 16.10) ----------------------------------------


@dataclass(frozen=True, slots=True)
class SetCapability(Frame):
    """0x15 (logged in): flags u8 (bit 0: allow sealed sends from anyone; the other bits
    0) || SHA-256(capability) (32). Answered by OK; replaces the account's capability."""

    TYPE: ClassVar[int] = 0x15
    allow_anyone: bool
    capability_hash: bytes

    def encode_payload(self) -> bytes:
        return codec.u8(1 if self.allow_anyone else 0) + self.capability_hash

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> SetCapability:
        flags = r.u8()
        if flags & ~1:
            raise DecodeError(f"SET_CAPABILITY flags {flags:#04x}: only bit 0 is defined")
        return cls(bool(flags & 1), r.take(CAPABILITY_LEN))


@dataclass(frozen=True, slots=True)
class SealedOutgoing:
    recipient: str
    capability: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class SealedSend(Frame):
    """0x22 (only on a connection that never logs in): u16 n (>= 1) || n x (var8
    recipient || capability (32) || var32 body). Answered by SENT, all or none."""

    TYPE: ClassVar[int] = 0x22
    envelopes: tuple[SealedOutgoing, ...]

    def encode_payload(self) -> bytes:
        return codec.u16(len(self.envelopes)) + b"".join(
            codec.var8(e.recipient.encode("ascii")) + e.capability + codec.var32(e.body)
            for e in self.envelopes)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> SealedSend:
        count = r.u16()
        if count == 0:
            raise DecodeError("SEALED_SEND names no recipient")
        envelopes = []
        for _ in range(count):
            recipient = decode_username(r.var8())
            capability, body = r.take(CAPABILITY_LEN), r.var32()
            if not body:
                raise DecodeError("empty envelope body")
            envelopes.append(SealedOutgoing(recipient, capability, body))
        return cls(tuple(envelopes))


# ---- groups (PROTOCOL.md 21) ---------------------------------------------------


MAX_KEY_PACKAGE = 16384
"""Largest KeyPackage a relay keeps (one with a basic credential is about 300 bytes)."""


def _key_package(data: bytes) -> bytes:
    """An MLSMessage carrying a KeyPackage (RFC 9420 section 6: version 1, wire format
    5), no longer than MAX_KEY_PACKAGE; the relay keeps it opaque beyond that."""
    if not 4 < len(data) <= MAX_KEY_PACKAGE or data[:4] != b"\x00\x01\x00\x05":
        raise DecodeError("not an MLS KeyPackage (version 1, wire format 5) of at most "
                          f"{MAX_KEY_PACKAGE} bytes")
    return data


@dataclass(frozen=True, slots=True)
class UploadKeyPackages(Frame):
    """0x18 (logged in): flags u8 (bit 0: these replace the last-resort KeyPackage; the
    other bits 0) || u16 n (>= 1) || n x var32 KeyPackage (an MLSMessage). Answered by
    OK. One-time packages are added (at most max_prekeys kept); a last-resort upload
    carries exactly one."""

    TYPE: ClassVar[int] = 0x18
    last_resort: bool
    key_packages: tuple[bytes, ...]

    def encode_payload(self) -> bytes:
        return (codec.u8(1 if self.last_resort else 0) + codec.u16(len(self.key_packages))
                + b"".join(codec.var32(k) for k in self.key_packages))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> UploadKeyPackages:
        flags = r.u8()
        if flags & ~1:
            raise DecodeError(f"UPLOAD_KEY_PACKAGES flags {flags:#04x}: only bit 0 is defined")
        count = r.u16()
        if count == 0 or (flags & 1 and count != 1):
            raise DecodeError("UPLOAD_KEY_PACKAGES carries one last-resort package, or "
                              "one or more one-time packages")
        return cls(bool(flags & 1), tuple(_key_package(r.var32()) for _ in range(count)))


@dataclass(frozen=True, slots=True)
class FetchKeyPackage(Frame):
    """0x19 (logged in): var8 username. Answered by KEY_PACKAGE: one of the account's
    one-time KeyPackages, deleted as it is handed out, else its last-resort one."""

    TYPE: ClassVar[int] = 0x19
    username: str

    def encode_payload(self) -> bytes:
        return codec.var8(self.username.encode("ascii"))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> FetchKeyPackage:
        return cls(decode_username(r.var8()))


@dataclass(frozen=True, slots=True)
class KeyPackageAnswer(Frame):
    """0x99: var32 KeyPackage (an MLSMessage), answering FETCH_KEY_PACKAGE."""

    TYPE: ClassVar[int] = 0x99
    key_package: bytes

    def encode_payload(self) -> bytes:
        return codec.var32(self.key_package)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KeyPackageAnswer:
        return cls(_key_package(r.var32()))


@dataclass(frozen=True, slots=True)
class GroupSend(Frame):
    """0x23 (logged in): u16 n (>= 1) || n x var8 recipient || var32 message, an MLS
    PublicMessage, PrivateMessage or Welcome (RFC 9420 section 6). The relay stores
    the message once and queues it for each recipient; a commit is admitted only if no
    commit of its group was admitted for its epoch or a later one (COMMIT_CONFLICT).
    Answered by SENT with one envelope id per recipient, all or none."""

    TYPE: ClassVar[int] = 0x23
    recipients: tuple[str, ...]
    message: bytes

    @property
    def header(self) -> GroupHeader:
        return parse_group_header(self.message)

    def encode_payload(self) -> bytes:
        return (codec.u16(len(self.recipients))
                + b"".join(codec.var8(n.encode("ascii")) for n in self.recipients)
                + codec.var32(self.message))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> GroupSend:
        count = r.u16()
        if count == 0:
            raise DecodeError("GROUP_SEND names no recipient")
        recipients = tuple(decode_username(r.var8()) for _ in range(count))
        if len(set(recipients)) != count:
            raise DecodeError("GROUP_SEND names a recipient twice")
        message = r.var32()
        parse_group_header(message)  # DecodeError: not a group message
        return cls(recipients, message)


# ---- key transparency (PROTOCOL.md 19.10) -------------------------------------
#
# The directory's frames carry public data only: signed checkpoints, proofs, and log
# entries that name nobody. KT_INFO, KT_CONSISTENCY and KT_ENTRIES are allowed before
# login (witnesses and auditors have no account); KT_LOOKUP and KT_OWN are not.


MAX_KT_NOTE = 16384
"""Largest signed checkpoint in a frame (a note with its cosignatures)."""


@dataclass(frozen=True, slots=True)
class KtInfo(Frame):
    """0x30: empty. Answered by KT_INFO_ANSWER: the directory's keys and newest head."""

    TYPE: ClassVar[int] = 0x30


@dataclass(frozen=True, slots=True)
class KtConsistency(Frame):
    """0x31: u64 old size || u64 new size (0 < old <= new <= the newest head's size).
    Answered by KT_CONSISTENCY_PROOF."""

    TYPE: ClassVar[int] = 0x31
    old_size: int
    new_size: int

    def encode_payload(self) -> bytes:
        return codec.u64(self.old_size) + codec.u64(self.new_size)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtConsistency:
        return cls(r.u64(), r.u64())


@dataclass(frozen=True, slots=True)
class KtLookup(Frame):
    """0x32: var8 username. Answered by KT_LOOKUP_ANSWER; budgeted with LOOKUP_IDENTITY."""

    TYPE: ClassVar[int] = 0x32
    username: str

    def encode_payload(self) -> bytes:
        return codec.var8(self.username.encode("ascii"))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtLookup:
        return cls(decode_username(r.var8()))


@dataclass(frozen=True, slots=True)
class KtEntries(Frame):
    """0x33: u64 start || u16 count (1..2000). Answered by KT_ENTRY_RANGE."""

    TYPE: ClassVar[int] = 0x33
    start: int
    count: int

    def encode_payload(self) -> bytes:
        return codec.u64(self.start) + codec.u16(self.count)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtEntries:
        start, count = r.u64(), r.u16()
        if not 1 <= count <= KT_MAX_RANGE:
            raise DecodeError(f"KT_ENTRIES asks for 1 to {KT_MAX_RANGE} entries")
        return cls(start, count)


@dataclass(frozen=True, slots=True)
class KtOwn(Frame):
    """0x34: empty. Answered by KT_OWN_ENTRIES: the openings of the caller's own
    updates, so that its client can check every leaf under its label."""

    TYPE: ClassVar[int] = 0x34


KT_MAX_RANGE = 2000


# ---- sender certificates (PROTOCOL.md 20) -------------------------------------
#
# GET_CERTIFICATE needs a login (a certificate names the caller); CERT_KEY is public,
# before login too: the key is what clients pin to verify certificates.


@dataclass(frozen=True, slots=True)
class GetCertificate(Frame):
    """0x16: empty. Answered by CERTIFICATE for the caller's name and registered key."""

    TYPE: ClassVar[int] = 0x16


@dataclass(frozen=True, slots=True)
class CertKey(Frame):
    """0x17: empty. Answered by CERT_KEY_ANSWER: the relay's certificate public key."""

    TYPE: ClassVar[int] = 0x17


# ---- server -> client -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits, announced in HELLO so clients and the conformance suite
    can respect (and test) them."""

    max_frame: int
    max_envelope: int
    max_recipients: int
    max_queue: int
    max_prekeys: int
    rate_per_second: int
    rate_burst: int
    envelope_ttl: int
    prekey_low: int

    SIZE: ClassVar[int] = 4 + 4 + 2 + 4 + 2 + 2 + 2 + 4 + 2

    def encode(self) -> bytes:
        return b"".join((
            codec.u32(self.max_frame), codec.u32(self.max_envelope),
            codec.u16(self.max_recipients), codec.u32(self.max_queue),
            codec.u16(self.max_prekeys), codec.u16(self.rate_per_second),
            codec.u16(self.rate_burst), codec.u32(self.envelope_ttl),
            codec.u16(self.prekey_low),
        ))

    @classmethod
    def read(cls, r: codec.Reader) -> Limits:
        return cls(r.u32(), r.u32(), r.u16(), r.u32(), r.u16(), r.u16(), r.u16(), r.u32(),
                   r.u16())


@dataclass(frozen=True, slots=True)
class Hello(Frame):
    """0x80, pushed on connect: challenge (32 random bytes) || Limits (26 bytes)."""

    TYPE: ClassVar[int] = 0x80
    challenge: bytes
    limits: Limits

    def encode_payload(self) -> bytes:
        return self.challenge + self.limits.encode()

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Hello:
        return cls(r.take(CHALLENGE_LEN), Limits.read(r))


@dataclass(frozen=True, slots=True)
class Ok(Frame):
    """0x81: empty. The request succeeded (REGISTER, LOGIN, uploads, ACK,
    DELETE_ACCOUNT)."""

    TYPE: ClassVar[int] = 0x81


@dataclass(frozen=True, slots=True)
class Bundle(Frame):
    """0x92: a PreKeyBundle (docs/PROTOCOL.md), answering FETCH_BUNDLE."""

    TYPE: ClassVar[int] = 0x92
    bundle: bytes

    def encode_payload(self) -> bytes:
        return self.bundle

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Bundle:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class Identity(Frame):
    """0x94: Encode(IK) (33 bytes), answering LOOKUP_IDENTITY."""

    TYPE: ClassVar[int] = 0x94
    identity: bytes

    def encode_payload(self) -> bytes:
        return encode_key(TYPE_ED25519, self.identity)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Identity:
        return cls(decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN)))


@dataclass(frozen=True, slots=True)
class PrekeyCounts(Frame):
    """0x93: u32 one-time X25519 prekeys left || u32 one-time KEM prekeys left."""

    TYPE: ClassVar[int] = 0x93
    one_time: int
    kem_one_time: int

    def encode_payload(self) -> bytes:
        return codec.u32(self.one_time) + codec.u32(self.kem_one_time)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> PrekeyCounts:
        return cls(r.u32(), r.u32())


@dataclass(frozen=True, slots=True)
class Sent(Frame):
    """0xA0: u16 n || n envelope ids, in the order of the SEND."""

    TYPE: ClassVar[int] = 0xA0
    envelope_ids: tuple[bytes, ...]

    def encode_payload(self) -> bytes:
        return codec.u16(len(self.envelope_ids)) + b"".join(self.envelope_ids)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Sent:
        return cls(tuple(r.take(ENVELOPE_ID_LEN) for _ in range(r.u16())))


@dataclass(frozen=True, slots=True)
class Deliver(Frame):
    """0xC0, pushed: envelope id (16) || received-at u64 (Unix seconds) || var32 body."""

    TYPE: ClassVar[int] = 0xC0
    envelope_id: bytes
    received_at: int
    body: bytes

    def encode_payload(self) -> bytes:
        return self.envelope_id + codec.u64(self.received_at) + codec.var32(self.body)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Deliver:
        return cls(r.take(ENVELOPE_ID_LEN), r.u64(), r.var32())


@dataclass(frozen=True, slots=True)
class GroupDeliver(Deliver):
    """0xC3, pushed: a group message, laid out as DELIVER (envelope id || received-at
    u64 || var32 body); acknowledged with ACK like any envelope."""

    TYPE: ClassVar[int] = 0xC3


@dataclass(frozen=True, slots=True)
class PrekeysLow(Frame):
    """0xC1, pushed to the owner: u32 X25519 one-time prekeys left || u32 KEM ones left."""

    TYPE: ClassVar[int] = 0xC1
    one_time: int
    kem_one_time: int

    def encode_payload(self) -> bytes:
        return codec.u32(self.one_time) + codec.u32(self.kem_one_time)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> PrekeysLow:
        return cls(r.u32(), r.u32())


@dataclass(frozen=True, slots=True)
class QueueDone(Frame):
    """0xC2, pushed after login once every queued envelope was sent: u32 how many."""

    TYPE: ClassVar[int] = 0xC2
    delivered: int

    def encode_payload(self) -> bytes:
        return codec.u32(self.delivered)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> QueueDone:
        return cls(r.u32())


@dataclass(frozen=True, slots=True)
class Error(Frame):
    """0xFF: u16 code (ErrorCode) || var16 UTF-8 message for humans."""

    TYPE: ClassVar[int] = 0xFF
    code: int
    message: str = field(default="")

    def encode_payload(self) -> bytes:
        # cut at 1000 bytes without splitting a character
        text = self.message.encode("utf-8")[:1000].decode("utf-8", "ignore").encode("utf-8")
        return codec.u16(self.code) + codec.var16(text)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Error:
        code = r.u16()
        try:
            message = r.var16().decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("error message is not UTF-8") from None
        return cls(code, message)


@dataclass(frozen=True, slots=True)
class KtInfoAnswer(Frame):
    """0xB0: var16 log verifier key (C2SP signed-note, UTF-8) || VRF public key (32)
    || var16 newest signed checkpoint."""

    TYPE: ClassVar[int] = 0xB0
    log_key: str
    vrf_public_key: bytes
    checkpoint: bytes

    def encode_payload(self) -> bytes:
        return (codec.var16(self.log_key.encode("utf-8")) + self.vrf_public_key
                + codec.var16(self.checkpoint))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtInfoAnswer:
        try:
            key = r.var16().decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("the log key is not UTF-8") from None
        return cls(key, r.take(32), _note(r))


def _note(r: codec.Reader) -> bytes:
    note = r.var16()
    if len(note) > MAX_KT_NOTE:
        raise DecodeError(f"a signed checkpoint is at most {MAX_KT_NOTE} bytes")
    return note


def _hashes(r: codec.Reader, limit: int = 64) -> tuple[bytes, ...]:
    count = r.u8()
    if count > limit:
        raise DecodeError(f"at most {limit} hashes")
    return tuple(r.take(32) for _ in range(count))


@dataclass(frozen=True, slots=True)
class KtConsistencyProof(Frame):
    """0xB1: old root (32, the log's root at the old size) || u8 n || n x 32 (RFC 9162
    PROOF(old, D[new]), empty for equal sizes)."""

    TYPE: ClassVar[int] = 0xB1
    old_root: bytes
    proof: tuple[bytes, ...]

    def encode_payload(self) -> bytes:
        return self.old_root + codec.u8(len(self.proof)) + b"".join(self.proof)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtConsistencyProof:
        return cls(r.take(32), _hashes(r))


@dataclass(frozen=True, slots=True)
class KtLookupAnswer(Frame):
    """0xB2: var16 newest signed checkpoint || a LookupAnswer (19.7) against it, to the
    end of the frame."""

    TYPE: ClassVar[int] = 0xB2
    checkpoint: bytes
    answer: bytes

    def encode_payload(self) -> bytes:
        return codec.var16(self.checkpoint) + self.answer

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtLookupAnswer:
        return cls(_note(r), r.rest())


@dataclass(frozen=True, slots=True)
class KtEntryRange(Frame):
    """0xB3: u64 start || u8 f || f x 32 (the frontier of size start) || u16 n ||
    n x 96 (log entries start .. start+n-1)."""

    TYPE: ClassVar[int] = 0xB3
    start: int
    frontier: tuple[bytes, ...]
    entries: tuple[bytes, ...]

    def encode_payload(self) -> bytes:
        return (codec.u64(self.start) + codec.u8(len(self.frontier))
                + b"".join(self.frontier) + codec.u16(len(self.entries))
                + b"".join(self.entries))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtEntryRange:
        start, frontier = r.u64(), _hashes(r)
        count = r.u16()
        if count > KT_MAX_RANGE:
            raise DecodeError(f"at most {KT_MAX_RANGE} entries")
        return cls(start, frontier, tuple(r.take(96) for _ in range(count)))


@dataclass(frozen=True, slots=True)
class OwnEntry:
    index: int
    opening: bytes
    value: bytes
    inclusion: tuple[bytes, ...] = ()
    """PATH(index, D[n]) for the answer's checkpoint of size n."""


@dataclass(frozen=True, slots=True)
class KtOwnEntries(Frame):
    """0xB4: var16 newest signed checkpoint || VRF proof (80) of the caller's name ||
    u16 n || n x (u64 index || opening (16) || var16 value || u8 k || k x 32): every
    update of the caller's name, oldest first, each with its inclusion proof against
    the checkpoint, so that one update is evidence on its own (19.9)."""

    TYPE: ClassVar[int] = 0xB4
    checkpoint: bytes
    vrf_proof: bytes
    entries: tuple[OwnEntry, ...]

    def encode_payload(self) -> bytes:
        return (codec.var16(self.checkpoint) + self.vrf_proof + codec.u16(len(self.entries))
                + b"".join(codec.u64(e.index) + e.opening + codec.var16(e.value)
                           + codec.u8(len(e.inclusion)) + b"".join(e.inclusion)
                           for e in self.entries))

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> KtOwnEntries:
        note, proof = _note(r), r.take(80)
        return cls(note, proof, tuple(OwnEntry(r.u64(), r.take(16), r.var16(), _hashes(r))
                                      for _ in range(r.u16())))


@dataclass(frozen=True, slots=True)
class Certificate(Frame):
    """0x96: var16 certificate (a sender certificate, PROTOCOL.md 20.1)."""

    TYPE: ClassVar[int] = 0x96
    certificate: bytes

    def encode_payload(self) -> bytes:
        return codec.var16(self.certificate)

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> Certificate:
        return cls(r.var16())


@dataclass(frozen=True, slots=True)
class CertKeyAnswer(Frame):
    """0x97: the relay's certificate key, a raw Ed25519 public key (32)."""

    TYPE: ClassVar[int] = 0x97
    public_key: bytes

    def encode_payload(self) -> bytes:
        return self.public_key

    @classmethod
    def decode_payload(cls, r: codec.Reader) -> CertKeyAnswer:
        return cls(r.take(32))


CLIENT_FRAMES: dict[int, type[Frame]] = {
    cls.TYPE: cls
    for cls in (Register, Login, DeleteAccount, UploadSignedPrekeys, UploadOneTimePrekeys,
                FetchBundle, LookupIdentity, PrekeyCount, Send, Ack,
                SetCapability, SealedSend, KtInfo, KtConsistency, KtLookup, KtEntries, KtOwn,
                GetCertificate, CertKey, UploadKeyPackages, FetchKeyPackage, GroupSend)
}
SERVER_FRAMES: dict[int, type[Frame]] = {
    cls.TYPE: cls
    for cls in (Hello, Ok, Bundle, Identity, PrekeyCounts, Sent, Deliver, PrekeysLow,
                QueueDone, Error, KtInfoAnswer, KtConsistencyProof, KtLookupAnswer,
                KtEntryRange, KtOwnEntries,
                Certificate, CertKeyAnswer, KeyPackageAnswer, GroupDeliver)
}


def read_header(data: bytes) -> tuple[int, int]:
    """(type, request id) of a frame whose version is supported."""
    if len(data) < FRAME_HEADER_LEN:
        raise DecodeError("frame shorter than its 6-byte header")
    if data[0] != FRAME_VERSION:
        raise UnsupportedVersion(f"frame version {data[0]} (this side speaks {FRAME_VERSION})")
    return data[1], int.from_bytes(data[2:6], "big")


def _decode(data: bytes, table: dict[int, type[Frame]]) -> tuple[int, Frame]:
    frame_type, request_id = read_header(data)
    cls = table.get(frame_type)
    if cls is None:
        raise UnknownFrameType(f"unknown frame type {frame_type:#04x}")
    r = codec.Reader(data[FRAME_HEADER_LEN:])
    frame = cls.decode_payload(r)
    r.finish()
    return request_id, frame


def decode_client_frame(data: bytes) -> tuple[int, Frame]:
    """Parses a frame a client sent: (request id, frame)."""
    return _decode(data, CLIENT_FRAMES)


def decode_server_frame(data: bytes) -> tuple[int, Frame]:
    """Parses a frame a server sent: (request id, frame)."""
    return _decode(data, SERVER_FRAMES)


def normalize_url(url: str) -> str:
    """The form of a server URL that LOGIN and REGISTER sign: scheme and host in lower
    case, the port always explicit, no path, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"server URL must start with ws:// or wss://, not {url!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"server URL has no host: {url!r}")
    port = parts.port or (443 if scheme == "wss" else 80)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def url_origin(url: str) -> str:
    """A relay's origin, the name of its directory's log key (PROTOCOL.md 19.2 "Key
    names"): the URL's host in lower case, with `:port` only when the port is not the
    scheme's default (wss 443, ws 80); an IPv6 host keeps its brackets."""
    normal = normalize_url(url)
    scheme, rest = normal.split("://", 1)
    host, port = rest.rsplit(":", 1)
    default = "443" if scheme == "wss" else "80"
    return host if port == default else f"{host}:{port}"
