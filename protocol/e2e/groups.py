"""blindrelay's conventions on top of MLS (docs/PROTOCOL.md 21.4, 21.5): who a member
is, where a group keeps its name, and the code members compare.

- A member's MLS signature key is its blindrelay identity key: the Ed25519 seed of the
  profile, with a basic credential whose identity is the username (ASCII).
- The group's name is the GroupContext extension GROUP_NAME_EXTENSION (0xF000, from
  the private-use range of RFC 9420 17.3): the name in UTF-8, 1 to MAX_GROUP_NAME
  bytes.
- The epoch code: the epoch authenticator (RFC 9420 8.7, 32 bytes) as 30 digits in
  six groups of five: the whole authenticator as a big-endian integer, mod 10^30,
  zero-padded.

Checked by conformance/vectors/groups.json.
"""

from __future__ import annotations

from protocol.e2e.mls.committing import Identity
from protocol.e2e.mls.leaf_node import Extension
from protocol.wire.errors import DecodeError
from protocol.wire.usernames import check_username

GROUP_NAME_EXTENSION = 0xF000
MAX_GROUP_NAME = 100
CODE_DIGITS = 30


def member_identity(identity_seed: bytes, username: str) -> Identity:
    """The MLS identity of a blindrelay user: its identity key signs, its name is the
    basic credential."""
    check_username(username)
    return Identity(identity_seed, username.encode("ascii"))


def check_group_name(name: str) -> str:
    """The name, stripped of surrounding white space, if it is 1 to MAX_GROUP_NAME
    bytes of UTF-8; else DecodeError."""
    name = name.strip()
    if not name or len(name.encode("utf-8")) > MAX_GROUP_NAME:
        raise DecodeError(f"a group name is 1 to {MAX_GROUP_NAME} bytes of UTF-8")
    return name


def name_extension(name: str) -> Extension:
    return Extension(GROUP_NAME_EXTENSION, check_group_name(name).encode("utf-8"))


def with_name(extensions: tuple[Extension, ...], name: str) -> tuple[Extension, ...]:
    """The group's extensions with the name replaced (a rename's GroupContextExtensions
    keeps every other extension)."""
    kept = tuple(e for e in extensions if e.extension_type != GROUP_NAME_EXTENSION)
    return (*kept, name_extension(name))


def group_name(extensions: tuple[Extension, ...]) -> str:
    """The name a group context carries ("" if none); bytes that are not UTF-8 show as
    U+FFFD (what a member chose is shown sanitized anyway)."""
    for ext in extensions:
        if ext.extension_type == GROUP_NAME_EXTENSION:
            return ext.extension_data.decode("utf-8", "replace")
    return ""


def epoch_code(epoch_authenticator: bytes) -> str:
    if len(epoch_authenticator) != 32:
        raise DecodeError("an epoch authenticator has 32 bytes (suite 1)")
    value = int.from_bytes(epoch_authenticator, "big") % 10**CODE_DIGITS
    digits = str(value).zfill(CODE_DIGITS)
    return " ".join(digits[i:i + 5] for i in range(0, CODE_DIGITS, 5))
