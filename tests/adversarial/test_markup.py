"""Issue 9 A.2 in-process: a relay whose ERROR text is Textual markup ("[/oops]")
used to crash the chat app at every login (the text went to `notify()` with markup
on). Now it is shown as the literal text, and the app keeps running."""

from __future__ import annotations

from pathlib import Path

from client.tui.app import ChatApp
from tests.adversarial.hostile_relay import hostile_relay
from tests.adversarial.payloads import MARKUP
from tests.client.helpers import make_client, wait_for
from tests.client.test_app import running, toasts


async def test_markup_in_a_relay_error_is_shown_as_text(tmp_path: Path) -> None:
    async with hostile_relay(text=MARKUP) as url:
        client = await make_client(tmp_path, "bob", url, connect=False)
        app = ChatApp(client)
        async with running(app, notifications=True) as (pilot,):
            await wait_for(lambda: any("refused" in t for t in toasts(app)))
            await pilot.pause()
            assert app.is_running
            assert any(MARKUP in t for t in toasts(app))
