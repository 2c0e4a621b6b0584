"""The relay's observer events (server/events.py): one typed event per thing the relay
does, carrying the metadata it really has, as the teaching demo shows them."""

from __future__ import annotations

import time
from pathlib import Path

from client.connection import RelayConnection
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.wire.frames import Deliver
from server.events import (
    Acked,
    BundleTaken,
    CheckpointPublished,
    Expired,
    FrameIn,
    LoggedIn,
    Registered,
    RelayEvent,
    Stored,
)
from tests.support import running_relay


async def test_a_conversation_as_the_relay_reports_it(tmp_path: Path) -> None:
    events: list[RelayEvent] = []
    async with running_relay(tmp_path) as relay:
        relay.relay.observers.append(events.append)
        alice, bob = await RelayConnection.open(relay.url), await RelayConnection.open(relay.url)
        bob_id = IdentityKeyPair.generate()
        try:
            anonymous = await RelayConnection.open(relay.url)
            await anonymous.request_raw(b"\x01\x13\x00\x00\x00\x01")  # refused: not logged in
            await anonymous.close()
            await alice.register("alice", IdentityKeyPair.generate())
            await bob.register("bob", bob_id)
            _, spk = make_signed_prekey(bob_id, 1)
            _, kem = make_kem_prekey(bob_id, 2)
            _, opk = make_one_time_prekey(3)
            await bob.upload_signed_prekeys(spk, kem)
            await bob.upload_one_time_prekeys([opk], [])
            await alice.fetch_bundle("bob")
            (envelope_id,) = await alice.send([("bob", b"sealed bytes")])
            while not isinstance(frame := await bob.next_push(5), Deliver):
                pass
            await bob.ack([envelope_id])
            await alice.send([("bob", b"never fetched")])
            relay.relay.clock = lambda: time.time() + 40 * 24 * 3600
            assert await relay.relay.expire_once() == 1
        finally:
            await alice.close()
            await bob.close()
    frames = [e for e in events if isinstance(e, FrameIn)]
    assert frames[0] == FrameIn("PrekeyCount", 6, None)
    assert FrameIn("Register", frames[1].size, None) == frames[1]
    assert FrameIn("Send", frames[-1].size, "alice") == frames[-1]
    others = [e for e in events if not isinstance(e, FrameIn)]
    stored = [e for e in others if isinstance(e, Stored)]
    checkpoints = [e for e in others if isinstance(e, CheckpointPublished)]
    assert [c.size for c in checkpoints] == [1, 2]
    assert checkpoints[1].root_hex_prefix == relay.relay.directory.log.root().hex()[:16]
    assert others == [
        Registered("alice"), checkpoints[0], LoggedIn("alice", 0),
        Registered("bob"), checkpoints[1], LoggedIn("bob", 0),
        BundleTaken("bob", "alice", 3, 2, "LAST_RESORT"),  # no one-time KEM key
        stored[0], Acked("bob", (envelope_id,), 1), stored[1], Expired(1),
    ]
    assert (stored[0].envelope_id, stored[0].recipient, stored[0].size, stored[0].body) == \
        (envelope_id, "bob", 12, b"sealed bytes")
    assert frame.envelope_id == envelope_id
