"""`blindrelay demo --web`: the demo in a browser on this machine, for a projector.

A classroom projector is easier to drive from a browser (full screen, zoom, a light
theme) than from a terminal. textual-serve runs the very same Textual demo, one process
per browser tab, and draws it with xterm.js; nothing about the demo changes. It listens
on loopback only: the page drives a demo that holds two people's keys, and it is not a
service to offer on a network.

textual-serve (and its aiohttp web server) is the optional extra `web`, so that a chat
client's install does not carry a web server; without it `demo --web` says how to
install it. The server half lives in teaching.demo.web_server, imported only here.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from teaching.demo.theme import DEFAULT, PROJECTOR

INSTALL_HINT = ("blindrelay demo --web needs the optional 'web' extra (textual-serve): "
                "pip install 'blindrelay[web]'  (from a checkout: pip install -e '.[web]')")
DEFAULT_FONT_SIZE = 16
"""textual-serve's own default, in CSS pixels."""
PROJECTOR_FONT_SIZE = 24
"""With --theme projector: at 1920x1080 this gives 137x40 cells, the demo's wide
layout (every relay row in full); on a 1280x720 projector use --font-size 16."""
MIN_FONT_SIZE, MAX_FONT_SIZE = 8, 72


@dataclass(frozen=True)
class WebOptions:
    """What `demo --web` serves: the demo's own options, passed to each tab's demo
    process, plus the page's font size and the loopback port (0: a free one)."""

    scenario: str | None = None
    pace: float = 1.2
    unlogged: bool = False
    witness: bool = False
    theme: str = DEFAULT
    font_size: int | None = None
    port: int = 0

    @property
    def page_font_size(self) -> int:
        if self.font_size is not None:
            return self.font_size
        return PROJECTOR_FONT_SIZE if self.theme == PROJECTOR else DEFAULT_FONT_SIZE


def demo_command(options: WebOptions) -> str:
    """The shell command textual-serve runs for each browser tab: this interpreter's
    `blindrelay demo` with the same options (quoted: textual-serve runs it via a shell;
    `exec`, so that the process textual-serve holds, and may kill, is the demo)."""
    argv = [sys.executable, "-m", "blindrelay", "demo", "--pace", repr(options.pace),
            "--theme", options.theme]
    if options.scenario:
        argv += ["--scenario", options.scenario]
    if options.unlogged:
        argv.append("--unlogged")
    if options.witness:
        argv.append("--witness")
    return "exec " + shlex.join(argv)


def run_web(options: WebOptions) -> int:
    """Serve the demo until Ctrl+C; print the URL to open first. 2 without textual-serve."""
    try:
        from teaching.demo.web_server import serve
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in {"textual_serve", "aiohttp",
                                                                 "aiohttp_jinja2", "jinja2"}:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
        raise
    return serve(demo_command(options), options.port, options.page_font_size,
                 options.theme)
