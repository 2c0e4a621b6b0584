"""Message framing (RFC 9420 section 6): who sent what in which group and epoch,
signed (FramedContentTBS), and carried either in the clear with a membership tag
(PublicMessage, 6.2) or encrypted under the secret tree (PrivateMessage, 6.3); and the
MLSMessage envelope around every kind of message (section 6).

This module holds the structures and their encodings; signing, tagging and
encrypting them are in `protection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from protocol.e2e.mls.key_package import KeyPackage
from protocol.e2e.mls.proposals import Commit, Proposal
from protocol.wire import tls
from protocol.wire.errors import DecodeError

PROTOCOL_VERSION_MLS10 = 1


class ContentType(IntEnum):
    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(IntEnum):
    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


class WireFormat(IntEnum):
    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


@dataclass(frozen=True)
class Sender:
    """A member's leaf index, an external sender's index, or a new member (6)."""

    sender_type: int
    index: int = 0

    def encode(self) -> bytes:
        out = tls.u8(self.sender_type)
        if self.sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
            out += tls.u32(self.index)
        return out

    @classmethod
    def read(cls, r: tls.Reader) -> Sender:
        kind = r.u8()
        if kind in (SenderType.MEMBER, SenderType.EXTERNAL):
            return cls(kind, r.u32())
        if kind in (SenderType.NEW_MEMBER_PROPOSAL, SenderType.NEW_MEMBER_COMMIT):
            return cls(kind)
        raise DecodeError(f"unknown sender type {kind}")


ContentBody = bytes | Proposal | Commit
"""Application data (bytes), a Proposal or a Commit, by content type."""


def content_type_of(body: ContentBody) -> ContentType:
    if isinstance(body, bytes):
        return ContentType.APPLICATION
    return ContentType.PROPOSAL if isinstance(body, Proposal) else ContentType.COMMIT


def encode_body(body: ContentBody) -> bytes:
    return tls.opaque(body) if isinstance(body, bytes) else body.encode()


def read_body(content_type: int, r: tls.Reader) -> ContentBody:
    if content_type == ContentType.APPLICATION:
        return r.opaque()
    if content_type == ContentType.PROPOSAL:
        return Proposal.read(r)
    if content_type == ContentType.COMMIT:
        return Commit.read(r)
    raise DecodeError(f"unknown content type {content_type}")


@dataclass(frozen=True)
class FramedContent:
    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    body: ContentBody

    @property
    def content_type(self) -> ContentType:
        return content_type_of(self.body)

    def encode(self) -> bytes:
        return (tls.opaque(self.group_id) + tls.u64(self.epoch) + self.sender.encode()
                + tls.opaque(self.authenticated_data) + tls.u8(self.content_type)
                + encode_body(self.body))

    @classmethod
    def read(cls, r: tls.Reader) -> FramedContent:
        group_id, epoch, sender, aad = r.opaque(), r.u64(), Sender.read(r), r.opaque()
        return cls(group_id, epoch, sender, aad, read_body(r.u8(), r))


@dataclass(frozen=True)
class FramedContentAuthData:
    """The signature, and for a commit the confirmation tag (6.1)."""

    signature: bytes
    confirmation_tag: bytes | None = None

    def encode(self) -> bytes:
        out = tls.opaque(self.signature)
        if self.confirmation_tag is not None:
            out += tls.opaque(self.confirmation_tag)
        return out

    @classmethod
    def read(cls, r: tls.Reader, content_type: int) -> FramedContentAuthData:
        signature = r.opaque()
        tag = r.opaque() if content_type == ContentType.COMMIT else None
        return cls(signature, tag)


@dataclass(frozen=True)
class AuthenticatedContent:
    """Section 6.1: what proposals by reference hash and transcripts cover."""

    wire_format: int
    content: FramedContent
    auth: FramedContentAuthData

    def encode(self) -> bytes:
        return tls.u16(self.wire_format) + self.content.encode() + self.auth.encode()

    @classmethod
    def read(cls, r: tls.Reader) -> AuthenticatedContent:
        wire_format = r.u16()
        content = FramedContent.read(r)
        return cls(wire_format, content, FramedContentAuthData.read(r, content.content_type))

    def confirmed_transcript_input(self) -> bytes:
        """ConfirmedTranscriptHashInput (8.2): wire format, content, signature."""
        return (tls.u16(self.wire_format) + self.content.encode()
                + tls.opaque(self.auth.signature))


@dataclass(frozen=True)
class PublicMessage:
    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: bytes | None = None

    def encode(self) -> bytes:
        out = self.content.encode() + self.auth.encode()
        if self.content.sender.sender_type == SenderType.MEMBER:
            assert self.membership_tag is not None
            out += tls.opaque(self.membership_tag)
        return out

    @classmethod
    def read(cls, r: tls.Reader) -> PublicMessage:
        content = FramedContent.read(r)
        auth = FramedContentAuthData.read(r, content.content_type)
        tag = r.opaque() if content.sender.sender_type == SenderType.MEMBER else None
        return cls(content, auth, tag)


@dataclass(frozen=True)
class PrivateMessage:
    group_id: bytes
    epoch: int
    content_type: int
    authenticated_data: bytes
    encrypted_sender_data: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def encode(self) -> bytes:
        return (tls.opaque(self.group_id) + tls.u64(self.epoch) + tls.u8(self.content_type)
                + tls.opaque(self.authenticated_data) + tls.opaque(self.encrypted_sender_data)
                + tls.opaque(self.ciphertext))

    @classmethod
    def read(cls, r: tls.Reader) -> PrivateMessage:
        group_id, epoch, content_type = r.opaque(), r.u64(), r.u8()
        if content_type not in tuple(ContentType):
            raise DecodeError(f"unknown content type {content_type}")
        return cls(group_id, epoch, content_type, r.opaque(), r.opaque(), r.opaque())


@dataclass(frozen=True)
class MLSMessage:
    """Section 6: version, wire format, then the message of that format. `message`
    is a PublicMessage, PrivateMessage, Welcome, GroupInfo or KeyPackage."""

    wire_format: int
    message: object
    version: int = PROTOCOL_VERSION_MLS10

    def encode(self) -> bytes:
        body = self.message.encode()  # type: ignore[attr-defined]
        assert isinstance(body, bytes)
        return tls.u16(self.version) + tls.u16(self.wire_format) + body

    @classmethod
    def read(cls, r: tls.Reader) -> MLSMessage:
        from protocol.e2e.mls.welcome import GroupInfo, Welcome
        version = r.u16()
        if version != PROTOCOL_VERSION_MLS10:
            raise DecodeError(f"unsupported MLS version {version}")
        wire_format = r.u16()
        readers = {
            WireFormat.PUBLIC_MESSAGE: PublicMessage.read,
            WireFormat.PRIVATE_MESSAGE: PrivateMessage.read,
            WireFormat.WELCOME: Welcome.read,
            WireFormat.GROUP_INFO: GroupInfo.read,
            WireFormat.KEY_PACKAGE: KeyPackage.read,
        }
        read = readers.get(wire_format)  # type: ignore[call-overload]
        if read is None:
            raise DecodeError(f"unknown wire format {wire_format}")
        return cls(wire_format, read(r), version)
