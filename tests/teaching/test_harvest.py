"""metadata-harvest (teaching/harvest.py) on a real relay with real clients: what the
recording relay observes, and what it reconstructs when each user has an address of
their own. The demo's run (users sharing one address) is in test_scenarios.py."""

from __future__ import annotations

import random
from pathlib import Path

from teaching.harvest import (
    AUTHENTICATED,
    SEALED,
    USERS,
    contact_graph,
    group,
    pair,
    play_group,
)

USERS_4 = USERS[:4]


async def test_a_sealed_send_hides_the_account_but_not_the_address(tmp_path: Path) -> None:
    rng = random.Random(3)
    truth = contact_graph(rng, USERS_4, 3)
    async with group(USERS_4, tmp_path) as (relay, clients):
        result = await play_group(relay, clients, truth, rng, (AUTHENTICATED, SEALED),
                                  messages=8, mean_gap=0.1)
        observations = relay.recording.observations
    address = {name: f"127.0.0.{10 + i}" for i, name in enumerate(USERS_4)}

    # what the relay saw, as its own code paths saw it
    logins = {o.account: o.address for o in observations if o.what == "LOGIN"}
    assert logins == address  # every login, from its user's own address
    assert all(o.port for o in observations if o.what == "OPEN")
    sends = [o for o in observations if o.frame == "Send" and o.phase == "authenticated"]
    assert sends and all(o.account is not None and o.address == address[o.account]
                         and {pair(o.account, r) for r in o.recipients} <= truth
                         for o in sends)
    sealed = [o for o in observations if o.frame == "SealedSend" and o.phase == "sealed"]
    assert sealed and all(o.account is None and len(o.capabilities) == len(o.recipients)
                          for o in sealed)
    assert not [o for o in observations if o.frame == "Send" and o.phase == "sealed"]
    pushes = [o for o in observations if o.what == "OUT" and o.frame == "Deliver"]
    assert pushes and all(o.account in USERS_4 and o.envelopes for o in pushes)

    authenticated, sealed_phase = result.phases
    assert authenticated.shared.precision == authenticated.shared.recall == 1.0
    assert sealed_phase.shared_certain.guessed == 0  # no account tied to a sealed SEND
    # ...but each came from its sender's address, and the relay sees that
    assert sealed_phase.own.precision == sealed_phase.own.recall == 1.0
    assert {r for e in sealed_phase.own_reconstruction.edges.values() for r in e.reasons} \
        == {"sealed SEND from that account's address"}
    assert result.first_contact.recall == 1.0  # who fetched whose keys, at first contact
