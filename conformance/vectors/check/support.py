"""What every check module shares: the entry type, how entries are listed, and the
comparisons that turn a disagreement into a `VectorMismatch` naming file, entry and field.

A check module reads only `entry.data` (and `entry.doc` for cross-references inside the
same file), never `load()`, so a test can hand it a tampered copy and see it fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from conformance.errors import ConformanceError, MalformedVector, VectorMismatch
from protocol.wire.errors import ProtocolError

Json = dict[str, Any]

# What an entry's label is read from, first match wins (e.g. "ed25519[3] rfc8032_test1").
LABEL_KEYS = ("name", "description", "username", "label")


@dataclass(frozen=True)
class Entry:
    """One checkable unit of a vector file.

    `data` is the JSON value the check reads: one element of a list section, or an object
    made of whole top-level fields (`covers` names the top-level fields it reads). `doc`
    is the whole file, for checks that refer to another part of it.
    """

    file: str
    id: str
    data: Any
    doc: Json
    covers: tuple[str, ...]


def listed(file: str, doc: Json, section: str) -> list[Entry]:
    """One entry per element of the list `doc[section]`."""
    out = []
    for index, item in enumerate(doc[section]):
        label = ""
        if isinstance(item, dict):
            label = next((str(item[k]) for k in LABEL_KEYS if item.get(k)), "")
        elif isinstance(item, str):
            label = item
        entry_id = f"{section}[{index}]" + (f" {label}" if label else "")
        out.append(Entry(file, entry_id, item, doc, (section,)))
    return out


def whole(file: str, doc: Json, entry_id: str, *keys: str) -> Entry:
    """One entry over the top-level fields `keys` taken together."""
    return Entry(file, entry_id, {key: doc[key] for key in keys}, doc, keys)


class At:
    """The comparisons of one entry: each raises VectorMismatch naming the field."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry

    def mismatch(self, field: str, expected: Any, got: Any) -> VectorMismatch:
        return VectorMismatch(self.entry.file, self.entry.id, field, expected, got)

    def eq(self, field: str, expected: Any, got: Any) -> None:
        """`got` (computed by the implementation) equals `expected` (from the vector)."""
        if got != expected:
            raise self.mismatch(field, expected, got)

    def true(self, field: str, condition: bool, what: str) -> None:
        """A property the vector must have (e.g. a length or an order)."""
        if not condition:
            raise self.mismatch(field, what, "not so")

    def raises(self, field: str, expected: str, call: Callable[[], object]) -> None:
        """`call` raises exactly the protocol exception class named `expected`."""
        try:
            call()
        except ProtocolError as exc:
            self.eq(field, expected, type(exc).__name__)
            return
        raise self.mismatch(field, expected, "no error")


def b(value: Any) -> bytes:
    """A hex field as bytes (TypeError/ValueError for anything else: a malformed entry)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, found {type(value).__name__}")
    return bytes.fromhex(value)


CheckFn = Callable[[Entry], None]


def checker(body: Callable[[At, Any], None]) -> CheckFn:
    """Make `check(entry)` from `body(at, data)`.

    A protocol exception the vector does not expect becomes a VectorMismatch on the
    entry's result; an entry that lacks a field or has a non-hex byte string becomes a
    MalformedVector, so a checker run reports it instead of crashing.
    """

    @wraps(body)
    def check(entry: Entry) -> None:
        at = At(entry)
        try:
            body(at, entry.data)
        except ConformanceError:
            raise
        except ProtocolError as exc:
            raise at.mismatch("(result)", "success", type(exc).__name__) from exc
        except KeyError as exc:
            raise MalformedVector(entry.file, entry.id, f"missing field {exc.args[0]!r}") from exc
        except (ValueError, TypeError, IndexError, StopIteration) as exc:
            raise MalformedVector(entry.file, entry.id, type(exc).__name__) from exc

    return check


def dispatch(routes: dict[str, Callable[[At, Any], None]]) -> CheckFn:
    """`check(entry)` choosing the body by the entry's first covered field."""

    def body(at: At, data: Any) -> None:
        section = at.entry.covers[0]
        route = routes.get(at.entry.id) or routes.get(section)
        if route is None:
            raise MalformedVector(at.entry.file, at.entry.id, "no check for this entry")
        route(at, data)

    return checker(body)


def concat(*groups: Iterable[Entry]) -> list[Entry]:
    return [entry for group in groups for entry in group]
