"""drbg.json: the deterministic random source itself (docs/PROTOCOL.md section 17.1)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, dispatch, listed

NAME = "drbg"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return listed(NAME, doc, "cases")


def check_case(at: At, case: Any) -> None:
    rng = Drbg(case["label"])
    for index, draw in enumerate(case["draws"]):
        at.eq(f"draws[{index}].output", b(draw["output"]), rng(draw["n"]))


check = dispatch({"cases": check_case})
