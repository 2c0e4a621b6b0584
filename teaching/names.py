"""The names of the hostile-relay scenarios, defined once.

A leaf module (it imports nothing of the project) so that `blindrelay demo --help` can
list the scenarios without loading the demo, and `blindrelay serve` never loads the
hostile relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class HostileAct:
    """Something the hostile relay did that an honest one never does, for a marked row
    in the demo's relay pane (beside the relay's own events): `kind` in capitals
    (DROPPED, TAMPERED, ...) and what it was done to, short enough for one row."""

    kind: str
    what: str


class Scenario(StrEnum):
    """What a relay operator turned hostile tries (teaching.hostile plays it out)."""

    MITM_FIRST_CONTACT = "mitm-first-contact"
    KEY_SWAP = "key-swap"
    TAMPER = "tamper"
    REPLAY = "replay"
    DROP = "drop"
    KEEP_EVERYTHING = "keep-everything"
    SPLIT_VIEW = "split-view"
    METADATA_HARVEST = "metadata-harvest"
    GROUPS = "groups"

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
    Scenario.SPLIT_VIEW: "The relay shows Alice a forked key directory, everyone else the "
                         "real one.",
    Scenario.METADATA_HARVEST: "The relay records everything it sees while 8 people chat, "
                               "then draws who talks to whom.",
    Scenario.GROUPS: "A group of three: Carol is removed, a copied device is healed.",
}

COVER_UP = frozenset({Scenario.MITM_FIRST_CONTACT, Scenario.KEY_SWAP})
"""The scenarios where the relay chooses whether to log its fake key in the key
directory (docs/PROTOCOL.md 19): by default it does (a RESET of the victim's name,
the stronger attack: the lookup verifies, and the owner's monitoring catches it);
`blindrelay demo --unlogged` makes it skip that (the first-contact lookup refuses
the key)."""

WITNESSED = frozenset({Scenario.SPLIT_VIEW})
"""The scenarios with a witness variant (`blindrelay demo --witness`): Alice's client
accepts only checkpoints a witness cosigned (docs/PROTOCOL.md 19.11), and the witness
cosigns only one history, so the fork is refused before Alice relies on it."""

DEFAULT_THEME = "default"
PROJECTOR_THEME = "projector"
THEMES = (DEFAULT_THEME, PROJECTOR_THEME)
"""`blindrelay demo --theme`: the terminal's default colours, or teaching.demo.theme's
high-contrast light theme for a projector."""
