"""Every hostile-relay scenario, headless: what each client shows and what the relay
stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.wire.kt.evidence import verify_evidence
from protocol.wire.kt.verifier import DirectoryKeys, Fork, check_gossip, open_head
from teaching.demo.scenarios import (
    FIRST_CONTACT,
    GOSSIP,
    OWNER_MONITORING,
    SCENARIOS,
    WITNESS,
    Outcome,
    split_view,
)
from teaching.demo.world import World, demo_world, hostile_factory
from teaching.hostile import HostileRelay
from teaching.names import Scenario


async def run(name: str, tmp_path: Path, cover_up: bool = True, witnessed: bool = False
              ) -> tuple[Outcome, list[str], list[Path]]:
    """The scenario, headless; also the evidence files every client left behind."""
    lines: list[str] = []
    async with demo_world(lines.append,
                          hostile_factory(name, lines.append, cover_up, witnessed),
                          workdir=tmp_path) as world:
        assert isinstance(world.relay, HostileRelay)
        outcome = await SCENARIOS[Scenario(name)](world)
        evidence = world.evidence_files()
    return outcome, lines, evidence


def check_evidence(outcome: Outcome, files: list[Path], conclusive: bool) -> None:
    """The evidence the narration showed is the file the client wrote, and it holds up
    when checked from scratch (what `blindrelay kt verify-evidence` does)."""
    assert files and outcome.facts["evidence"] in [str(f) for f in files]
    for path in files:
        finding = verify_evidence(path.read_bytes())
        assert finding.conclusive is conclusive
    assert "conclusive: " + ("yes" if conclusive else "no") in outcome.facts["verify_output"]


async def test_mitm_first_contact_is_caught_by_the_owners_monitoring(tmp_path: Path) -> None:
    """The cover-up (the default): the relay logs its key, Alice's lookup verifies, and
    Bob's client finds a RESET of his name that he never made."""
    outcome, lines, files = await run("mitm-first-contact", tmp_path)
    assert outcome.facts["bob_got"] == ["Hi Bob, it's Alice. Is this really you?"]
    assert outcome.facts["alice_got"] == ["Yes, it's me, Bob!"]
    assert not outcome.facts["match"]
    assert [name for name, _ in outcome.facts["logged"]] == ["bob", "alice"]
    assert outcome.facts["caught_by"] == OWNER_MONITORING
    assert outcome.facts["alert"] == "foreign-binding"
    assert any("OWN identity key" in line for line in lines)
    assert any("LOGGED its fake key" in line for line in lines)
    assert any(line.startswith("CAUGHT by owner monitoring") for line in lines)
    assert any("RESET" in p for p in outcome.facts["proven"])
    check_evidence(outcome, [f for f in files if f.parent.name == "bob"], conclusive=False)


async def test_mitm_first_contact_unlogged_is_refused_at_first_contact(
        tmp_path: Path) -> None:
    outcome, lines, files = await run("mitm-first-contact", tmp_path, cover_up=False)
    assert not outcome.facts["sent"] and outcome.facts["bob_got"] == []
    assert outcome.facts["warning"]
    assert outcome.facts["caught_by"] == FIRST_CONTACT
    assert outcome.facts["alert"] == "key-mismatch"
    assert any(line.startswith("CAUGHT by the first-contact lookup") for line in lines)
    check_evidence(outcome, files, conclusive=False)
    assert {f.parent.name for f in files} == {"alice"}


async def test_key_swap_is_shown_as_a_reset_and_caught_by_monitoring(tmp_path: Path) -> None:
    outcome, _, files = await run("key-swap", tmp_path)
    assert outcome.facts["blocked"] and outcome.facts["warning"]
    assert outcome.facts["reset_shown"]
    assert "Hi, it's Bob on a new phone. Send me the code." in outcome.facts["alice_got"]
    assert outcome.facts["caught_by"] == OWNER_MONITORING
    check_evidence(outcome, files, conclusive=False)
    assert {f.parent.name for f in files} == {"bob"}


