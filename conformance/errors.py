"""The errors of the conformance products: one root, and what a failed vector check says.

A tester catches `ConformanceError` to tell "the implementation disagrees with the
vectors" apart from a crash. `VectorMismatch` names the vector file, the entry and the
field (docs/PROTOCOL.md section 17), so a failure can be found in the JSON by eye.

Its message never prints more than the vectors already publish: every value it shows is
either read from the public vector file or computed from that file's test keys, and
long byte strings are cut to their length and first and last bytes. The full values
stay on the exception's attributes for a debugger.
"""

from __future__ import annotations

from typing import Any

# Byte strings longer than this (in bytes) are abbreviated in messages.
SHOWN_BYTES = 16


def show(value: Any) -> str:
    """A short, printable form of an expected or observed value."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) <= SHOWN_BYTES:
            return f"{bytes(value).hex() or '(empty)'}"
        return f"{len(value)} bytes {bytes(value[:6]).hex()}..{bytes(value[-6:]).hex()}"
    if isinstance(value, str) and len(value) > 2 * SHOWN_BYTES:
        return f"{value[:12]}..{value[-12:]} ({len(value)} chars)"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:36]}..{text[-36:]}"


class ConformanceError(Exception):
    """Root of every error the conformance products raise on purpose."""


class VectorMismatch(ConformanceError):
    """The implementation's output differs from a vector entry's field."""

    def __init__(self, file: str, entry: str, field: str, expected: Any, got: Any) -> None:
        self.file = file
        self.entry = entry
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"{file}.json, {entry}, field {field!r}: expected {show(expected)}, "
                         f"got {show(got)}")


class MalformedVector(ConformanceError):
    """A vector entry cannot be read: a field is missing or is not what its format says."""

    def __init__(self, file: str, entry: str, detail: str) -> None:
        self.file = file
        self.entry = entry
        self.detail = detail
        super().__init__(f"{file}.json, {entry}: malformed entry ({detail})")
