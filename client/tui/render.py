"""Pure formatting of library records for the view: no widgets, no I/O, so every
rule about what the user sees (timestamps, delivery states, markers) is testable on
its own.

Everything here that a peer or a relay wrote (message texts, names, error reasons)
goes through `client.sanitize` first, and is assembled into `Content` as plain text,
never parsed as markup: nothing they send can steer the terminal or the styling."""

from __future__ import annotations

import time

import segno
from textual.content import Content

from client.history import UNKNOWN_SENDER
from client.records import Contact, Direction, Message, State, Trust
from client.sanitize import continuation_lines, one_line

STATE_LABELS: dict[State, tuple[str, str]] = {
    State.SENDING: ("◷ sending", "$warning"),
    State.SENT: ("✓ sent", "$text-muted"),
    State.DELIVERED: ("✓✓ delivered", "$text-secondary"),
    State.READ: ("✓✓ read", "bold $text-success"),
}


def display_name(name: str) -> str:
    """A contact's name as shown: the unknown-sender conversation by its label, every
    other name on one line with anything invisible made visible."""
    return "unknown sender" if name == UNKNOWN_SENDER else one_line(name)


def timestamp(ts: float, now: float) -> str:
    """HH:MM for today, the date in front for older messages (local time)."""
    if ts <= 0:
        return "--:--"
    moment = time.localtime(ts)
    today = time.localtime(now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%d %b %H:%M", moment)
    return time.strftime("%Y-%m-%d %H:%M", moment)


def message_time(message: Message) -> float:
    """When the message entered this history, on this machine's clock (a peer's
    clock is not trusted for ordering)."""
    return message.stored_at or message.sent_at_ms / 1000


def state_label(message: Message) -> tuple[str, str]:
    """(text, style) for an outgoing message's delivery state."""
    if message.state is State.FAILED:
        reason = f": {one_line(message.error)}" if message.error else ""
        return f"✗ failed{reason}", "bold $text-error"
    return STATE_LABELS.get(message.state, (message.state.value, "$text-muted"))


def undecryptable_text(message: Message) -> str:
    reason = one_line(message.error) or "unknown reason"
    if not reason.startswith("could not be decrypted"):
        reason = f"could not be decrypted: {reason}"
    return f"⚠ {reason}"


def message_kind(message: Message) -> str:
    """The CSS class of a message line."""
    if message.state is State.UNDECRYPTABLE:
        return "-undecryptable"
    if message.direction is Direction.NOTICE:
        return "-warning" if "CHANGED" in message.text else "-notice"
    if message.state is State.FAILED:
        return "-failed"
    return "-out" if message.direction is Direction.OUT else "-in"


def message_parts(message: Message, now: float) -> tuple[Content, Content]:
    """(header, body) of a message row. The body's lines after the first are indented
    to where the body starts, so a message with line breaks can never show a line
    that looks like another message's header or a notice. (Lines the terminal wraps
    start at the left; they keep the sender's colours, unlike a real header.)"""
    stamp = (timestamp(message_time(message), now), "$text-muted")
    if message.direction is Direction.NOTICE:
        header = Content.assemble(stamp, ("  ── ", "$text-muted"))
        return header, Content.styled(_hang(message.text, header), "italic")
    if message.state is State.UNDECRYPTABLE:
        sender = display_name(message.contact)
        return (Content.assemble(stamp, " ", (sender, "bold"), "  "),
                Content.styled(undecryptable_text(message), "bold $text-error"))
    if message.direction is Direction.OUT:
        label, style = state_label(message)
        header = Content.assemble(stamp, " ", ("you", "bold $text-primary"), "  ")
        return header, Content.assemble(_hang(message.text, header), "  ", (label, style))
    header = Content.assemble(stamp, " ", (display_name(message.contact), "bold $text-accent"),
                              "  ")
    return header, Content(_hang(message.text, header))


def _hang(text: str, header: Content) -> str:
    return continuation_lines(text, " " * header.cell_length)


def message_content(message: Message, now: float) -> Content:
    """A message row: header, then the body."""
    return Content.assemble(*message_parts(message, now))


def trust_marker(contact: Contact) -> tuple[str, str]:
    """(glyph, style): key changed beats verified beats unverified."""
    if contact.name == UNKNOWN_SENDER:
        return "?", "bold $text-warning"
    if contact.key_changed:
        return "⚠", "bold $text-error"
    if contact.trust is Trust.VERIFIED:
        return "✓", "bold $text-success"
    return "·", "$text-muted"


def trust_text(contact: Contact | None) -> tuple[str, str]:
    if contact is None:
        return "no keys yet: your first message fetches them from the relay", "$text-muted"
    if contact.name == UNKNOWN_SENDER:
        return "envelopes whose sender could not be read", "$text-warning"
    if contact.key_changed:
        return "⚠ IDENTITY KEY CHANGED", "bold $text-error"
    if contact.trust is Trust.VERIFIED:
        return "✓ verified", "bold $text-success"
    if contact.was_verified:
        return "unverified (was verified before a key change)", "$text-warning"
    return "unverified", "$text-muted"


def contact_row(contact: Contact, current: bool = False) -> Content:
    """Open marker, trust marker, name, trust marker, name, unread count."""
    glyph, style = trust_marker(contact)
    name = display_name(contact.name)
    parts: list[str | tuple[str, str]] = [("▸" if current else " ", "bold"), " ",
                                          (glyph, style), " ",
                                          (name, "bold" if contact.unread else "")]
    if contact.unread:
        parts += [" ", (f" {contact.unread} ", "bold reverse $text-accent")]
    return Content.assemble(*parts)


def qr_text(payload: str, border: int = 2) -> str:
    """The QR code as half-block characters: two modules per character cell, dark
    modules drawn in the foreground colour (the widget shows it dark on light)."""
    qr = segno.make(payload, error="L", boost_error=False)
    rows = [[bool(bit) for bit in row] for row in qr.matrix]
    size = len(rows)
    blank = [False] * (size + 2 * border)
    padded = [blank] * border + [[False] * border + r + [False] * border for r in rows]
    padded += [blank] * border
    if len(padded) % 2:
        padded.append(blank)
    glyphs = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    lines = []
    for top, bottom in zip(padded[0::2], padded[1::2], strict=True):
        lines.append("".join(glyphs[t, b] for t, b in zip(top, bottom, strict=True)))
    return "\n".join(lines)