async def test_key_swap_unlogged_is_refused(tmp_path: Path) -> None:
    outcome, _, files = await run("key-swap", tmp_path, cover_up=False)
    assert outcome.facts["alice_got"] == ["Hello Alice"]  # the lure was rejected
    assert outcome.facts["caught_by"] == FIRST_CONTACT
    check_evidence(outcome, files, conclusive=False)
    assert {f.parent.name for f in files} == {"alice"}


async def test_split_view_is_caught_by_gossip(tmp_path: Path) -> None:
    """Alice is shown a fork in which Carol is bound to the relay's key: her lookup
    verifies, Carol's monitoring sees her real key. Bob's next message carries his
    head of the real directory, and Alice's client proves the fork."""
    outcome, lines, files = await run("split-view", tmp_path)
    # the fork worked until gossip caught it
    assert outcome.facts["relay_read"] == ["Hi Carol, it's Alice. Welcome!"]
    assert outcome.facts["caught_by"] == GOSSIP and outcome.facts["alert"] == "fork"
    assert any(line.startswith("CAUGHT by gossip") for line in lines)
    check_evidence(outcome, files, conclusive=True)
    assert {f.parent.name for f in files} == {"alice"}


async def test_split_view_against_a_witness_is_refused_up_front(tmp_path: Path) -> None:
    """With a witness required, the fork's checkpoint carries no cosignature (the
    witness already cosigned the real head of that size): Alice's client refuses it
    before relying on it, and nothing reaches the relay's key."""
    outcome, lines, files = await run("split-view", tmp_path, witnessed=True)
    assert outcome.facts["caught_by"] == WITNESS and outcome.facts["alert"] == "bad-proof"
    assert not outcome.facts["sent"] and outcome.facts["relay_read"] == []
    assert any("cosign its fork checkpoint" in line and "REFUSED" in line for line in lines)
    assert files == []  # prevention: an uncosigned head proves nothing against the relay


async def test_the_split_view_leaves_two_heads_that_prove_the_fork(tmp_path: Path) -> None:
    """Whatever carries Bob's checkpoint to Alice, the two heads the relay signed for
    them cannot both be true: checked here with the gossip check itself."""
    lines: list[str] = []
    async with demo_world(lines.append, hostile_factory("split-view", lines.append),
                          workdir=tmp_path) as world:
        outcome = await _until_gossip(world)
        assert outcome  # Alice was fooled: her lookup of Carol verified
        alice, bob = world.alice.directory.state(), world.bob.directory.state()
        assert alice is not None and bob is not None
        keys = DirectoryKeys(alice.origin, alice.log_key, alice.vrf_public_key)
        mine = open_head(keys, alice.head_note)
        theirs = open_head(keys, bob.head_note)
        assert theirs.size <= mine.size
        relay = world.relay
        assert isinstance(relay, HostileRelay) and relay.split is not None
        fork = relay.split.view()  # what the relay answers on Alice's connection
        with pytest.raises(Fork) as caught:
            check_gossip(keys, mine, bob.head_note, fork.log.root(theirs.size),
                         fork.consistency(theirs.size, mine.size))
        assert verify_evidence(caught.value.evidence.to_json()).conclusive


async def _until_gossip(world: World) -> bool:
    """split-view, played out: whether the relay read what Alice sent Carol."""
    relay = world.relay
    assert isinstance(relay, HostileRelay)
    outcome = await split_view(world)
    return bool(outcome.facts["relay_read"])


async def test_an_honest_run_leaves_no_evidence(tmp_path: Path) -> None:
    """An honest relay: every scenario's conversation, the directory checks run, and
    not one alert or evidence file."""
    async with demo_world(lambda _s: None, workdir=tmp_path) as world:
        await world.alice.send_text("bob", "Hello Bob")
        await world.bob.send_text("alice", "Hello Alice")
        carol = await world.add_client("carol")
        await world.alice.send_text("carol", "Hi Carol")
        await carol.send_text("alice", "Hi Alice")
        for client in world.clients().values():
            result = await client.kt_monitor()
            assert not result.alerts
        assert world.evidence_files() == []
        assert all(not found for found in world.alerts.values())


async def test_tamper_is_detected_and_the_session_survives(tmp_path: Path) -> None:
    outcome, _, files = await run("tamper", tmp_path)
    assert files == []  # not a directory lie: no key directory alarm
    assert "failed authentication" in outcome.facts["placeholder"]
    assert outcome.facts["bob_got"] == ["First message", "And this one arrives fine"]


