"""sealed.json: sealed sender, crypto_box_seal of the padded sealed content (with the
sender's certificate) to the recipient identity's X25519 form, and the envelope size
classes (docs/PROTOCOL.md section 10). The boxes are recorded."""

from __future__ import annotations

import hashlib
from typing import Any

from conformance.vectors import load
from conformance.vectors.check.parties import identity_from
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import size_classes
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import SEALED_VERSION, MessageKind, SealedContent, unseal
from protocol.wire.certificates import signer_from_seed

NAME = "sealed"
FILL = 0xA5  # the byte boundary messages are made of (the file's description)
CONSTANTS = ("version", "seal_overhead", "content_overhead_max", "prekey_prefix_max",
             "envelope_classes", "cert_key")


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "constants", *CONSTANTS)], listed(NAME, doc, "cases"),
                  listed(NAME, doc, "boundaries"), listed(NAME, doc, "plaintexts"),
                  [whole(NAME, doc, "malformed_box", "malformed_box")],
                  listed(NAME, doc, "box_failures"), listed(NAME, doc, "content_errors"))


def check_constants(at: At, data: Any) -> None:
    at.eq("version", data["version"], SEALED_VERSION)
    at.eq("seal_overhead", data["seal_overhead"], size_classes.SEAL_OVERHEAD)
    at.eq("content_overhead_max", data["content_overhead_max"],
          size_classes.CONTENT_OVERHEAD_MAX)
    at.eq("prekey_prefix_max", data["prekey_prefix_max"], size_classes.PREKEY_PREFIX_MAX)
    at.eq("envelope_classes", data["envelope_classes"], list(size_classes.ENVELOPE_CLASSES))
    at.eq("cert_key.public", b(data["cert_key"]["public"]),
          signer_from_seed(b(data["cert_key"]["seed"]))[1])


def _content(at: At, entry: Any, message: bytes) -> SealedContent:
    """The entry's content; its certificate verifies under cert_key and names `sender`."""
    content = SealedContent(b(entry["certificate"]), MessageKind(entry["kind"]), message)
    cert_public = b(at.entry.doc["cert_key"]["public"])
    at.eq("sender", entry["sender"], content.verify_sender(cert_public, 0).username)
    return content


def check_case(at: At, entry: Any) -> None:
    recipient = identity_from(at, "recipient", entry["recipient"])
    content = _content(at, entry, b(entry["message"]))
    at.eq("content", b(entry["content"]), content.encode())
    at.eq("content", content, SealedContent.decode(b(entry["content"])))
    at.eq("sealed (length)", len(b(entry["content"])) + 48, len(b(entry["sealed"])))
    at.true("sealed (length)", len(b(entry["sealed"])) in at.entry.doc["envelope_classes"],
            "one of envelope_classes")
    at.eq("sealed", content, unseal(recipient, b(entry["sealed"])))


def check_boundary(at: At, entry: Any) -> None:
    content = _content(at, entry, bytes([FILL]) * entry["message_length"])
    limit = entry.get("limit", size_classes.MAX_ENVELOPE_CLASS)
    if "error" in entry:
        at.raises("error", entry["error"], lambda: content.encode(limit))
        return
    encoded = content.encode(limit)
    at.eq("content_length", entry["content_length"], len(encoded))
    at.eq("envelope_length", entry["envelope_length"], len(encoded) + size_classes.SEAL_OVERHEAD)
    at.true("envelope_length", entry["envelope_length"] in at.entry.doc["envelope_classes"],
            "one of envelope_classes")
    at.eq("content_sha256", b(entry["content_sha256"]), hashlib.sha256(encoded).digest())
    at.eq("content (decoded)", content, SealedContent.decode(encoded))


def check_plaintext(at: At, entry: Any) -> None:
    n = entry["plaintext_length"]
    if "error" in entry:
        at.raises("error", entry["error"], lambda: size_classes.envelope_size(n))
        return
    at.eq("ratchet_message_length", entry["ratchet_message_length"],
          size_classes.ratchet_message_len(n))
    at.eq("envelope_length", entry["envelope_length"], size_classes.envelope_size(n))


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


check = dispatch({"constants": check_constants, "cases": check_case,
                  "boundaries": check_boundary, "plaintexts": check_plaintext,
                  "malformed_box": check_malformed_box, "box_failures": check_box_failure,
                  "content_errors": check_content_error})
