"""content.json: message content inside the encryption, before padding
(docs/PROTOCOL.md section 9)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed
from protocol.e2e import content, padding

NAME = "content"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(listed(NAME, doc, "valid"), listed(NAME, doc, "invalid"))


def check_valid(at: At, entry: Any) -> None:
    encoded = b(entry["encoded"])
    item = content.decode_content(encoded)
    if entry["kind"] == "TEXT":
        expected: content.Content = content.Text(
            b(entry["message_id"]), entry["sent_at_ms"], entry["text"])
    elif entry["kind"] == "RECEIPT":
        expected = content.Receipt(content.ReceiptType[entry["receipt_type"]],
                                   tuple(b(m) for m in entry["message_ids"]))
    elif entry["kind"] == "CAPABILITY":
        expected = content.Capability(b(entry["capability"]))
    else:
        expected = content.DecryptionError(entry["failed_kind"], b(entry["ratchet_key"]),
                                           entry["counter"], entry["received_at_ms"])
    at.eq("encoded (decoded)", expected, item)
    at.eq("encoded", encoded, expected.encode())
    at.eq("padded", b(entry["padded"]), padding.pad(encoded))


def check_invalid(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: content.decode_content(b(entry["encoded"])))


check = dispatch({"valid": check_valid, "invalid": check_invalid})
