"""sealed.json: sealed sender, crypto_box_seal of the sealed content to the recipient
identity's X25519 form (docs/PROTOCOL.md section 10). The boxes are recorded."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.parties import identity_from
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import MessageKind, SealedContent, unseal

NAME = "sealed"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(listed(NAME, doc, "cases"), [whole(NAME, doc, "malformed_box", "malformed_box")],
                  listed(NAME, doc, "box_failures"), listed(NAME, doc, "content_errors"))


def check_case(at: At, entry: Any) -> None:
    recipient = identity_from(at, "recipient", entry["recipient"])
    content = SealedContent(entry["sender"], MessageKind(entry["kind"]), b(entry["message"]))
    at.eq("content", b(entry["content"]), content.encode())
    at.eq("content", content, SealedContent.decode(b(entry["content"])))
    at.eq("sealed (length)", len(b(entry["content"])) + 48, len(b(entry["sealed"])))
    at.eq("sealed", content, unseal(recipient, b(entry["sealed"])))


def check_malformed_box(at: At, data: Any) -> None:
    entry = data["malformed_box"]
    recipient = IdentityKeyPair.from_seed(b(entry["recipient_seed"]))
    at.raises("malformed_box.error", entry["error"],
              lambda: unseal(recipient, b(entry["sealed"])))


def check_box_failure(at: At, entry: Any) -> None:
    recipient = IdentityKeyPair.from_seed(b(entry["recipient_seed"]))
    at.raises("error", entry["error"], lambda: unseal(recipient, b(entry["sealed"])))


def check_content_error(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: SealedContent.decode(b(entry["content"])))


check = dispatch({"cases": check_case, "malformed_box": check_malformed_box,
                  "box_failures": check_box_failure, "content_errors": check_content_error})
