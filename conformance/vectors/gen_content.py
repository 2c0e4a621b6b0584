"""content.json: message content inside the encryption, valid and invalid
(docs/PROTOCOL.md section 9)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, h
from protocol.e2e import content as msg_content
from protocol.e2e import padding


def build() -> Json:
    rng = Drbg("blindrelay/vectors/v1/content")
    text_id, read_a, read_b = rng(16), rng(16), rng(16)
    items: list[tuple[str, msg_content.Content]] = [
        ("text", msg_content.Text(text_id, 1_780_000_000_123, "hello, Bob \u2603")),
        ("empty text", msg_content.Text(rng(16), 0, "")),
        ("delivered receipt", msg_content.Receipt(msg_content.ReceiptType.DELIVERED, (text_id,))),
        ("read receipt", msg_content.Receipt(msg_content.ReceiptType.READ, (read_a, read_b))),
        ("decryption error", msg_content.DecryptionError(1, rng(32), 7, 1_780_000_000_456)),
        ("decryption error, header unreadable",
         msg_content.DecryptionError(2, bytes(32), 0, 1_780_000_000_789)),
        ("delivery capability", msg_content.Capability(rng(32))),
    ]
    valid = []
    for name, item in items:
        encoded = item.encode()
        assert msg_content.decode_content(encoded) == item
        entry: Json = {"description": name, "encoded": h(encoded),
                       "padded": h(padding.pad(encoded))}
        if isinstance(item, msg_content.Text):
            entry |= {"kind": "TEXT", "message_id": h(item.message_id),
                      "sent_at_ms": item.sent_at_ms, "text": item.text}
        elif isinstance(item, msg_content.Receipt):
            entry |= {"kind": "RECEIPT", "receipt_type": item.receipt_type.name,
                      "message_ids": [h(m) for m in item.message_ids]}
        elif isinstance(item, msg_content.Capability):
            entry |= {"kind": "CAPABILITY", "capability": h(item.capability)}
        else:
            entry |= {"kind": "DECRYPTION_ERROR", "failed_kind": item.failed_kind,
                      "ratchet_key": h(item.ratchet_key), "counter": item.counter,
                      "received_at_ms": item.received_at_ms}
        valid.append(entry)
    good = items[0][1].encode()
    bad = [
        ("unknown version", b"\x02" + good[1:]),
        ("unknown kind", good[:1] + b"\x06" + good[2:]),
        ("trailing byte", good + b"\x00"),
        ("truncated", good[:-1]),
        ("text not UTF-8", msg_content.Text(text_id, 1, "a").encode()[:-1] + b"\xff"),
        ("receipt with no ids", b"\x01\x02\x01\x00\x00"),
        ("unknown receipt type", b"\x01\x02\x03\x00\x01" + text_id),
        ("decryption error of an unknown message kind",
         b"\x01\x03\x03" + bytes(32) + bytes(12)),
        ("decryption error, truncated", items[4][1].encode()[:-1]),
        ("decryption error, trailing byte", items[4][1].encode() + b"\x00"),
        ("capability, truncated", items[6][1].encode()[:-1]),
        ("capability, trailing byte", items[6][1].encode() + b"\x00"),
    ]
    invalid = [{"description": d, "encoded": h(e),
                "error": error_name(msg_content.decode_content, e)} for d, e in bad]
    return {
        "description": "Message content inside the encryption (protocol/msg_content.py), before "
                       "padding.",
        "format": FORMAT,
        "valid": valid,
        "invalid": invalid,
    }
