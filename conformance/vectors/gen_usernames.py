"""usernames.json: valid and invalid usernames (docs/PROTOCOL.md section 12)."""

from __future__ import annotations

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, h
from protocol.wire.usernames import check_username, decode_username


def build() -> Json:
    valid = ["abc", "alice", "bob", "a1b", "x.y-z_0", "a" * 32, "z9" + "-" * 29 + "0",
             "a_1", "b.2", "c-d"]
    invalid = ["", "ab", "a" * 33, "1abc", "_abc", "-abc", ".abc", "Abc", "abC", "ab c",
               "abc\n", "ab\u00e7", "a\u0131b", "a1_", "alice.", "bob-", "carol_",
               "z9" + "-" * 30]
    for name in valid:
        check_username(name)
    checked = []
    for name in invalid:
        checked.append({"username": name, "utf8": h(name.encode()),
                        "error": error_name(check_username, name)})
    raw_errors = [{"raw": h(raw), "error": error_name(decode_username, raw)}
                  for raw in (b"ab\xffc", b"b\xc3\xb6b")]
    return {
        "description": "Usernames: [a-z][a-z0-9_.-]{1,30}[a-z0-9], ASCII (no trailing "
                       "'_', '.' or '-').",
        "format": FORMAT,
        "pattern": "[a-z][a-z0-9_.-]{1,30}[a-z0-9]",
        "valid": valid,
        "invalid": checked,
        "invalid_raw": raw_errors,
    }
