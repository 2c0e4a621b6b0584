"""safety_numbers.json: Signal's numeric fingerprint version 0 over Encode(IK) and the
username (docs/PROTOCOL.md section 11), recomputed here from the spec's loop too."""

from __future__ import annotations

import hashlib
from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import safety_numbers as fingerprint
from protocol.e2e.keys import TYPE_ED25519, encode_key

NAME = "safety_numbers"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "parameters", "version", "iterations")],
                  listed(NAME, doc, "cases"))


def digest_from_spec(identity: bytes, username: str, iterations: int) -> bytes:
    key = encode_key(TYPE_ED25519, identity)
    digest = (0).to_bytes(2, "big") + key + username.encode("ascii")
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def check_parameters(at: At, data: Any) -> None:
    at.eq("version", data["version"], fingerprint.FINGERPRINT_VERSION)
    at.eq("iterations", data["iterations"], fingerprint.ITERATIONS)


def check_case(at: At, entry: Any) -> None:
    check_parameters(at, at.entry.doc)
    iterations = at.entry.doc["iterations"]
    a, ua = b(entry["identity_a"]), entry["username_a"]
    b_, ub = b(entry["identity_b"]), entry["username_b"]
    for key, user, side in ((a, ua, "a"), (b_, ub, "b")):
        digest = digest_from_spec(key, user, iterations)
        at.eq(f"digest_{side}", b(entry[f"digest_{side}"]), digest)
        at.eq(f"digest_{side}", digest, fingerprint.fingerprint(key, user))
        at.eq(f"digits_{side}", entry[f"digits_{side}"], fingerprint.displayable(digest))
    number = entry["safety_number"]
    at.eq("safety_number", "".join(sorted((entry["digits_a"], entry["digits_b"]))), number)
    at.eq("safety_number", number, fingerprint.safety_number(a, ua, b_, ub))
    at.eq("safety_number", number, fingerprint.safety_number(b_, ub, a, ua))
    at.eq("formatted", entry["formatted"], fingerprint.format_safety_number(number))
    at.eq("qr_payload", entry["qr_payload"], fingerprint.qr_payload(a, ua, b_, ub))
    at.eq("qr_payload", entry["qr_payload"], fingerprint.qr_payload(b_, ub, a, ua))


check = dispatch({"parameters": check_parameters, "cases": check_case})
