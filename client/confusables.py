"""Look-alike usernames (issue 9, item 17): `a1ice` beside `alice`, `rn` beside `m`.

A username is `[a-z][a-z0-9_.-]{2,31}` (docs/PROTOCOL.md section 12), so the
confusables that matter are few, and this module lists them instead of loading
Unicode's table. In the style of Unicode TR39's *skeleton*, every character maps to a
prototype, and two names whose skeletons are equal can be mistaken for each other:

- letters drawn as two others, TR39's own ASCII entries: `m` as `rn`, `w` as `vv`,
  `d` as `cl`;
- digits drawn like letters: `0` as `o`, `1` as `l`, `2` as `z`, `5` as `s`, `6` as
  `b`, `9` as `g`;
- separators at the end, which read as punctuation of the sentence around the name
  (`alice.`, `alice-`, `alice_`), are dropped.

The relay cannot refuse such names for everyone (`bob1` and `bobl` are both fine
alone); the client warns when a new contact's name is a skeleton match of one it
already has.
"""

from __future__ import annotations

from collections.abc import Iterable

PROTOTYPES: dict[str, str] = {
    "m": "rn", "w": "vv", "d": "cl",
    "0": "o", "1": "l", "2": "z", "5": "s", "6": "b", "9": "g",
}

SEPARATORS = "._-"


def skeleton(name: str) -> str:
    """The form two look-alike names share (TR39-style, for the username alphabet)."""
    return "".join(PROTOTYPES.get(c, c) for c in name.rstrip(SEPARATORS))


def lookalikes(name: str, others: Iterable[str]) -> list[str]:
    """The names among `others` that differ from `name` but look like it."""
    mine = skeleton(name)
    return sorted(o for o in others if o != name and skeleton(o) == mine)
