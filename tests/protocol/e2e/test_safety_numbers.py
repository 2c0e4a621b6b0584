"""Safety numbers (Signal's numeric fingerprint, version 0) and the QR payload."""

from __future__ import annotations

import hashlib
import re

from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.safety_numbers import format_safety_number, qr_payload, safety_number
from tests.protocol.support import DetRng

RNG = DetRng(b"fingerprints")
A = IdentityKeyPair.generate(RNG).public
B = IdentityKeyPair.generate(RNG).public
C = IdentityKeyPair.generate(RNG).public


def _signal_half(key: bytes, username: str) -> str:
    """Signal's NumericFingerprintGenerator, written out from its description."""
    encoded = b"\x01" + key
    digest = b"\x00\x00" + encoded + username.encode()
    for _ in range(5200):
        digest = hashlib.sha512(digest + encoded).digest()
    chunks = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 30, 5)]
    return "".join(str(chunk).zfill(5) for chunk in chunks)


def test_a_safety_number_is_60_digits() -> None:
    number = safety_number(A, "alice", B, "bob")
    assert re.fullmatch(r"[0-9]{60}", number)


def test_both_parties_compute_the_same_number() -> None:
    assert safety_number(A, "alice", B, "bob") == safety_number(B, "bob", A, "alice")
    assert qr_payload(A, "alice", B, "bob") == qr_payload(B, "bob", A, "alice")


def test_the_number_is_signals_numeric_fingerprint() -> None:
    halves = sorted((_signal_half(A, "alice"), _signal_half(B, "bob")))
    assert safety_number(A, "alice", B, "bob") == halves[0] + halves[1]


def test_the_number_changes_when_any_key_or_username_changes() -> None:
    base = safety_number(A, "alice", B, "bob")
    changed = [
        safety_number(C, "alice", B, "bob"),
        safety_number(A, "alice", C, "bob"),
        safety_number(A, "alicia", B, "bob"),
        safety_number(A, "alice", B, "bobby"),
        safety_number(A, "bob", B, "alice"),  # usernames swapped between the keys
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_the_qr_payload_changes_with_keys_and_usernames() -> None:
    base = qr_payload(A, "alice", B, "bob")
    assert re.fullmatch(r"BLINDRELAY-SAFETY:0:[0-9A-F]{128}", base)
    assert base != qr_payload(C, "alice", B, "bob")
    assert base != qr_payload(A, "alice", B, "bobby")


def test_the_display_is_twelve_groups_of_five_on_three_lines() -> None:
    number = safety_number(A, "alice", B, "bob")
    shown = format_safety_number(number)
    lines = shown.split("\n")
    assert len(lines) == 3
    assert all(re.fullmatch(r"[0-9]{5}( [0-9]{5}){3}", line) for line in lines)
    assert shown.replace("\n", "").replace(" ", "") == number
