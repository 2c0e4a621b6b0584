"""A plain-text rendering of what an app shows, for snapshot tests and for the
README's screen capture."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.app import App


def screen_text(app: App[Any]) -> str:
    """The current screen (with the screens under a modal) as lines of text, right
    stripped."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    update = app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True)
    console.print(update)
    text = console.export_text(clear=True, styles=False)
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines[:height])
