"""Issue 9 A.3: the chat app never prints the profile's store key. With one damaged
store row the app used to die on an uncaught `CorruptStore` and Textual's crash
report listed local variables, among them the 32-byte key that decrypts the whole
profile without the passphrase. Now the damaged row is moved aside (issue 9 item 11)
and the app says so in a notice, any crash report has no locals, and the store holds
its keys in `SecretKey`s whose repr hides them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from client.client import Client
from client.store import SecretKey, Store
from client.tui.app import ChatApp
from tests.adversarial.terminal import Screen, blindrelay_argv, run_in_pty
from tests.client.helpers import PASSPHRASE, make_client, shut, wait_for
from tests.client.test_app import online, running, toasts
from tests.support import relay_process, running_relay

ENV = {"BLINDRELAY_PASSPHRASE": PASSPHRASE.decode()}


async def _conversation(tmp: Path, url: str) -> None:
    bob = await make_client(tmp, "bob", url)
    alice = await make_client(tmp, "alice", url)
    await alice.send_text("bob", "hello")
    await asyncio.sleep(0.5)
    await shut(alice, bob)


def _damage(home: Path, table: str) -> None:
    db = sqlite3.connect(Store.path_in(home))
    tag, data = db.execute(f"SELECT tag, data FROM {table} LIMIT 1").fetchone()
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    db.execute(f"UPDATE {table} SET data=? WHERE tag=?", (bytes(damaged), tag))
    db.commit()
    db.close()


def _key_forms(home: Path) -> list[bytes]:
    """Every way the store's keys could be written: raw, hex, Python repr (also a
    truncated one, as tracebacks shorten long values)."""
    store = Store.open(home, PASSPHRASE)
    try:
        keys = [store._enc_key.reveal(), store._index_key.reveal()]
    finally:
        store.close()
    forms: list[bytes] = []
    for key in keys:
        forms += [key, key.hex().encode(), key.hex().upper().encode(),
                  repr(key)[2:26].encode()]
    return forms


def test_a_damaged_row_shows_a_notice_and_never_the_key(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        asyncio.run(_conversation(tmp_path, relay.url))
        home = tmp_path / "bob"
        _damage(home, "contacts")
        code, raw = run_in_pty(
            blindrelay_argv("chat", "--home", home), ENV,
            steps=[(lambda out: "Profile damaged" in Screen.parse(out).text, b"\x11")])
    screen = Screen.parse(raw)
    for form in _key_forms(home):
        assert form not in raw, f"a form of the store key reached the terminal: {form!r}"
        assert form.decode("latin-1") not in screen.text
    assert "Traceback" not in screen.text
    assert "Could not read the conversation list" not in screen.text  # it still works
    assert code == 0


def test_secret_keys_do_not_show_themselves() -> None:
    key = SecretKey(bytes(range(32)))
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert "\\x00\\x01" not in shown and bytes(range(32)).hex() not in shown
        assert "32 bytes" in shown
    assert key.reveal() == bytes(range(32))


async def test_a_damaged_message_row_is_a_notice_in_the_running_app(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        await _conversation(tmp_path, relay.url)
        db = sqlite3.connect(Store.path_in(tmp_path / "bob"))
        row_id, data = db.execute("SELECT id, data FROM messages LIMIT 1").fetchone()
        damaged = bytearray(data)
        damaged[-1] ^= 0x01
        db.execute("UPDATE messages SET data=? WHERE id=?", (bytes(damaged), row_id))
        db.commit()
        db.close()
        bob = Client.open(tmp_path / "bob", PASSPHRASE)
        app = ChatApp(bob)
        async with running(app, notifications=True) as (pilot,):
            await online(app)
            await pilot.press("enter")  # opens alice's conversation: its row is damaged
            await wait_for(lambda: any("moved aside" in t for t in toasts(app)))
            assert app.is_running
            await pilot.press("ctrl+t")  # other handlers keep working
            assert app.is_running
