"""What several vector files are made from, made once per run: the recorded values, Alice
and Bob's keys, and the scripted conversation (docs/PROTOCOL.md section 17)."""

from __future__ import annotations

from functools import cached_property

from conformance.vectors.common import BobKeys, identity
from conformance.vectors.recorded import Recorded
from conformance.vectors.script import Conversation
from protocol.e2e.keys import IdentityKeyPair


class Context:
    """Handed to every `gen_<name>.build(ctx)`; a generator that needs none of this may
    define `build()` without it."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded

    @cached_property
    def alice(self) -> IdentityKeyPair:
        return identity("alice")

    @cached_property
    def bob(self) -> BobKeys:
        return BobKeys()

    @cached_property
    def conversation(self) -> Conversation:
        """The conversation, already run to its end (conversation.json's events)."""
        conv = Conversation(self.recorded, self.bob, self.alice)
        conv.run()
        return conv
