"""Issue 9 item 17: a stranger cannot tell which names are taken from LOGIN, and an
account cannot enumerate names through LOOKUP_IDENTITY."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import ErrorCode
from server.lookups import LOOKUP_BURST
from tests.support import running_relay


async def test_login_of_an_unknown_name_looks_like_a_wrong_key(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        owner = await RelayConnection.open(relay.url)
        await owner.register("alice", IdentityKeyPair.generate())
        answers = []
        for name in ("alice", "nobody"):
            conn = await RelayConnection.open(relay.url)
            with pytest.raises(RelayError) as refused:
                await conn.login(name, IdentityKeyPair.generate())
            answers.append((refused.value.code, refused.value.message))
            await conn.close()
        await owner.close()
    assert answers[0] == answers[1]
    assert answers[0][0] == ErrorCode.BAD_SIGNATURE


async def test_lookups_are_budgeted_per_account_across_connections(tmp_path: Path) -> None:
    identity = IdentityKeyPair.generate()
    async with running_relay(tmp_path) as relay:
        conns = [await RelayConnection.open(relay.url) for _ in range(3)]
        await conns[0].register("mallory", identity)
        for conn in conns[1:]:
            await conn.login("mallory", identity)
        answered = 0
        limited = None
        for i in range(3 * LOOKUP_BURST):
            try:
                await conns[i % 3].lookup_identity(f"name{i:04d}")
            except RelayError as exc:
                if exc.code == ErrorCode.RATE_LIMITED:
                    limited = i
                    break
                assert exc.code == ErrorCode.UNKNOWN_USER
            answered += 1
        for conn in conns:
            await conn.close()
    assert limited is not None and answered <= LOOKUP_BURST + 5
