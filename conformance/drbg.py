"""The one deterministic random source (docs/PROTOCOL.md section 17.1).

`Drbg(label)(n)` returns the next n bytes of the SHAKE-256 output stream over the
ASCII label (FIPS 202). Every function of `protocol` that draws randomness takes an
`rng` argument; the test vectors, the generator, the vector checker and the protocol
tests all inject this one, so any run reproduces every value. `drbg.json` among the
vectors pins its output, so an independent implementation can check its own copy.
"""

from __future__ import annotations

import hashlib


class Drbg:
    """rng(n) = the next n bytes of SHAKE-256(ASCII label)."""

    __slots__ = ("label", "used")

    def __init__(self, label: str | bytes) -> None:
        self.label = label.encode("ascii") if isinstance(label, str) else bytes(label)
        self.used = 0

    def __call__(self, n: int) -> bytes:
        # SHAKE-256 has no streaming read in hashlib: squeeze the prefix and cut
        out = hashlib.shake_256(self.label).digest(self.used + n)[self.used :]
        self.used += n
        return out
