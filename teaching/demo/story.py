"""`blindrelay demo --text --scenario NAME`: the same story as the demo's panes, as
plain text (for a terminal without a full-screen UI, a log, or a handout).

The same relay, clients and scenario code as the demo; the narration and the relay's
own events (server.events, in the words of the relay pane) are printed as they happen,
then the lesson."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable

from server.events import RelayEvent
from teaching.demo.scenarios import SCENARIOS, Outcome
from teaching.demo.server_pane import narrate_event
from teaching.demo.world import demo_world, hostile_factory
from teaching.names import Scenario

WIDTH = 100


def printer(prefix: str = "") -> Callable[[str], None]:
    def say(text: str) -> None:
        if text.startswith("  "):  # command output (verify-evidence): kept as it is
            print(f"{prefix}{text}", flush=True)
            return
        print(textwrap.fill(text, WIDTH, initial_indent=f"{prefix}- ",
                            subsequent_indent=f"{prefix}  "), flush=True)

    return say


async def play(scenario: Scenario, cover_up: bool = True, pace: float = 0.0,
               say: Callable[[str], None] | None = None, witnessed: bool = False
               ) -> Outcome:
    say = say or printer()
    relay_say = printer("relay: ")

    def relay_event(event: RelayEvent) -> None:
        sentence = narrate_event(event)
        if sentence is not None:
            relay_say(sentence)

    say(scenario.blurb
        + ("" if cover_up else " It does NOT log its key in the key directory (--unlogged).")
        + (" Alice's client requires a witness's cosignature (--witness)." if witnessed
           else ""))
    quiet = scenario is Scenario.METADATA_HARVEST
    if quiet:
        say("The relay's own event lines are left out: eight people chatting make hundreds "
            "of them. What it recorded is summed up after each phase.")
    async with demo_world(say, hostile_factory(scenario, say, cover_up, witnessed),
                          observe=None if quiet else relay_event) as world:
        world.pace = pace
        outcome = await SCENARIOS[scenario](world)
    say(f"Lesson: {outcome.lesson}")
    return outcome


def run_story(scenario: str, cover_up: bool = True, pace: float = 0.0,
              witnessed: bool = False) -> int:
    asyncio.run(play(Scenario(scenario), cover_up, pace, witnessed=witnessed))
    return 0
