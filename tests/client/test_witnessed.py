"""A client configured with a witness accepts only heads that witness cosigned
(PROTOCOL.md 19.11), against a real relay submitting to a real witness over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.errors import DirectoryRefused
from client.events import Event, KtAlert, KtAlertKind
from protocol.wire.kt.cosignature import require_cosignature
from server.witness import open_witness, running_witness
from server.witnessing import Witnesses
from tests.client.helpers import make_client, shut
from tests.support import RunningRelay


async def test_heads_are_cosigned_and_required(relay: RunningRelay, tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    witness = open_witness(tmp_path / "witness", [relay.relay.directory.signer.verifier],
                           "witness.example")
    key = witness.cosigner.verifier.encode()
    alice.directory.set_witnesses([key])
    async with running_witness(witness) as running:
        relay.relay.witnesses = Witnesses((running.url,))
        await relay.relay.publish_head()
        bob = await make_client(tmp_path, "bob", relay.url)  # a new head, cosigned
        require_cosignature(relay.relay.head_note(), [witness.cosigner.verifier])
        await alice.send_text("bob", "hello")  # first contact verified against a cosigned head
        state = alice.directory.state()
        assert state is not None and state.head_note == relay.relay.head_note()
    # the witness is gone: the relay's next head carries no cosignature
    carol = await make_client(tmp_path, "carol", relay.url)
    seen: list[Event] = []
    alice.on_event(seen.append)
    with pytest.raises(DirectoryRefused):
        await alice.send_text("carol", "hi")
    assert any(isinstance(e, KtAlert) and e.kind is KtAlertKind.BAD_PROOF
               and "cosignature" in e.text for e in seen)
    await shut(alice, bob, carol)
