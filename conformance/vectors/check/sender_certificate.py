"""sender_certificate.json: sender certificates, their statements, and the ones a
recipient refuses (docs/PROTOCOL.md section 20)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.wire.certificates import (
    CERT_PURPOSE,
    certificate_statement,
    decode,
    encode,
    issue,
    signer_from_seed,
    verify_certificate,
)

NAME = "sender_certificate"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "keys", "purpose", "cert_key")],
                  listed(NAME, doc, "valid"), listed(NAME, doc, "invalid"))


def check_keys(at: At, data: Any) -> None:
    at.eq("purpose", data["purpose"], CERT_PURPOSE.hex())
    key = data["cert_key"]
    at.eq("cert_key.public", key["public"], signer_from_seed(b(key["seed"]))[1].hex())


def check_valid(at: At, entry: Any) -> None:
    key = at.entry.doc["cert_key"]
    identity = signer_from_seed(b(entry["identity_seed"]))[1]
    at.eq("identity", entry["identity"], identity.hex())
    name, expires = entry["username"], entry["expires"]
    at.eq("statement", entry["statement"],
          certificate_statement(name, identity, expires).hex())
    at.eq("certificate", entry["certificate"],
          issue(b(key["seed"]), name, identity, expires).hex())
    cert = verify_certificate(b(entry["certificate"]), b(key["public"]), entry["now"])
    at.eq("(verified)", (name, entry["identity"], expires),
          (cert.username, cert.identity.hex(), cert.expires))
    parsed, signature = decode(b(entry["certificate"]))
    at.eq("(re-encoded)", entry["certificate"], encode(parsed, signature).hex())


def check_invalid(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: verify_certificate(
        b(entry["certificate"]), b(entry["cert_public"]), entry["now"]))


check = dispatch({"keys": check_keys, "valid": check_valid, "invalid": check_invalid})
