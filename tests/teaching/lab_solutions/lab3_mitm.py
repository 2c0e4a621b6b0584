"""Lab 3, a reference solution: the man in the middle at first contact, with the
fake keys logged in the key directory (the demo's mitm-first-contact)."""

from __future__ import annotations

from typing import Any

from teaching.hostile import HostileRelay
from teaching.names import Scenario


class MyRelay(HostileRelay):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, behaviour=Scenario.MITM_FIRST_CONTACT, **kwargs)
        self.start_mitm("alice", "bob")

    @property
    def read(self) -> list[bytes]:
        return [plaintext for _, _, plaintext in self.opened]
