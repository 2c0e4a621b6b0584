"""`blindrelay demo --text --scenario NAME`, and the demo's panes, tell the directory's
part of the story: which check caught the relay, the evidence, the checkpoints."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from blindrelay.cli import main
from teaching.demo.app import (
    DESCRIPTIONS,
    UNLOGGED,
    WITNESS,
    DemoApp,
    StoryScreen,
    parse_choice,
)
from teaching.demo.server_pane import ServerPane
from tests.client.helpers import wait_for


def test_text_mode_tells_a_scenario_with_its_evidence(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--text", "--scenario", "mitm-first-contact", "--unlogged"]) == 0
    out = capsys.readouterr().out
    assert "It does NOT log its key in the key directory" in out
    assert "relay: - The relay signed and published a checkpoint of its key directory: 2" \
        in out
    assert "CAUGHT by the first-contact lookup proof" in out
    assert "$ blindrelay kt verify-evidence kt-evidence-" in out
    assert "conclusive: no" in out and "testimony (what the reporter says" in out
    assert "Lesson: " in out


def test_the_menu_offers_the_scenarios_without_the_cover_up() -> None:
    assert "mitm-first-contact" + UNLOGGED in DESCRIPTIONS
    assert "key-swap" + UNLOGGED in DESCRIPTIONS
    assert "split-view" in DESCRIPTIONS
    assert "tamper" + UNLOGGED not in DESCRIPTIONS
    assert parse_choice("split-view" + WITNESS) == ("split-view", True, True)
    assert parse_choice("key-swap" + UNLOGGED) == ("key-swap", False, False)
    assert parse_choice("honest") == ("honest", True, False)


async def test_the_relay_pane_shows_checkpoints_and_the_story_the_catch() -> None:
    app = DemoApp("key-swap", pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.outcome is not None, 40)
        assert app.outcome is not None
        assert app.outcome.facts["caught_by"] == "owner monitoring"
        table = app.query_one(ServerPane).query_one("#relay-log", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        signed = [row[1] for row in rows if row[0] == "checkpoint"]
        assert signed and all(s.startswith("SIGNED ") for s in signed)
        assert [s.split()[1] for s in signed] == ["1", "2", "3"]  # alice, bob, the RESET
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, StoryScreen)
        story = "\n".join(app.screen.lines)
        assert "CAUGHT by owner monitoring" in story
        assert "$ blindrelay kt verify-evidence" in story
        await pilot.press("escape")
        await pilot.press("ctrl+q")


async def test_the_unlogged_variant_runs_from_the_command_line_flag() -> None:
    app = DemoApp("key-swap", pace=0, unlogged=True)
    assert app.scenario == "key-swap" + UNLOGGED
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.outcome is not None, 40)
        assert app.outcome is not None
        assert app.outcome.facts["caught_by"] == "the first-contact lookup proof"
        await pilot.press("ctrl+q")


async def test_split_view_in_the_demo_shows_the_fork_evidence() -> None:
    app = DemoApp("split-view", pace=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.outcome is not None, 40)
        assert app.outcome is not None
        assert app.outcome.facts["caught_by"] == "gossip consistency"
        assert app.outcome.facts["conclusive"] is True
        story = "\n".join(app.narration)
        assert "FORK checkpoint for Alice's eyes only" in story
        assert "conclusive: yes" in story
        await pilot.press("ctrl+q")
