"""What the relay may read of a group message (PROTOCOL.md 21): the cleartext header
of an MLS message (RFC 9420 section 6), nothing encrypted.

    MLSMessage = version u16 (1) || wire_format u16 || ...
    PrivateMessage: group_id<V> || epoch u64 || content_type u8 || (encrypted rest)
    PublicMessage:  group_id<V> || epoch u64 || sender || authenticated_data<V>
                    || content_type u8 || (content, signature, tags)
    Welcome:        no group header (cipher_suite u16, then ciphertexts)

The relay orders commits per (group, epoch) and so needs the group id, the epoch and
whether the message is a commit; that is everything it parses. This module is in the
wire layer so the relay can import it: it decodes a header, it cannot decrypt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.wire import tls
from protocol.wire.errors import DecodeError

MLS10 = 1


class WireFormat(IntEnum):
    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


COMMIT = 3
"""ContentType commit (RFC 9420 section 6)."""


@dataclass(frozen=True, slots=True)
class GroupHeader:
    wire_format: WireFormat
    group_id: bytes = b""  # empty for a Welcome
    epoch: int = 0
    content_type: int = 0

    @property
    def is_commit(self) -> bool:
        return self.content_type == COMMIT


def _sender(r: tls.Reader) -> None:
    kind = r.u8()
    if kind in (1, 2):  # member, external: an index
        r.u32()
    elif kind not in (3, 4):  # new member proposal / commit: nothing
        raise DecodeError(f"unknown MLS sender type {kind}")


def parse_group_header(data: bytes) -> GroupHeader:
    """The header of a PublicMessage, PrivateMessage or Welcome; DecodeError for
    anything else (a relay carries no GroupInfo or KeyPackage as a group message)."""
    r = tls.Reader(data)
    if r.u16() != MLS10:
        raise DecodeError("not an MLS 1.0 message")
    value = r.u16()
    if value == WireFormat.WELCOME:
        return GroupHeader(WireFormat.WELCOME)
    if value not in (WireFormat.PUBLIC_MESSAGE, WireFormat.PRIVATE_MESSAGE):
        raise DecodeError(f"MLS wire format {value} is not a group message")
    wire_format = WireFormat(value)
    group_id, epoch = r.opaque(), r.u64()
    if wire_format is WireFormat.PUBLIC_MESSAGE:
        _sender(r)
        r.opaque()  # authenticated data
    content_type = r.u8()
    if content_type not in (1, 2, 3):
        raise DecodeError(f"unknown MLS content type {content_type}")
    if not group_id:
        raise DecodeError("an MLS group id is not empty")
    return GroupHeader(wire_format, group_id, epoch, content_type)
