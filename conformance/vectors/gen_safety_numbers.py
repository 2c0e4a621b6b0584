"""safety_numbers.json: safety numbers of three pairs of identities and usernames
(docs/PROTOCOL.md section 11)."""

from __future__ import annotations

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import h, identity
from protocol.e2e import safety_numbers as fingerprint


def build() -> Json:
    alice, bob, carol = identity("alice"), identity("bob"), identity("carol")
    cases = []
    for (a, ua), (b, ub) in (
        ((alice, "alice"), (bob, "bob")),
        ((alice, "alice"), (carol, "carol.c-d_e")),
        ((bob, "bob"), (bob, "bobby")),  # same key, different usernames
    ):
        half_a = fingerprint.fingerprint(a.public, ua)
        half_b = fingerprint.fingerprint(b.public, ub)
        number = fingerprint.safety_number(a.public, ua, b.public, ub)
        assert number == fingerprint.safety_number(b.public, ub, a.public, ua)
        cases.append({
            "identity_a": h(a.public), "username_a": ua,
            "identity_b": h(b.public), "username_b": ub,
            "digest_a": h(half_a), "digest_b": h(half_b),
            "digits_a": fingerprint.displayable(half_a),
            "digits_b": fingerprint.displayable(half_b),
            "safety_number": number,
            "formatted": fingerprint.format_safety_number(number),
            "qr_payload": fingerprint.qr_payload(a.public, ua, b.public, ub),
        })
    return {
        "description": "Safety numbers: Signal's numeric fingerprint version 0 over "
        "Encode(IK) and the username, 5200 iterations of SHA-512.",
        "format": FORMAT,
        "version": fingerprint.FINGERPRINT_VERSION,
        "iterations": fingerprint.ITERATIONS,
        "cases": cases,
    }
