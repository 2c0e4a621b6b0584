"""drbg.json: the deterministic random source itself (docs/PROTOCOL.md section 17.1)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, h


def build() -> Json:
    cases = []
    for label, sizes in ((f"{LABEL}drbg/example", (32, 32, 64, 1, 7)), ("", (16,))):
        rng = Drbg(label)
        cases.append({
            "label": label,
            "draws": [{"n": n, "output": h(rng(n))} for n in sizes],
        })
    return {
        "description": "The deterministic random source of all vectors: rng(n) returns the "
        "next n bytes of SHAKE-256(ASCII label).",
        "format": FORMAT,
        "cases": cases,
    }
