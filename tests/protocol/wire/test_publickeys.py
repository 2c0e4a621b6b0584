"""Identity keys without an X25519 form are refused (PROTOCOL.md 3.2, 3.3), every time:
the check is remembered per key (issue 14), and remembering must not turn a refusal
into an acceptance or the other way round."""

from __future__ import annotations

import pytest

from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.errors import DecodeError
from protocol.wire.publickeys import check_identity_key

SMALL_ORDER = [
    bytes(32),  # the identity point's y = 0 encoding: order 4
    (1).to_bytes(32, "little"),  # the neutral element
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # y = -1
]


@pytest.mark.parametrize("key", SMALL_ORDER, ids=["zero", "one", "minus-one"])
def test_a_small_order_key_is_refused_again_and_again(key: bytes) -> None:
    for _ in range(3):
        with pytest.raises(DecodeError, match="no X25519 form"):
            check_identity_key(key)
    with pytest.raises(DecodeError):
        check_identity_key(bytearray(key))  # type: ignore[arg-type]


def test_a_real_key_passes_every_time() -> None:
    key = IdentityKeyPair.generate().public
    for _ in range(3):
        check_identity_key(key)
