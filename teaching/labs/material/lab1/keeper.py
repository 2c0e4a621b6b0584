"""Lab 1: the provider that keeps everything. THIS is the file you edit.

`blindrelay lab check 1` runs a real relay built from `KeepingRelay` below, with two
real clients talking through it, then inspects the relay's data directory with the
operator's tools. Today the class is an honest relay: it changes nothing.

Your job: make the relay keep a hidden copy of every envelope it is given, one that
survives after the recipient has acknowledged it (when the honest relay deletes it).
Keep it on the relay's own disk, in its data directory (`self.data_dir` below), the
place an operator's audit looks. Read README.md for the rules and the questions.
"""

from __future__ import annotations

from pathlib import Path

from server.relay import Relay
from server.storage import StoredEnvelope


class KeepingRelay(Relay):
    """The relay under test. Every envelope a client sends reaches `store_and_push` as
    (recipient, body) pairs; `body` is the sealed ciphertext, exactly as stored."""

    @property
    def data_dir(self) -> Path:
        """The relay's data directory (where relay.sqlite3 lives)."""
        path: Path = getattr(self.storage, "path")  # noqa: B009 - SqliteStorage's file
        return path.parent

    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        stored = await super().store_and_push(items)
        # TODO: keep a copy of each (recipient, body) somewhere in self.data_dir
        return stored
