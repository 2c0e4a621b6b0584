"""The names of the hostile-relay scenarios, defined once.

A leaf module (it imports nothing of the project) so that `blindrelay demo --help` can
list the scenarios without loading the demo, and `blindrelay serve` never loads the
hostile relay.
"""

from __future__ import annotations

from enum import StrEnum


class Scenario(StrEnum):
    """What a relay operator turned hostile tries (teaching.hostile plays it out)."""

    MITM_FIRST_CONTACT = "mitm-first-contact"
    KEY_SWAP = "key-swap"
    TAMPER = "tamper"
    REPLAY = "replay"
    DROP = "drop"
    KEEP_EVERYTHING = "keep-everything"

    @property
    def blurb(self) -> str:
        """One line for the demo's scenario menu."""
        return _BLURBS[self]


_BLURBS = {
    Scenario.MITM_FIRST_CONTACT: "The relay hands Alice its own key in place of Bob's.",
    Scenario.KEY_SWAP: "The relay claims Bob has a new identity key.",
    Scenario.TAMPER: "The relay flips bits in a ciphertext.",
    Scenario.REPLAY: "The relay delivers an old envelope again.",
    Scenario.DROP: "The relay silently drops one envelope.",
    Scenario.KEEP_EVERYTHING: "The relay keeps every ciphertext, then seizes Bob's device.",
}
