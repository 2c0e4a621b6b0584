"""The multi-line composer.

Enter sends. Ctrl+J adds a new line: terminals send Ctrl+J as a bare line feed,
which no terminal confuses with Enter (a carriage return), so it works everywhere,
including terminals that cannot tell Shift+Enter from Enter. Where the terminal does
report them (the kitty keyboard protocol), Shift+Enter and Alt+Enter add a new line
too. Pasted text keeps its line breaks.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

SEND_KEYS = ("enter",)
NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class Composer(TextArea):
    class Submitted(Message):
        """The user pressed Enter with this text in the composer."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                         compact=True, highlight_cursor_line=False,
                         placeholder="Write a message…")

    def set_recipient(self, name: str, blocked: bool = False) -> None:
        if blocked:
            self.placeholder = (f"{name}'s key changed: nothing is sent until you accept it "
                                "(Ctrl+T)")
        else:
            self.placeholder = f"Message {name} — Enter sends, Ctrl+J new line"

    def restore(self, text: str) -> None:
        """Puts back text that could not be sent, unless the user typed on."""
        if not self.text:
            self.load_text(text)
            self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        if event.key in SEND_KEYS:
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.clear()
                self.post_message(self.Submitted(self, text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self.replace("\n", start, end, maintain_selection_offset=False)
            return
        await super()._on_key(event)
