"""padding.json: Signal-style padding and strict unpadding (docs/PROTOCOL.md section 8)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import padding

NAME = "padding"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "bucket", "bucket")], listed(NAME, doc, "valid"),
                  [whole(NAME, doc, "valid bodies from rng", "rng", "valid")],
                  listed(NAME, doc, "invalid"))


def check_valid(at: At, entry: Any) -> None:
    body, padded = b(entry["body"]), b(entry["padded"])
    at.eq("padded", padded, padding.pad(body))
    at.eq("padded (length + 1 mod bucket)", 0, (len(padded) + 1) % at.entry.doc["bucket"])
    at.eq("body", body, padding.unpad(padded))


def check_rng(at: At, data: Any) -> None:
    rng = Drbg(data["rng"])
    for index, entry in enumerate(data["valid"]):
        if "description" not in entry:
            at.eq(f"valid[{index}].body", b(entry["body"]), rng(len(entry["body"]) // 2))


def check_bucket(at: At, data: Any) -> None:
    at.eq("bucket", data["bucket"], padding.BUCKET)


def check_invalid(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: padding.unpad(b(entry["padded"])))


check = dispatch({"valid": check_valid, "valid bodies from rng": check_rng,
                  "bucket": check_bucket, "invalid": check_invalid})
