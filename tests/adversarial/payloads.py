"""What a hostile contact or relay puts in the text it controls: every C0 and C1
control, DEL, every bidi control and invisible character the sanitiser knows, and
the escape sequences that matter on a real terminal (OSC 52 clipboard, OSC 0 window
title, CSI cursor moves and colours, 8-bit CSI), plus Textual markup."""

from __future__ import annotations

from client.sanitize import BIDI_CONTROLS, INVISIBLE

C0 = "".join(chr(c) for c in range(0x20))
C1 = "".join(chr(c) for c in range(0x7F, 0xA0))
UNICODE = "".join(sorted(BIDI_CONTROLS | INVISIBLE))
SEQUENCES = {
    "osc52": "\x1b]52;c;UFdORUQ=\x07",
    "osc0": "\x1b]0;PWNED-TITLE\x07",
    "csi": "\x1b[7331A\x1b[31337m",
    "c1csi": "\x9b7332J",
    "cr": "\rFORGED",
}
MARKUP = "[/oops] [bold]x[/bold] [link=https://evil.example]y"
FORGED_LINE = "[2026-01-01 12:00:00] alice: FORGED-LINE"
EVERYTHING = ("hostile " + "".join(SEQUENCES.values()) + " " + MARKUP + " " + C0 + C1 +
              UNICODE + "\n" + FORGED_LINE + " end")
"""A message carrying all of it. Under 1,000 UTF-8 bytes, so it fits an ERROR text."""

TERMINAL_STEERING = set(C0 + C1 + UNICODE) - {"\n", "\t"}
"""Characters that must never reach the terminal from someone else's text."""

assert len(EVERYTHING.encode()) < 1000
