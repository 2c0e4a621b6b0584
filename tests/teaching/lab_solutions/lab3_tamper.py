"""Lab 3, a simple attack: flip a bit in every envelope for Bob."""

from __future__ import annotations

from typing import Any

from server.relay import Relay
from server.storage import StoredEnvelope


class MyRelay(Relay):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[bytes] = []

    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        damaged = [(r, b[:-1] + bytes([b[-1] ^ 1]) if r == "bob" else b) for r, b in items]
        return await super().store_and_push(damaged)
