"""Every hostile-relay scenario, headless: what each client shows and what the relay
stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from teaching.demo.scenarios import SCENARIOS, Outcome
from teaching.demo.world import demo_world, hostile_factory
from teaching.hostile import HostileRelay
from teaching.names import Scenario


async def run(name: str, tmp_path: Path) -> tuple[Outcome, list[str]]:
    lines: list[str] = []
    async with demo_world(lines.append, hostile_factory(name, lines.append),
                          workdir=tmp_path) as world:
        assert isinstance(world.relay, HostileRelay)
        outcome = await SCENARIOS[Scenario(name)](world)
    return outcome, lines


async def test_mitm_first_contact_is_exposed_by_safety_numbers(tmp_path: Path) -> None:
    outcome, lines = await run("mitm-first-contact", tmp_path)
    assert outcome.facts["bob_got"] == ["Hi Bob, it's Alice. Is this really you?"]
    assert outcome.facts["alice_got"] == ["Yes, it's me, Bob!"]
    assert not outcome.facts["match"]
    assert any("OWN identity key" in line for line in lines)
    assert any("DIFFER" in line for line in lines)


async def test_key_swap_blocks_sending(tmp_path: Path) -> None:
    outcome, _ = await run("key-swap", tmp_path)
    assert outcome.facts["blocked"] and outcome.facts["warning"]
    assert "Hi, it's Bob on a new phone. Send me the code." in outcome.facts["alice_got"]


async def test_tamper_is_detected_and_the_session_survives(tmp_path: Path) -> None:
    outcome, _ = await run("tamper", tmp_path)
    assert "failed authentication" in outcome.facts["placeholder"]
    assert outcome.facts["bob_got"] == ["First message", "And this one arrives fine"]


async def test_replay_is_rejected_and_shown_once(tmp_path: Path) -> None:
    outcome, _ = await run("replay", tmp_path)
    assert outcome.facts["times_shown"] == 1


async def test_drop_reveals_a_gap(tmp_path: Path) -> None:
    outcome, _ = await run("drop", tmp_path)
    assert outcome.facts["bob_got"] == ["Message one", "Message three"]
    assert outcome.facts["gap_notice"]
    assert outcome.facts["dropped_state"] == "sent"  # never 'delivered'


async def test_keep_everything_cannot_decrypt_the_past(tmp_path: Path) -> None:
    outcome, lines = await run("keep-everything", tmp_path)
    assert outcome.facts["kept"] >= 3
    assert outcome.facts["opened"] == outcome.facts["kept"]
    assert outcome.facts["decrypted"] == 0
    assert any("forward secrecy" in line for line in lines)


def test_every_scenario_has_a_test() -> None:
    tested = {"mitm-first-contact", "key-swap", "tamper", "replay", "drop", "keep-everything"}
    assert set(SCENARIOS) == tested == set(Scenario)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_demo_cleans_up(name: str, tmp_path: Path) -> None:
    del name  # one run suffices per scenario above; here: nothing is left behind
    async with demo_world(lambda _s: None) as world:
        workdir = world.workdir
        assert workdir.exists()
    assert not workdir.exists()
