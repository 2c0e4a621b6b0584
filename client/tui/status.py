"""The top bar: who you are and whether the relay is reachable."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from client.sanitize import one_line

STATUS_LOOK = {
    "online": ("●", "online", "bold $text-success"),
    "connecting": ("◌", "connecting…", "bold $text-warning"),
    "offline": ("○", "offline", "bold $text-error"),
}


class StatusBar(Static):
    """Username on the left, connection status (and its detail) on the right."""

    status: reactive[str] = reactive("offline")
    detail: reactive[str] = reactive("")

    def __init__(self, username: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.username = username

    def set_status(self, status: str, detail: str = "") -> None:
        """`detail` may quote a relay (an ERROR text) or the network: it is shown on
        one line with every control made visible."""
        self.status = status
        self.detail = one_line(detail)

    def render(self) -> Content:
        glyph, word, style = STATUS_LOOK.get(self.status, ("?", self.status, "bold"))
        right = Content.assemble((f"{glyph} {word}", style),
                                 (f" — {self.detail}" if self.detail else "", "$text-muted"))
        left = Content.assemble(("blindrelay", "bold"), " · ",
                                (one_line(self.username), "bold $accent"))
        gap = max(1, self.content_size.width - left.cell_length - right.cell_length)
        if left.cell_length + right.cell_length + 1 > self.content_size.width:
            right = right.truncate(max(0, self.content_size.width - left.cell_length - 1),
                                   ellipsis=True)
            gap = 1
        return Content.assemble(left, " " * gap, right)
