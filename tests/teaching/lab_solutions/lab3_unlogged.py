"""Lab 3, a solution that does not cover up: its fake key is not in the directory."""

from __future__ import annotations

from typing import Any

from teaching.hostile import HostileRelay
from teaching.names import Scenario


class MyRelay(HostileRelay):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, behaviour=Scenario.MITM_FIRST_CONTACT, cover_up=False,
                         **kwargs)
        self.start_mitm("alice", "bob")

    @property
    def read(self) -> list[bytes]:
        return [plaintext for _, _, plaintext in self.opened]
