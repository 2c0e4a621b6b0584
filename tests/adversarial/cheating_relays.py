"""Relays that cheat on what they store, broken on purpose (issue 11 item 9): each
answers every frame exactly as our relay does, so no black-box check can see the
cheat; only the storage audit (`conformance --data DIR`) or the tester's bars can.

- SenderStoringRelay: writes each envelope's sender into a new envelopes.sender
  column.
- ArchivingRelay: copies every acknowledged envelope into an archive table before
  deleting it.
- NeverExpiringRelay: under the default 30-day TTL its sweep deletes nothing (short
  TTLs, the ones a black-box check can wait out, it honours).
- HUGE_LIMITS: honest code announcing limits nobody can test (a 136-year TTL, a
  four-billion-envelope queue, a rate no client reaches).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from protocol.wire.frames import Ack, Frame, Limits, Send, Sent
from server.config import default_limits
from server.relay import Connection, Relay
from server.sqlite_store import SqliteStorage


def _storage(relay: Relay) -> SqliteStorage:
    assert isinstance(relay.storage, SqliteStorage)
    return relay.storage


class SenderStoringRelay(Relay):
    async def _send(self, frame: Send, sender: str) -> Sent:
        sent = await super()._send(frame, sender)

        def op(db: sqlite3.Connection) -> None:
            columns = [r[1] for r in db.execute("PRAGMA table_info(envelopes)")]
            if "sender" not in columns:
                db.execute("ALTER TABLE envelopes ADD COLUMN sender TEXT")
            db.executemany("UPDATE envelopes SET sender=? WHERE envelope_id=?",
                           [(sender, eid) for eid in sent.envelope_ids])

        await _storage(self)._write(op)
        return sent


class ArchivingRelay(Relay):
    async def _carry_out(self, conn: Connection, frame: Frame) -> Frame:
        if isinstance(frame, Ack) and conn.core.username is not None:
            user, ids = conn.core.username, list(frame.envelope_ids)

            def op(db: sqlite3.Connection) -> None:
                db.execute("CREATE TABLE IF NOT EXISTS delivered (envelope_id BLOB, "
                           "recipient TEXT, body BLOB, received_at INTEGER)")
                db.executemany(
                    "INSERT INTO delivered SELECT envelope_id, recipient, body, received_at"
                    " FROM envelopes WHERE recipient=? AND envelope_id=?",
                    [(user, eid) for eid in ids])

            await _storage(self)._write(op)
        return await super()._carry_out(conn, frame)


class NeverExpiringRelay(Relay):
    async def expire_once(self) -> int:
        if self.limits.envelope_ttl >= default_limits().envelope_ttl:
            return 0
        return await super().expire_once()


HUGE_LIMITS: Limits = replace(default_limits(), max_queue=2**32 - 1, envelope_ttl=2**32 - 1,
                              rate_per_second=65535, rate_burst=65535, max_prekeys=65535)
