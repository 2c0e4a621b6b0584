"""Row versions: how the store notices a row rolled back to an older copy
(docs/CLIENT.md "Encrypted at rest").

Every write gives its row the next value of the store's monotonic counter as its
version, and the version is part of the row's associated data, so it cannot be
changed without the row failing to decrypt. The counter and, for the tables of
named rows (contacts, sessions, prekeys, settings), the version each row must have
are kept in one sealed record in `meta`. A row whose version is not the recorded one
(an older copy of it), or any row newer than the counter (an older copy of the
record), is reported as rolled back. Messages and outbox entries are append-only
logs: only the counter bound applies to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

TRACKED = frozenset({"settings", "prekeys", "contacts", "sessions"})


def row_key(table: str, tag: bytes) -> str:
    return f"{table}:{tag.hex()}"


@dataclass
class RowVersions:
    counter: int = 0
    rows: dict[str, int] = field(default_factory=dict)

    def bump(self, table: str, tag: bytes | None) -> int:
        """The version for a write of this row (tag None: a log row, not tracked)."""
        self.counter += 1
        if tag is not None and table in TRACKED:
            self.rows[row_key(table, tag)] = self.counter
        return self.counter

    def forget(self, table: str, tag: bytes) -> None:
        self.rows.pop(row_key(table, tag), None)

    def problem(self, table: str, tag: bytes | None, version: int) -> str | None:
        """Why a row of this version is not the current one, or None if it is."""
        if version > self.counter:
            return (f"a {table} row is newer than the profile's record of its rows (the "
                    "record was restored from an older copy)")
        if tag is None or table not in TRACKED:
            return None
        expected = self.rows.get(row_key(table, tag))
        if expected is None:
            return f"a {table} row the profile has no record of"
        if version != expected:
            return f"a {table} row is older than the profile's record of it"
        return None

    def encode(self) -> bytes:
        return json.dumps({"counter": self.counter, "rows": self.rows},
                          separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> RowVersions:
        d = json.loads(data)
        return cls(int(d["counter"]), {str(k): int(v) for k, v in d["rows"].items()})
