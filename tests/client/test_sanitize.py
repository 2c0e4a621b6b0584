"""The view layer's sanitiser: nothing a peer or a relay writes can steer the terminal."""

from __future__ import annotations

import logging
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from client.commands import SanitizingFormatter, format_message
from client.connection import RelayError
from client.records import Contact, Direction, Message, State
from client.sanitize import (
    BIDI_CONTROLS,
    INVISIBLE,
    continuation_lines,
    one_line,
    placeholder,
    visible,
)
from client.tui.chat import send_error_text
from client.tui.render import contact_row, message_content

C0 = [chr(c) for c in range(0x20) if chr(c) not in "\n\t"]
C1 = [chr(c) for c in range(0x7F, 0xA0)]
ATTACKS = {
    "OSC 52 writes the clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "OSC 0 sets the window title": "\x1b]0;pwned\x07",
    "CSI moves the cursor": "\x1b[2A\x1b[2K",
    "C1 CSI (8-bit)": "\x9b2J",
    "CR overwrites the line": "\rbob: fake",
    "RLO reverses text": "\u202etxt.exe",
    "isolates": "\u2066hidden\u2069",
}


def test_every_c0_c1_and_del_becomes_a_placeholder() -> None:
    for char in C0 + C1:
        out = visible(f"a{char}b")
        assert char not in out
        assert out == f"a{placeholder(char)}b"
    assert placeholder("\x1b") == "␛" and placeholder("\r") == "␍"
    assert placeholder("\x7f") == "␡" and placeholder("\x9b") == "⟨U+009B⟩"


def test_newline_and_tab_survive_but_not_in_one_line_texts() -> None:
    assert visible("a\nb\tc") == "a\nb\tc"
    assert one_line("a\nb\tc") == "a␤b␉c"


def test_bidi_and_invisible_characters_are_shown() -> None:
    for char in BIDI_CONTROLS | INVISIBLE:
        assert char not in visible(f"x{char}y"), f"U+{ord(char):04X} passed"
    assert visible("\U000e0041") == "⟨U+E0041⟩"  # a tag character


def test_attacks_come_out_inert() -> None:
    for name, attack in ATTACKS.items():
        out = visible(attack)
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in out), name


def test_zero_width_joiner_is_kept_inside_an_emoji_sequence_only() -> None:
    technologist = "\U0001f469\u200d\U0001f4bb"
    assert visible(technologist) == technologist
    assert visible("a\u200db") == "a⟨U+200D⟩b"
    assert visible("\u200d\U0001f4bb") == "⟨U+200D⟩\U0001f4bb"


def test_a_continuation_line_can_never_start_a_line() -> None:
    forged = "hello\n[2026-12-02 12:00:00] alice: send me the code\n* alice: You marked bob"
    out = continuation_lines(forged)
    assert all(line.startswith("    ") for line in out.splitlines()[1:])


def test_ordinary_text_is_untouched() -> None:
    for text in ("hello", "grüße, 你好, مرحبا, שלום", "emoji 🎉👍🏽", "tabs\tand\nlines"):
        assert visible(text) == text


@given(st.text())
def test_nothing_a_terminal_interprets_gets_through(text: str) -> None:
    out = visible(text)
    for i, char in enumerate(out):
        category = unicodedata.category(char)
        if char in "\n\t":
            continue
        assert category not in ("Cc", "Cs", "Zl", "Zp"), repr(char)
        if category == "Cf":  # only a joiner between two emoji parts
            assert char == "\u200d" and 0 < i < len(out) - 1, repr(out)


@given(st.text())
def test_continuation_lines_all_indented(text: str) -> None:
    for line in continuation_lines(text).split("\n")[1:]:
        assert line.startswith("    ")


# -- the views apply it


def _hostile_messages() -> list[Message]:
    from tests.adversarial.payloads import EVERYTHING

    return [Message("mallory", Direction.IN, EVERYTHING, State.RECEIVED, unread=True),
            Message("mallory", Direction.OUT, EVERYTHING, State.FAILED, error=EVERYTHING),
            Message("mallory", Direction.NOTICE, EVERYTHING, State.NOTICE),
            Message("mallory", Direction.IN, "", State.UNDECRYPTABLE, error=EVERYTHING)]


def _steering(text: str) -> set[str]:
    from tests.adversarial.payloads import TERMINAL_STEERING

    return set(text) & (TERMINAL_STEERING - {"\n"})


def test_recv_lines_are_sanitised_and_continuations_indented() -> None:
    for message in _hostile_messages():
        out = format_message(message)
        assert not _steering(out), message.direction
        assert all(line.startswith("    ") for line in out.split("\n")[1:])


def test_chat_rows_are_sanitised() -> None:
    for message in _hostile_messages():
        assert not _steering(message_content(message, 0.0).plain)
    hostile_name = "bob\x1b]0;x\x07\u202e"
    row = contact_row(Contact(hostile_name, b"", unread=1)).plain
    assert not _steering(row) and "\n" not in row
    assert not _steering(send_error_text("bob", RelayError(1, "\x1b[2J\r[/oops]")))


def test_client_log_lines_are_sanitised() -> None:
    record = logging.LogRecord("blindrelay.client", logging.WARNING, __file__, 1,
                               "prekey upload failed: %s", ("\x1b]52;c;eA==\x07\nX",), None)
    out = SanitizingFormatter("%(message)s").format(record)
    assert not _steering(out) and out.split("\n")[1].startswith("    ")


def test_chat_rows_indent_every_line_after_the_first_under_the_text() -> None:
    forged = Message("mallory", Direction.IN, "hi\n--:-- you  send the code\n── notice",
                     State.RECEIVED)
    lines = message_content(forged, 0.0).plain.split("\n")
    assert lines[0] == "--:-- mallory  hi"
    assert all(line.startswith(" " * len("--:-- mallory  ")) for line in lines[1:])
