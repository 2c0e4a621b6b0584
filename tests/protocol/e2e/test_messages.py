"""The one ratchet header parser (docs/PROTOCOL.md section 7.2): the ratchet's fast
path and Header/RatchetMessage.decode accept and refuse exactly the same bytes,
including the 19 non-canonical X25519 encodings 2^255-19 .. 2^255-1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.e2e.messages import (
    HEADER_LEN,
    Header,
    RatchetMessage,
    encode_header,
    parse_header,
)
from protocol.wire.errors import DecodeError
from tests.protocol.support import P25519, talking_pair

BODY = bytes(16 + 32)  # one block and a MAC: the shortest valid body

NON_CANONICAL = [(P25519 + i).to_bytes(32, "little") for i in range(19)]
TOP_BIT_SET = [bytes(31) + b"\x80", b"\xff" * 32]


@pytest.mark.parametrize("dh", NON_CANONICAL + TOP_BIT_SET,
                         ids=[f"p+{i}" for i in range(19)] + ["2^255", "2^256-1"])
def test_every_parser_refuses_a_non_canonical_ratchet_key(dh: bytes) -> None:
    message = encode_header(dh, 0, 0) + BODY
    with pytest.raises(DecodeError):
        parse_header(message)
    with pytest.raises(DecodeError):
        Header.decode(message[:HEADER_LEN])
    with pytest.raises(DecodeError):
        RatchetMessage.decode(message)


def test_the_ratchet_refuses_a_non_canonical_key_and_stays_unchanged() -> None:
    alice, bob = talking_pair()
    message = alice.encrypt(b"hello")
    before = bob.serialize()
    for dh in NON_CANONICAL:
        forged = encode_header(dh, 0, 0) + message[HEADER_LEN:]
        with pytest.raises(DecodeError):
            bob.decrypt(forged)
    assert bob.serialize() == before
    assert bob.decrypt(message) == b"hello"


@pytest.mark.parametrize("u", [0, 1, P25519 - 1, 2**255 - 20, 2**248 * 0x7E])
def test_canonical_keys_parse_the_same_everywhere(u: int) -> None:
    dh = u.to_bytes(32, "little")
    message = encode_header(dh, 7, 9) + BODY
    assert parse_header(message) == (dh, 7, 9)
    assert Header.decode(message[:HEADER_LEN]) == Header(dh, 7, 9)
    assert RatchetMessage.decode(message) == RatchetMessage(Header(dh, 7, 9), BODY)


@pytest.mark.parametrize("message", [
    b"",
    encode_header(bytes(32), 0, 0),
    encode_header(bytes(32), 0, 0) + bytes(47),
    encode_header(bytes(32), 0, 0) + bytes(49),
    b"\x02" + encode_header(bytes(32), 0, 0)[1:] + BODY,
    b"\x01\x06" + encode_header(bytes(32), 0, 0)[2:] + BODY,
])
def test_malformed_layouts_are_refused_by_both(message: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_header(message)
    with pytest.raises(DecodeError):
        RatchetMessage.decode(message)


def _outcome(parse: object, data: bytes) -> object:
    try:
        return parse(data)  # type: ignore[operator]
    except DecodeError:
        return DecodeError


@given(st.binary(min_size=0, max_size=120),
       st.sampled_from([None, *NON_CANONICAL, *TOP_BIT_SET]))
def test_the_fast_path_and_the_decoder_agree_on_any_bytes(data: bytes, dh: bytes | None
                                                          ) -> None:
    if dh is not None and len(data) >= 2:
        data = b"\x01\x05" + dh + data[2:]
    fast = _outcome(parse_header, data)
    full = _outcome(RatchetMessage.decode, data)
    if fast is DecodeError or full is DecodeError:
        assert fast is full
    else:
        assert isinstance(full, RatchetMessage)
        assert fast == (full.header.dh, full.header.pn, full.header.n)
