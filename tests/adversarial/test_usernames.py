"""Issue 9 item 17: names that read like another (`alice.` beside `alice`) are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import codec
from protocol.wire.errors import InvalidUsername
from protocol.wire.frames import REGISTER_PURPOSE, Error, ErrorCode, Register
from protocol.wire.publickeys import TYPE_ED25519, encode_key
from protocol.wire.usernames import check_username
from tests.support import running_relay


@pytest.mark.parametrize("name", ["alice.", "alice-", "alice_", "a1_", "bob--"])
def test_trailing_punctuation_is_not_a_username(name: str) -> None:
    with pytest.raises(InvalidUsername):
        check_username(name)


@pytest.mark.parametrize("name", ["alice", "a.b", "x-1", "c_d", "b0b"])
def test_inner_punctuation_still_is(name: str) -> None:
    assert check_username(name) == name


async def test_the_relay_refuses_a_lookalike_registration(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        conn = await RelayConnection.open(relay.url)
        identity = IdentityKeyPair.generate()
        name = b"alice."
        statement = (REGISTER_PURPOSE + codec.var16(conn.url.encode()) + conn.challenge
                     + codec.var8(name) + encode_key(TYPE_ED25519, identity.public))
        raw = (bytes((1, Register.TYPE)) + codec.u32(conn.next_id()) + codec.var8(name)
               + encode_key(TYPE_ED25519, identity.public) + identity.sign(statement))
        answer = await conn.request_raw(raw)
        await conn.close()
    assert isinstance(answer, Error) and answer.code == ErrorCode.USERNAME_INVALID
