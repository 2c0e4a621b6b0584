"""The one sanitiser every view applies to text it did not write itself.

Text from a peer (message bodies) or from a relay (ERROR texts) is data, never
instructions to the terminal. A terminal interprets C0 and C1 control characters:
ESC starts sequences that move the cursor, repaint lines, set the window title
(OSC 0) or write the clipboard (OSC 52); CR returns to the start of a line so later
text overwrites a sender's name and timestamp. Unicode adds invisible characters
that change what the eye reads: bidirectional overrides and isolates (U+202A-U+202E,
U+2066-U+2069; "Trojan Source", CVE-2021-42574), directional marks, zero-width
characters and tag characters that hide text.

`visible(text)` turns every such character into a visible placeholder, so the user
sees that something was there and what it was, and nothing reaches the terminal that
the app did not write. Newline and tab survive (a message may have several lines;
views decide how to show them: see `continuation_lines`). The placeholders come from
Unicode's Control Pictures block where one exists (ESC is shown as U+241B "␛"),
otherwise as ⟨U+XXXX⟩. JSON output (`recv --json`) stays exact: it escapes controls
itself and scripts must see the real text.
"""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}

BIDI_CONTROLS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE PDF LRO RLO
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI
)
"""Characters that reorder or re-direct text on screen."""

INVISIBLE = frozenset(
    "\u00ad"  # SOFT HYPHEN
    "\u034f"  # COMBINING GRAPHEME JOINER
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers, rendered blank
    "\u180e"  # MONGOLIAN VOWEL SEPARATOR
    "\u200b\u200c\u200d"  # ZERO WIDTH SPACE / NON-JOINER / JOINER
    "\u2028\u2029"  # LINE / PARAGRAPH SEPARATOR: a line break some terminals honour
    "\u2060\u2061\u2062\u2063\u2064"  # WORD JOINER and invisible operators
    "\ufeff"  # ZERO WIDTH NO-BREAK SPACE (BOM)
    "\ufff9\ufffa\ufffb"  # interlinear annotation controls
)
"""Characters that take no visible space: they can hide or split text unseen."""

ZWJ = "\u200d"

_SHOWN_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def _is_emoji_part(char: str) -> bool:
    """Emoji and their modifiers, between which a ZERO WIDTH JOINER is legitimate
    (👩‍💻 is 👩 ZWJ 💻): there it only selects a combined glyph."""
    return (unicodedata.category(char) == "So" or "\U0001f3fb" <= char <= "\U0001f3ff"
            or char == "\ufe0f")


def placeholder(char: str) -> str:
    """What the user sees instead of `char`."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟ (␛ for ESC)
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"⟨U+{code:04X}⟩"


def must_show(char: str) -> bool:
    """Whether `char` is replaced by a placeholder (outside the ZWJ-in-emoji case):
    every control (Cc: C0, DEL, C1), format character (Cf: bidi controls, marks,
    zero-width characters, tags), surrogate, line or paragraph separator, and the
    blank-rendering characters of INVISIBLE."""
    if char in _KEEP:
        return False
    return unicodedata.category(char) in _SHOWN_CATEGORIES or char in INVISIBLE


def visible(text: str) -> str:
    """`text` with every control, bidi and invisible character made visible."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    out: list[str] = []
    last = len(text) - 1
    for i, char in enumerate(text):
        joins_emoji = (char == ZWJ and 0 < i < last and _is_emoji_part(text[i - 1])
                       and _is_emoji_part(text[i + 1]))
        out.append(placeholder(char) if must_show(char) and not joins_emoji else char)
    return "".join(out)


def one_line(text: str) -> str:
    """`visible(text)` on a single line: newlines and tabs shown too (for relay ERROR
    texts and other one-line messages)."""
    return visible(text).replace("\n", "\u2424").replace("\t", "\u2409")


def continuation_lines(text: str, indent: str = "    ") -> str:
    """`visible(text)` with every line after the first indented by `indent`, so a
    multi-line message can never print a line that starts like another message or a
    notice (those start in the first column)."""
    return visible(text).replace("\n", "\n" + indent)
