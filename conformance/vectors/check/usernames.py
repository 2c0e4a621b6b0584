"""usernames.json: the username rule [a-z][a-z0-9_.-]{1,30}[a-z0-9], ASCII
(docs/PROTOCOL.md section 12)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.wire.usernames import USERNAME_RE, check_username, decode_username

NAME = "usernames"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "pattern", "pattern")], listed(NAME, doc, "valid"),
                  listed(NAME, doc, "invalid"), listed(NAME, doc, "invalid_raw"))


def check_pattern(at: At, data: Any) -> None:
    at.eq("pattern", data["pattern"], USERNAME_RE.pattern)


def check_valid(at: At, name: Any) -> None:
    at.eq("(username)", name, check_username(name))
    at.eq("(username)", name, decode_username(name.encode("ascii")))


def check_invalid(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: check_username(entry["username"]))
    at.raises("error", entry["error"], lambda: decode_username(b(entry["utf8"])))


def check_invalid_raw(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: decode_username(b(entry["raw"])))


check = dispatch({"pattern": check_pattern, "valid": check_valid, "invalid": check_invalid,
                  "invalid_raw": check_invalid_raw})
