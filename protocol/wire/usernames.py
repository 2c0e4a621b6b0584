"""The username rule shared by client and server."""

from __future__ import annotations

import re

from protocol.wire.errors import InvalidUsername

USERNAME_RE = re.compile(r"[a-z][a-z0-9_.-]{1,30}[a-z0-9]")
USERNAME_RULE = ("3 to 32 characters: a-z first, then a-z, 0-9, '_', '.' or '-', "
                 "ending in a-z or 0-9")
"""PROTOCOL.md section 12. No trailing '_', '.' or '-': `alice.` beside `alice` would
read as the same name."""


def check_username(name: str) -> str:
    if not USERNAME_RE.fullmatch(name):
        raise InvalidUsername(f"invalid username {name!r}: {USERNAME_RULE}")
    return name


def decode_username(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidUsername("username is not ASCII") from None
    return check_username(name)
