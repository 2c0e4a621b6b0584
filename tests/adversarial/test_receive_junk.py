"""Issue 9 item 9: the sender name inside a sealed envelope is only a claim, so any
account could file hundreds of "could not be decrypted" placeholders under a real
contact's name. Now a message that fails to authenticate goes to the unknown-sender
conversation, where consecutive placeholders collapse into one counted row that
expires after UNKNOWN_EXPIRY; the contact's conversation stays as it was."""

from __future__ import annotations

import os
from pathlib import Path

from client.history import UNKNOWN_EXPIRY, UNKNOWN_SENDER
from client.records import State
from protocol.e2e.sealed import MessageKind, SealedContent, seal
from tests.client.helpers import make_client, shut, wait_for, wait_last
from tests.support import running_relay

JUNK = 200


async def test_junk_claiming_a_contacts_name_is_one_unknown_row(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay", rate_per_second=1000,
                             rate_burst=1000) as relay:
        alice = await make_client(tmp_path, "alice", relay.url)
        bob = await make_client(tmp_path, "bob", relay.url)
        mallory = await make_client(tmp_path, "mallory", relay.url)
        await alice.send_text("bob", "hello")
        await wait_last(bob, "alice", "hello")
        before = bob.history("alice")
        assert mallory.conn is not None
        bob_key = await mallory.conn.lookup_identity("bob")
        # alice's real sender certificate, as mallory takes it from a message she sent
        # him: it verifies, so only the messages themselves fail
        certificate = alice.certificates.current()
        assert certificate is not None
        for _ in range(0, JUNK, 10):
            await mallory.conn.send([
                ("bob", seal(bob_key, SealedContent(certificate, kind, os.urandom(300))))
                for kind in [MessageKind.RATCHET, MessageKind.RATCHET] * 5])
        await wait_for(lambda: sum(m.count for m in bob.history(UNKNOWN_SENDER)) == JUNK)

        # nothing was filed under alice, whose conversation goes on
        assert bob.history("alice") == before
        assert bob.contact("alice").unread == 1  # type: ignore[union-attr]
        [row] = bob.history(UNKNOWN_SENDER)
        assert row.state is State.UNDECRYPTABLE and row.count == JUNK
        assert f"({JUNK} messages;" in row.error and "claims to come from alice" in row.error
        assert bob.contact(UNKNOWN_SENDER).unread == 1  # type: ignore[union-attr]
        await alice.send_text("bob", "still here")
        await wait_last(bob, "alice", "still here")

        # read, the next placeholder starts a new row; a week on, both are gone
        await bob.mark_read(UNKNOWN_SENDER)
        await mallory.conn.send([("bob", seal(bob_key, SealedContent(
            certificate, MessageKind.RATCHET, os.urandom(300))))])
        await wait_for(lambda: len(bob.history(UNKNOWN_SENDER)) == 2)
        real = bob.clock
        bob.clock = lambda: real() + UNKNOWN_EXPIRY + 60
        await mallory.conn.send([("bob", seal(bob_key, SealedContent(
            certificate, MessageKind.RATCHET, os.urandom(300))))])
        await wait_for(lambda: [m.count for m in bob.history(UNKNOWN_SENDER)] == [1])
        assert bob.contact(UNKNOWN_SENDER).unread == 1  # type: ignore[union-attr]
        await shut(alice, bob, mallory)
