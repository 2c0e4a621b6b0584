"""Commitments to directory values (protocol.wire.kt.commitment, PROTOCOL.md 19.4):
the exact HMAC input, binding to opening, label and value, and refusal of any
opening or value the commitment was not made with."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.wire.errors import LocalProtocolError, RemoteProtocolError
from protocol.wire.kt.commitment import (
    COMMITMENT_KEY,
    commit,
    commitment_value,
    verify_commitment,
)
from protocol.wire.kt.errors import ProofError

OPENING = bytes(range(16))


def test_the_fixed_key_is_the_drafts_kc() -> None:
    assert COMMITMENT_KEY.hex() == "d821f8790d97709796b4d7903357c3f5"


def test_the_hmac_input_is_opening_then_length_prefixed_label_and_value() -> None:
    message = commitment_value(OPENING, b"alice", b"key bytes")
    assert message == OPENING + b"\x05alice" + b"\x00\x00\x00\x09key bytes"
    expected = hmac.new(bytes.fromhex("d821f8790d97709796b4d7903357c3f5"), message, hashlib.sha256)
    assert commit(OPENING, b"alice", b"key bytes") == expected.digest()


def test_a_pinned_commitment() -> None:
    """Pinned so that a change to the layout cannot pass unnoticed."""
    assert commit(OPENING, b"alice", b"key bytes") == bytes.fromhex(
        "a11098faa82a7204aaeefbb9778348547fa9043a6bf28b152c00f6a93cc7c1a4"
    )


def test_moving_bytes_between_label_and_value_changes_the_commitment() -> None:
    assert commit(OPENING, b"ab", b"c") != commit(OPENING, b"a", b"bc")
    assert commit(OPENING, b"", b"abc") != commit(OPENING, b"abc", b"")


def test_the_correct_opening_and_value_verify() -> None:
    c = commit(OPENING, b"alice", b"v")
    verify_commitment(c, OPENING, b"alice", b"v")


@given(
    opening=st.binary(min_size=16, max_size=16),
    label=st.binary(max_size=40),
    value=st.binary(max_size=100),
    other=st.binary(max_size=100),
)
def test_any_other_value_label_or_opening_is_refused(
    opening: bytes, label: bytes, value: bytes, other: bytes
) -> None:
    c = commit(opening, label, value)
    verify_commitment(c, opening, label, value)
    if other != value:
        with pytest.raises(ProofError):
            verify_commitment(c, opening, label, other)
    if other[:40] != label:
        with pytest.raises(ProofError):
            verify_commitment(c, opening, other[:40], value)
    flipped = bytes([opening[0] ^ 1]) + opening[1:]
    with pytest.raises(ProofError):
        verify_commitment(c, flipped, label, value)
    with pytest.raises(ProofError):
        verify_commitment(bytes([c[0] ^ 0x80]) + c[1:], opening, label, value)


def test_wrong_lengths() -> None:
    with pytest.raises(LocalProtocolError):
        commit(bytes(15), b"a", b"v")
    with pytest.raises(LocalProtocolError):
        commit(OPENING, bytes(256), b"v")
    c = commit(OPENING, b"a", b"v")
    for bad in (c[:31], c + b"\x00"):
        with pytest.raises(ProofError):
            verify_commitment(bad, OPENING, b"a", b"v")
    with pytest.raises(ProofError):
        verify_commitment(c, OPENING[:15], b"a", b"v")
    with pytest.raises(RemoteProtocolError):
        verify_commitment(c, OPENING, bytes(256), b"v")
