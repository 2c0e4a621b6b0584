"""The one deterministic random source (docs/PROTOCOL.md section 17.1) is a stream over
SHAKE-256(label): how the draws are cut does not change the bytes."""

from __future__ import annotations

import hashlib

from conformance.drbg import Drbg


def test_draws_are_consecutive_slices_of_one_stream() -> None:
    label = "blindrelay/vectors/v1/test"
    rng = Drbg(label)
    draws = [rng(n) for n in (0, 1, 31, 64, 7)]
    assert [len(d) for d in draws] == [0, 1, 31, 64, 7]
    assert b"".join(draws) == hashlib.shake_256(label.encode("ascii")).digest(103)
    assert Drbg(label)(103) == b"".join(draws)


def test_labels_give_independent_streams() -> None:
    assert Drbg("a")(32) != Drbg("b")(32)
    assert Drbg("a")(32) == Drbg(b"a")(32)
