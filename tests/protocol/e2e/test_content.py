"""Content inside the encryption (protocol/e2e/content.py): the checkpoint a message
carries for gossip (PROTOCOL.md 19.8) wraps any other content exactly once."""

from __future__ import annotations

import pytest

from protocol.e2e.content import (
    Capability,
    ContentKind,
    Receipt,
    ReceiptType,
    Text,
    decode_content,
    decode_gossiped,
    with_checkpoint,
)
from protocol.wire.errors import DecodeError

NOTE = b"relay.example\n3\n" + b"A" * 44 + b"\n\n\xe2\x80\x94 relay.example sig\n"


def test_a_text_carries_the_senders_checkpoint() -> None:
    text = Text(bytes(range(16)), 1_700_000_000_000, "hi")
    wrapped = with_checkpoint(text.encode(), NOTE)
    assert wrapped[:2] == bytes((1, ContentKind.WITH_CHECKPOINT))
    assert decode_gossiped(wrapped) == (text, NOTE)
    assert decode_content(wrapped) == text  # readers that ignore gossip still read it
    assert decode_gossiped(text.encode()) == (text, None)


def test_a_checkpoint_wraps_once_and_is_never_empty() -> None:
    receipt = Receipt(ReceiptType.READ, (bytes(16),))
    twice = with_checkpoint(with_checkpoint(receipt.encode(), NOTE), NOTE)
    with pytest.raises(DecodeError):
        decode_gossiped(twice)
    with pytest.raises(ValueError):
        with_checkpoint(receipt.encode(), b"")
    empty = bytes((1, ContentKind.WITH_CHECKPOINT, 0, 0)) + receipt.encode()
    with pytest.raises(DecodeError):
        decode_gossiped(empty)
    with pytest.raises(DecodeError):  # truncated
        decode_gossiped(with_checkpoint(receipt.encode(), NOTE)[:30])


def test_a_capability_is_32_bytes_and_never_shown() -> None:
    secret = bytes(range(32))
    item = Capability(secret)
    encoded = item.encode()
    assert encoded == bytes((1, ContentKind.CAPABILITY)) + secret
    assert decode_content(encoded) == item
    assert decode_gossiped(with_checkpoint(encoded, NOTE)) == (item, NOTE)
    assert secret.hex() not in repr(item) and str(secret) not in repr(item)
    for bad in (encoded[:-1], encoded + b"\x00"):
        with pytest.raises(DecodeError):
            decode_content(bad)
    with pytest.raises(ValueError):
        Capability(bytes(31))
