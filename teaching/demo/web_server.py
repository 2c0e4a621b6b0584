"""The textual-serve server behind `blindrelay demo --web` (see teaching.demo.web).

Four changes to textual_serve.server.Server, all for a classroom. Each browser tab's
demo ends when the tab does, and all of them when the server does (see DemoSession:
textual-serve 1.1 leaves them running, each with a relay and two people's keys in a
temporary directory, and waits a minute on Ctrl+C for tabs that are still open). It binds 127.0.0.1
itself (port 0 picks a free port, and the printed URL is the real one, which
textual-serve cannot do as it builds URLs from the port it was given); it serves our
page (web_templates/app_index.html: no font fetched from the internet, background
from the theme); and a bare URL redirects to one with the chosen font size, so the
teacher can still change `?fontsize=` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
from aiohttp import WSCloseCode, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from teaching.demo.theme import PROJECTOR

TEMPLATES = Path(__file__).with_name("web_templates")
LOOPBACK = "127.0.0.1"
PAGE_COLOURS = {PROJECTOR: ("#ffffff", "#000000")}
"""The page around the terminal, per theme: (background, text); else a dark page."""
DARK_PAGE = ("#0c181f", "#f2f2f2")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CTRL_Q = b"\x11"
QUIT_GRACE = 15.0
"""Seconds a tab's demo has to close its relay and delete its files before it is
killed."""
log = logging.getLogger("blindrelay.demo.web")


class DemoSession(AppService):
    """One tab's demo process, which always ends with the tab.

    textual-serve ends a session with a "quit" message that stops the Textual app
    without the demo's own quit action, and the demo process then never exits (its
    relay and clients stay behind, in a temporary directory). So a session ends with
    the demo's Ctrl+Q, which closes the relay and clients and deletes their files, and
    the process is killed if it has not exited QUIT_GRACE seconds later. And once the
    tab is gone, the demo's output is still read and dropped: textual-serve stops
    reading it, and a demo blocked writing to a full pipe could not quit at all.
    """

    async def on_data(self, payload: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await super().on_data(payload)

    async def on_meta(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await super().on_meta(data)

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            await self.send_bytes(CTRL_Q)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), QUIT_GRACE)
            except TimeoutError:
                log.warning("a demo did not quit within %.0f s: killed", QUIT_GRACE)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await super().stop()


class DemoServer(Server):
    def __init__(self, command: str, sock: socket.socket, font_size: int,
                 theme: str) -> None:
        port = sock.getsockname()[1]
        super().__init__(command, host=LOOPBACK, port=port, title="blindrelay demo",
                         templates_path=TEMPLATES)
        self.sock = sock
        self.font_size = font_size
        self.page = PAGE_COLOURS.get(theme, DARK_PAGE)
        self.sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        return f"{self.public_url}/?fontsize={self.font_size}"

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        env = aiohttp_jinja2.get_env(app)
        env.globals["page_background"], env.globals["page_foreground"] = self.page

        @web.middleware
        async def default_font_size(request: web.Request, handler: Handler
                                    ) -> web.StreamResponse:
            if request.path == "/" and "fontsize" not in request.query:
                raise web.HTTPFound(request.rel_url.update_query(fontsize=self.font_size))
            return await handler(request)

        app.middlewares.append(default_font_size)
        return app

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler (1.1.3), with a DemoSession and each open socket
        remembered, so that shutdown can end every tab's demo."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        session: DemoSession | None = None

        async def close() -> None:
            await websocket.close()

        self.sockets.add(websocket)
        try:
            await websocket.prepare(request)
            session = DemoSession(self.command, write_bytes=websocket.send_bytes,
                                  write_str=websocket.send_str, close=close,
                                  download_manager=self.download_manager, debug=self.debug)
            await session.start(width, height)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:
            log.exception(error)
        finally:
            self.sockets.discard(websocket)
            if session is not None:
                await asyncio.shield(session.stop())
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every open tab: each handler then ends its demo (aiohttp would
        otherwise wait a minute for them)."""
        for websocket in list(self.sockets):
            await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopped")

    async def on_startup(self, app: web.Application) -> None:
        print(f"blindrelay demo: open {self.url} in a browser (this machine only; each "
              "tab is a new demo with its own relay). Ctrl+C stops.", flush=True)

    def serve(self, debug: bool = False) -> None:
        self.debug = debug
        self.initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        web.run_app(self._make_app(), sock=self.sock, print=None)


def serve(command: str, port: int, font_size: int, theme: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
    except OSError as exc:
        sock.close()
        print(f"blindrelay demo --web: cannot listen on {LOOPBACK}:{port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    DemoServer(command, sock, font_size, theme).serve()
    return 0
