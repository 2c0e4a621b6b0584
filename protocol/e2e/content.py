"""What travels inside the encryption: the application content of one message.

    content = version u8 (1) || kind u8 || body
    TEXT    (1): message id (16) || sent_at u64 (ms since the Unix epoch) || var32 UTF-8 text
    RECEIPT (2): receipt type u8 (1 delivered, 2 read) || u16 n (>= 1) || n message ids (16)
    DECRYPTION_ERROR (3): failed kind u8 (1 RATCHET, 2 PREKEY) || ratchet key (32)
                          || counter u32 || received_at u64 (ms)
    WITH_CHECKPOINT (4): var16 signed checkpoint (C2SP note) || content (not kind 4)
    CAPABILITY (5): the sender's delivery capability (32)

CAPABILITY gives the recipient the 32 bytes it must show the relay to send sealed
envelopes to the sender (PROTOCOL.md 16.10): only inside the encryption, never logged.

WITH_CHECKPOINT wraps another content with the sender's newest verified directory
head (PROTOCOL.md 19.8, "gossip"): the receiver checks that the relay showed both
ends one history. It is inside the encryption, so the relay cannot strip or swap it
without breaking the message, and padding (section 8) hides its length.

Receipts and decryption errors are ordinary encrypted, padded messages, so the relay
cannot tell them from text. A decryption error tells the sender of a message that
could not be decrypted which one it was (PROTOCOL.md 9.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.wire import codec
from protocol.wire.errors import DecodeError

CONTENT_VERSION = 1
MESSAGE_ID_LEN = 16
MAX_RECEIPT_IDS = 1000
RATCHET_KEY_LEN = 32
CAPABILITY_LEN = 32


class ContentKind(IntEnum):
    TEXT = 1
    RECEIPT = 2
    DECRYPTION_ERROR = 3
    WITH_CHECKPOINT = 4
    CAPABILITY = 5


MAX_CHECKPOINT_LEN = 16384


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


@dataclass(frozen=True, slots=True)
class DecryptionError:
    """A message from the recipient of this content could not be decrypted
    (PROTOCOL.md 9.2): its kind, and its ratchet header's key and counter N (zeros
    when its header did not parse), and when the relay delivered it."""

    failed_kind: int  # 1 RATCHET, 2 PREKEY: the sealed content's kind (section 10)
    ratchet_key: bytes
    counter: int
    received_at_ms: int

    def encode(self) -> bytes:
        return b"".join((
            codec.u8(CONTENT_VERSION), codec.u8(ContentKind.DECRYPTION_ERROR),
            codec.u8(self.failed_kind), self.ratchet_key, codec.u32(self.counter),
            codec.u64(self.received_at_ms),
        ))


@dataclass(frozen=True, slots=True)
class Capability:
    """The sender's current delivery capability (PROTOCOL.md 9.1, 16.10): what the
    recipient shows the relay to send sealed envelopes to the sender. A secret: its
    repr does not show it, and nothing logs it."""

    capability: bytes

    def __post_init__(self) -> None:
        if len(self.capability) != CAPABILITY_LEN:
            raise ValueError(f"a capability is {CAPABILITY_LEN} bytes")

    def __repr__(self) -> str:
        return "Capability(<32 bytes>)"

    def encode(self) -> bytes:
        return codec.u8(CONTENT_VERSION) + codec.u8(ContentKind.CAPABILITY) + self.capability


Content = Text | Receipt | DecryptionError | Capability


def with_checkpoint(content: bytes, checkpoint: bytes) -> bytes:
    """Wraps encoded content (any kind but 4) with the sender's signed checkpoint."""
    if not checkpoint or len(checkpoint) > MAX_CHECKPOINT_LEN:
        raise ValueError(f"a checkpoint is 1 to {MAX_CHECKPOINT_LEN} bytes")
    return (codec.u8(CONTENT_VERSION) + codec.u8(ContentKind.WITH_CHECKPOINT)
            + codec.var16(checkpoint) + content)


def decode_gossiped(data: bytes) -> tuple[Content, bytes | None]:
    """Content and the sender's checkpoint, if the content carries one."""
    if len(data) >= 2 and data[0] == CONTENT_VERSION and data[1] == ContentKind.WITH_CHECKPOINT:
        r = codec.Reader(data[2:])
        checkpoint = r.var16()
        if not checkpoint or len(checkpoint) > MAX_CHECKPOINT_LEN:
            raise DecodeError(f"a checkpoint is 1 to {MAX_CHECKPOINT_LEN} bytes")
        return _decode_plain(r.rest()), checkpoint
    return _decode_plain(data), None


def decode_content(data: bytes) -> Content:
    """The content, unwrapped from WITH_CHECKPOINT if it is (the checkpoint dropped)."""
    return decode_gossiped(data)[0]


def _decode_plain(data: bytes) -> Content:
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
    elif kind == ContentKind.DECRYPTION_ERROR:
        failed_kind = r.u8()
        if failed_kind not in (1, 2):
            raise DecodeError(f"unknown message kind {failed_kind} in a decryption error")
        out = DecryptionError(failed_kind, r.take(RATCHET_KEY_LEN), r.u32(), r.u64())
    elif kind == ContentKind.CAPABILITY:
        out = Capability(r.take(CAPABILITY_LEN))
    else:
        raise DecodeError(f"unknown content kind {kind}")
    r.finish()
    return out
