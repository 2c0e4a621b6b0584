"""conversation.json: the scripted conversation of `conformance.vectors.script`, every
event with the keys and states it produced (docs/PROTOCOL.md sections 7 and 9)."""

from __future__ import annotations

from conformance.vectors import Json
from conformance.vectors.context import Context


def build(ctx: Context) -> Json:
    return ctx.conversation.json(ctx.alice)
