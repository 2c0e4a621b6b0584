"""messages.json: message header encodings and malformed messages that must be rejected
(docs/PROTOCOL.md sections 6 and 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage, RatchetMessage

NAME = "messages"

DECODERS: dict[str, Callable[[bytes], object]] = {
    "header": Header.decode,
    "ratchet_message": RatchetMessage.decode,
    "prekey_message": PreKeyMessage.decode,
}


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(listed(NAME, doc, "headers"), listed(NAME, doc, "decode_errors"))


def check_header(at: At, entry: Any) -> None:
    header = Header(b(entry["dh"]), entry["pn"], entry["n"])
    at.eq("encoded", b(entry["encoded"]), header.encode())
    at.eq("encoded (length)", 42, HEADER_LEN)
    at.eq("encoded (length)", HEADER_LEN, len(header.encode()))
    at.eq("encoded", header, Header.decode(b(entry["encoded"])))


def check_decode_error(at: At, entry: Any) -> None:
    decode = DECODERS[entry["layout"]]
    at.raises("error", entry["error"], lambda: decode(b(entry["encoded"])))


check = dispatch({"headers": check_header, "decode_errors": check_decode_error})
