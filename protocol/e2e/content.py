"""What travels inside the encryption: the application content of one message.

    content = version u8 (1) || kind u8 || body
    TEXT    (1): message id (16) || sent_at u64 (ms since the Unix epoch) || var32 UTF-8 text
    RECEIPT (2): receipt type u8 (1 delivered, 2 read) || u16 n (>= 1) || n message ids (16)

Receipts are ordinary encrypted, padded messages, so the relay cannot tell them from
text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.wire import codec
from protocol.wire.errors import DecodeError

CONTENT_VERSION = 1
MESSAGE_ID_LEN = 16
MAX_RECEIPT_IDS = 1000


class ContentKind(IntEnum):
    TEXT = 1
    RECEIPT = 2


class ReceiptType(IntEnum):
    DELIVERED = 1
    READ = 2


@dataclass(frozen=True, slots=True)
class Text:
    message_id: bytes
    sent_at_ms: int
    text: str

    def encode(self) -> bytes:
        return b"".join((
            codec.u8(CONTENT_VERSION), codec.u8(ContentKind.TEXT), self.message_id,
            codec.u64(self.sent_at_ms), codec.var32(self.text.encode("utf-8")),
        ))


@dataclass(frozen=True, slots=True)
class Receipt:
    receipt_type: ReceiptType
    message_ids: tuple[bytes, ...]

    def encode(self) -> bytes:
        return b"".join((
            codec.u8(CONTENT_VERSION), codec.u8(ContentKind.RECEIPT),
            codec.u8(self.receipt_type), codec.u16(len(self.message_ids)),
            *self.message_ids,
        ))


Content = Text | Receipt


def decode_content(data: bytes) -> Content:
    r = codec.Reader(data)
    r.expect(CONTENT_VERSION, "content version")
    kind = r.u8()
    out: Content
    if kind == ContentKind.TEXT:
        message_id = r.take(MESSAGE_ID_LEN)
        sent_at = r.u64()
        try:
            text = r.var32().decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("message text is not UTF-8") from None
        out = Text(message_id, sent_at, text)
    elif kind == ContentKind.RECEIPT:
        value = r.u8()
        try:
            receipt_type = ReceiptType(value)
        except ValueError:
            raise DecodeError(f"unknown receipt type {value}") from None
        count = r.u16()
        if not 1 <= count <= MAX_RECEIPT_IDS:
            raise DecodeError(f"a receipt names 1 to {MAX_RECEIPT_IDS} messages, not {count}")
        out = Receipt(receipt_type, tuple(r.take(MESSAGE_ID_LEN) for _ in range(count)))
    else:
        raise DecodeError(f"unknown content kind {kind}")
    r.finish()
    return out
