"""The demo's themes: the terminal default, and a high-contrast light one for projectors.

A projector washes out dark backgrounds and thin, dim text: a room sees grey on grey.
The projector theme is black on white with saturated, dark accents, and text at full
opacity (Textual's themes draw text at 95% alpha, which a projector turns to grey).
Every colour in the demo's and the chat client's stylesheets is a theme variable
($primary, $text-warning, ...), so one Theme recolours all of it; nothing else changes.
Works in a terminal (`blindrelay demo --theme projector`) and in a browser
(`blindrelay demo --web --theme projector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App
    from textual.theme import Theme

from teaching.names import DEFAULT_THEME, PROJECTOR_THEME, THEMES

DEFAULT = DEFAULT_THEME
PROJECTOR = PROJECTOR_THEME


def projector_theme() -> Theme:
    """The projector theme (built on demand: importing this module costs no Textual)."""
    from textual.theme import Theme

    return Theme(
        name="blindrelay-projector",
        dark=False,
        foreground="#000000",
        background="#ffffff",
        surface="#ffffff",
        panel="#d4d4d4",
        boost="#e8e8e8",
        primary="#0033a0",  # dark blue: the active pane's border, the footer's keys
        secondary="#4b0082",
        accent="#8a3b00",
        warning="#8a4b00",  # "the relay CAN read": dark amber, readable on white
        error="#b00020",
        success="#006400",  # "the relay cannot read": dark green
        text_alpha=1.0,
        luminosity_spread=0.12,
        variables={
            "footer-key-foreground": "#0033a0",
            "footer-description-foreground": "#000000",
            "block-cursor-foreground": "#ffffff",
            "block-cursor-background": "#0033a0",
            "input-selection-background": "#0033a0 35%",
            # the inactive panes' borders and the separators: visible on white
            "panel-lighten-2": "#6e6e6e",
            # timestamps, hints, system notices: dark grey, not the usual 60% alpha
            "text-muted": "#3c3c3c",
            "text-disabled": "#5a5a5a",  # the composer's placeholder
        },
    )


def use_theme(app: App[Any], name: str) -> None:
    """Switch `app` to the demo theme `name` (one of THEMES) before it runs."""
    if name == PROJECTOR:
        theme = projector_theme()
        app.register_theme(theme)
        app.theme = theme.name
    elif name != DEFAULT:
        raise ValueError(f"unknown theme {name!r}: choose one of {', '.join(THEMES)}")