async def test_replay_is_rejected_and_shown_once(tmp_path: Path) -> None:
    outcome, _, files = await run("replay", tmp_path)
    assert files == []  # not a directory lie: no key directory alarm
    assert outcome.facts["times_shown"] == 1


async def test_drop_reveals_a_gap(tmp_path: Path) -> None:
    outcome, _, files = await run("drop", tmp_path)
    assert files == []  # not a directory lie: no key directory alarm
    assert outcome.facts["bob_got"] == ["Message one", "Message three"]
    assert outcome.facts["gap_notice"]
    assert outcome.facts["dropped_state"] == "sent"  # never 'delivered'


async def test_keep_everything_cannot_decrypt_the_past(tmp_path: Path) -> None:
    outcome, lines, files = await run("keep-everything", tmp_path)
    assert files == []
    assert outcome.facts["kept"] >= 3
    assert outcome.facts["opened"] == outcome.facts["kept"]
    assert outcome.facts["decrypted"] == 0
    assert any("forward secrecy" in line for line in lines)


async def test_metadata_harvest_draws_what_each_configuration_gives_away(
        tmp_path: Path) -> None:
    """Eight real clients chat through the recording relay under each configuration.
    Authenticated sending hands the relay the whole graph, for certain; with sealed
    sending it knows no edge for certain and guesses from timing, and with receipt
    delays it finds fewer."""
    outcome, lines, _ = await run("metadata-harvest", tmp_path)
    truth = set(outcome.facts["truth"])
    assert len(truth) == 10
    phases = outcome.facts["phases"]
    assert list(phases) == ["authenticated", "sealed", "sealed + receipt delay"]
    authenticated = phases["authenticated"]
    assert authenticated.shared.precision == authenticated.shared.recall == 1.0
    assert authenticated.shared_certain.recall == 1.0
    assert set(authenticated.reconstruction.edges) == truth
    for name in ("sealed", "sealed + receipt delay"):
        assert phases[name].shared_certain.guessed == 0  # nothing it knows for certain
        assert all(not e.certain for e in phases[name].reconstruction.edges.values())
    assert phases["sealed + receipt delay"].shared.recall < 1.0
    assert outcome.facts["first_contact"].recall == 1.0  # who fetched whose keys
    # the drawing: a matrix row per user, the legend, and an edge list with reasons
    assert any(line.startswith("  alice ") for line in lines)
    assert sum("# known  % guessed by timing" in line for line in lines) == 3
    assert any("authenticated SEND" in line for line in lines)
    assert any(line.startswith("Configuration 'sealed + receipt delay'") for line in lines)


async def test_groups_removed_member_and_healed_copy_read_nothing(tmp_path: Path) -> None:
    outcome, lines, files = await run("groups", tmp_path)
    assert files == []  # not a directory lie: no key directory alarm
    facts = outcome.facts
    assert facts["carol_read"] is None  # removed: the kept message reads as nothing
    assert "Carol cannot read this" not in facts["carol_got"]
    assert facts["carol_got"] == ["Hello trio!"]
    assert facts["thief_before"] == "Before the heal"  # a copied state reads, until...
    assert facts["thief_after"] is None  # ...the self-update: healed
    assert not facts["thief_followed"]
    assert facts["bob_got"] == ["Hello trio!", "Hi both", "Before the heal",
                                "After the heal"]
    assert facts["group_ids"] == 1 and facts["commits"] == 2
    assert any("Relay saw: alice → bob, carol: a commit" in line for line in lines)
    assert any("post-compromise security" in line for line in lines)


def test_every_scenario_has_a_test() -> None:
    tested = {"mitm-first-contact", "key-swap", "tamper", "replay", "drop", "keep-everything",
              "split-view", "metadata-harvest", "groups"}
    assert set(SCENARIOS) == tested == set(Scenario)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_demo_cleans_up(name: str, tmp_path: Path) -> None:
    del name  # one run suffices per scenario above; here: nothing is left behind
    async with demo_world(lambda _s: None) as world:
        workdir = world.workdir
        assert workdir.exists()
    assert not workdir.exists()
