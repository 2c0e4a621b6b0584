"""Lab 1, a solution that hides too well: the copies are queued as envelopes for an
account the operator registered, inside tables the inventory documents."""

from __future__ import annotations

import contextlib

from server.relay import Relay
from server.storage import StoredEnvelope, UsernameTaken

ARCHIVE = "zz-archive"


class KeepingRelay(Relay):
    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        stored = await super().store_and_push(items)
        with contextlib.suppress(UsernameTaken):
            await self.storage.register(ARCHIVE, b"\x05" + bytes(32))
        await self.storage.store_envelopes([(ARCHIVE, body) for _, body in items],
                                           int(self.clock()), 1_000_000)
        return stored
