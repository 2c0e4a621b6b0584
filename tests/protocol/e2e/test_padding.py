"""Padding to 160-byte buckets, as Signal pads, and its strict removal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.e2e.padding import BUCKET, pad, unpad
from protocol.wire.errors import DecodeError


@pytest.mark.parametrize(
    ("size", "padded"),
    [(0, 159), (1, 159), (158, 159), (159, 319), (160, 319), (318, 319), (319, 479), (1000, 1119)],
)
def test_bucket_sizes_are_exact(size: int, padded: int) -> None:
    out = pad(b"\x00" * size)
    assert len(out) == padded
    # PKCS#7 then adds exactly one byte: the ciphertext is a whole number of buckets.
    assert (len(out) + 1) % BUCKET == 0


def test_padding_is_the_body_then_0x80_then_zeros() -> None:
    assert pad(b"abc") == b"abc\x80" + bytes(155)
    assert pad(b"") == b"\x80" + bytes(158)
    assert pad(b"\x80" * 158) == b"\x80" * 159


@given(st.binary(max_size=700))
@settings(max_examples=200, deadline=None)
def test_unpad_inverts_pad(body: bytes) -> None:
    padded = pad(body)
    assert unpad(padded) == body
    assert len(padded) == ((len(body) + 1) // BUCKET + 1) * BUCKET - 1


@given(st.binary(max_size=500))
@settings(max_examples=300, deadline=None)
def test_unpad_accepts_only_what_pad_produces(data: bytes) -> None:
    """Strictness: every input is either rejected or is the padding of its result."""
    try:
        body = unpad(data)
    except DecodeError:
        return
    assert pad(body) == data


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes(159),  # no marker at all
        b"abc\x81" + bytes(155),  # wrong marker
        b"abc\x80" + bytes(154) + b"\x01",  # non-zero after the marker
        b"abc\x80" + bytes(154),  # one byte short of a bucket
        b"abc\x80" + bytes(156),  # one byte over
        b"abc\x80" + bytes(315),  # a whole extra bucket of zeros
        b"\x80" + bytes(318),  # empty body padded to two buckets
        bytes(319),
    ],
    ids=["empty", "no-marker", "wrong-marker", "nonzero-tail", "short", "long",
         "extra-bucket", "empty-body-two-buckets", "zeros"],
)
def test_strict_unpadding_rejects_bad_paddings(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        unpad(bad)
