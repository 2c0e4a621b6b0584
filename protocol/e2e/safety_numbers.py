"""Safety numbers: Signal's numeric fingerprint, version 0.

Each party's half is SHA-512 iterated 5200 times over
version (u16, 0) || Encode(IK) || username, then Encode(IK) appended each round;
the first 30 bytes become six 5-digit chunks. The 60 displayed digits are both
halves sorted, so the two users see the same number whoever computes it.
"""

from __future__ import annotations

import hashlib

from protocol.e2e.keys import TYPE_ED25519, encode_key

FINGERPRINT_VERSION = 0
ITERATIONS = 5200
QR_VERSION = 0
QR_PREFIX = "BLINDRELAY-SAFETY:"


def fingerprint(identity_public: bytes, username: str) -> bytes:
    """One party's 64-byte iterated digest (the first 30 bytes give its 30 digits)."""
    key = encode_key(TYPE_ED25519, identity_public)
    digest = FINGERPRINT_VERSION.to_bytes(2, "big") + key + username.encode("utf-8")
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def displayable(half: bytes) -> str:
    """The 30 digits of one party's fingerprint."""
    return "".join(
        f"{int.from_bytes(half[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def safety_number(
    identity_a: bytes, username_a: str, identity_b: bytes, username_b: str
) -> str:
    """The 60-digit safety number of a pair of users, independent of argument order."""
    first, second = sorted((displayable(fingerprint(identity_a, username_a)),
                            displayable(fingerprint(identity_b, username_b))))
    return first + second


def format_safety_number(number: str) -> str:
    """Twelve groups of five digits, three lines of four, as Signal shows them."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def qr_payload(identity_a: bytes, username_a: str, identity_b: bytes, username_b: str) -> str:
    """What the QR code carries: the version and both 32-byte fingerprint halves,
    sorted, in upper-case hex, so a scan compares everything the digits summarise.
    Upper case keeps it in QR's alphanumeric mode: a version-5 code that fits in an
    80x24 terminal."""
    halves = sorted((fingerprint(identity_a, username_a)[:32],
                     fingerprint(identity_b, username_b)[:32]))
    return f"{QR_PREFIX}{QR_VERSION}:{halves[0].hex().upper()}{halves[1].hex().upper()}"
