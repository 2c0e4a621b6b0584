"""A hostile or broken relay, and a careless umask, must not hurt the client."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from client.connection import ConnectionLost, RelayConnection
from client.store import Store
from protocol.wire.frames import Hello, encode_frame
from server.config import default_limits


def test_profile_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store.create(tmp_path / "home", b"pw")
        store.add_message("someone", None, b"secret")
        for path in (tmp_path / "home").iterdir():
            assert path.stat().st_mode & 0o077 == 0, path.name
        store.close()
    finally:
        os.umask(old)


async def test_a_malformed_frame_from_the_relay_drops_the_connection_cleanly() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(encode_frame(Hello(b"\x00" * 32, default_limits())))
        await ws.send(b"\x01\xee\x00\x00\x00\x00garbage")  # a frame type that does not exist
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await RelayConnection.open(f"ws://127.0.0.1:{port}")
        await asyncio.wait_for(conn.closed.wait(), 5)
        assert conn.error is not None
        try:
            await conn.prekey_counts()
        except ConnectionLost:
            pass
        else:
            raise AssertionError("a request on a dead connection must fail, not hang")
        await conn.close()  # does not raise


async def test_a_user_cannot_pose_as_another_on_first_contact(tmp_path: Path) -> None:
    """mallory seals an initial message to bob with alice's real sender certificate (as
    taken from a message she sent him): its key is not the one the message was made
    with, so bob's client rejects it, and alice is not pinned to mallory's key."""
    from protocol.e2e.keys import IdentityKeyPair
    from protocol.e2e.sealed import SealedContent, seal
    from protocol.e2e.session import Session
    from tests.client.helpers import make_client, wait_for
    from tests.support import running_relay

    async with running_relay(tmp_path / "relay") as relay:
        bob = await make_client(tmp_path, "bob", relay.url)
        alice = await make_client(tmp_path, "alice", relay.url)
        mallory_id = IdentityKeyPair.generate()
        mallory = await RelayConnection.open(relay.url)
        await mallory.register("mallory", mallory_id)
        bundle = await mallory.fetch_bundle("bob")
        session = Session.initiate(mallory_id, bundle)
        kind, message = session.encrypt(b"\x01\x01" + b"\x00" * 16 + b"\x00" * 8
                                        + b"\x00\x00\x00\x05hello")
        certificate = alice.certificates.current()
        assert certificate is not None
        await mallory.send([("bob", seal(bundle.identity,
                                          SealedContent(certificate, kind, message)))])
        await wait_for(lambda: bool(bob.history("?unknown")))
        [placeholder] = bob.history("?unknown")
        assert "impersonating" in placeholder.error
        assert bob.contact("alice") is None
        # the real alice is then accepted as alice
        await alice.send_text("bob", "it's really me")
        await wait_for(lambda: any(m.text == "it's really me" for m in bob.history("alice")))
        contact = bob.contact("alice")
        assert contact is not None and not contact.key_changed
        assert contact.identity == alice.identity.public
        await mallory.close()
        for c in (alice, bob):
            await c.disconnect()
            c.close()
