"""Sealed sending (docs/PROTOCOL.md 16.10): SEALED_SEND only with the recipient's
capability (or to a recipient that allows anyone), delivered like SEND's envelopes,
never on a logged-in connection, cut off by rotation, and budgeted per capability."""

from __future__ import annotations

import hashlib
import os

from conformance.relay.probe import CheckFailed, Probe, SkipCheck
from conformance.relay.registry import Context, User, body, check
from protocol.wire.frames import (
    Deliver,
    Error,
    ErrorCode,
    Ok,
    SealedOutgoing,
    SealedSend,
    Sent,
    SetCapability,
)

FLOOD_CAP = 600
"""Sealed envelopes the rate check sends under one capability before it gives up
(the per-capability budget is not announced; ours allows 60 at once)."""


def sealed(envelopes: list[tuple[str, bytes, bytes]]) -> SealedSend:
    return SealedSend(tuple(SealedOutgoing(r, c, b) for r, c, b in envelopes))


async def with_capability(ctx: Context, anyone: bool = False) -> tuple[User, Probe, bytes]:
    """A fresh account that set a fresh capability: (user, its probe, the capability)."""
    user, probe = await ctx.register()
    capability = os.urandom(32)
    await probe.request(SetCapability(anyone, hashlib.sha256(capability).digest()), Ok,
                        "SET_CAPABILITY")
    return user, probe, capability


async def send_sealed(ctx: Context, envelopes: list[tuple[str, bytes, bytes]],
                      what: str) -> tuple[bytes, ...]:
    """One SEALED_SEND on a fresh connection that never logs in; its SENT ids."""
    sender = await ctx.connect()
    answer = await sender.request(sealed(envelopes), Sent, what)
    await ctx.release(sender)
    if len(answer.envelope_ids) != len(envelopes):
        raise CheckFailed(f"{what}: SENT lists {len(answer.envelope_ids)} ids for "
                          f"{len(envelopes)} envelopes")
    return answer.envelope_ids


async def refused_sealed(ctx: Context, envelopes: list[tuple[str, bytes, bytes]],
                         code: ErrorCode, what: str) -> None:
    sender = await ctx.connect()
    await sender.expect_error(sealed(envelopes), code, what)
    await ctx.release(sender)


@check("sealed.capability_required")
async def capability_required(ctx: Context) -> None:
    """A SEALED_SEND with a capability that is not the recipient's is BAD_CAPABILITY and
    stores nothing, even when another envelope of it is good; with the capability it is
    SENT and queued for the offline recipient."""
    rcpt, probe, capability = await with_capability(ctx)
    await ctx.release(probe)
    await refused_sealed(ctx, [(rcpt.name, os.urandom(32), body("wrong"))],
                         ErrorCode.BAD_CAPABILITY, "SEALED_SEND with a wrong capability")
    await refused_sealed(ctx, [(rcpt.name, capability, body("good")),
                               (rcpt.name, os.urandom(32), body("bad"))],
                         ErrorCode.BAD_CAPABILITY, "SEALED_SEND with one wrong capability")
    await ctx.collect(rcpt, 0)
    sent = body("sealed", 100)
    (envelope_id,) = await send_sealed(ctx, [(rcpt.name, capability, sent)], "SEALED_SEND")
    (got,) = await ctx.collect(rcpt, 1)
    if (got.envelope_id, got.body) != (envelope_id, sent):
        raise CheckFailed("the queued sealed envelope is not the one SENT named")


@check("sealed.delivered_live")
async def delivered_live(ctx: Context) -> None:
    """A sealed envelope is pushed at once to its logged-in recipient, like SEND's."""
    rcpt, probe, capability = await with_capability(ctx)
    sent = body("live", 60)
    (envelope_id,) = await send_sealed(ctx, [(rcpt.name, capability, sent)], "SEALED_SEND")
    frame, _ = await probe.wait_push(Deliver, "DELIVER of a sealed envelope")
    if (frame.envelope_id, frame.body) != (envelope_id, sent):
        raise CheckFailed("the pushed sealed envelope is not the one SENT named")
    await probe.ack([envelope_id])


@check("sealed.allow_anyone")
async def allow_anyone(ctx: Context) -> None:
    """A recipient that allows anyone takes sealed envelopes with any capability."""
    rcpt, probe, _ = await with_capability(ctx, anyone=True)
    await ctx.release(probe)
    await send_sealed(ctx, [(rcpt.name, os.urandom(32), body("anyone"))],
                      "SEALED_SEND to a recipient that allows anyone")
    await ctx.collect(rcpt, 1)


@check("sealed.never_with_login")
async def never_with_login(ctx: Context) -> None:
    """SEALED_SEND after login is ALREADY_AUTHENTICATED; LOGIN on a connection that
    sent a SEALED_SEND is ALREADY_AUTHENTICATED too (it never logs in)."""
    rcpt, probe, capability = await with_capability(ctx)
    await probe.expect_error(sealed([(rcpt.name, capability, body("after"))]),
                             ErrorCode.ALREADY_AUTHENTICATED, "SEALED_SEND after login")
    await ctx.release(probe)
    sender = await ctx.connect()
    await sender.request(sealed([(rcpt.name, capability, body("before"))]), Sent,
                         "SEALED_SEND")
    await sender.expect_error(sender.login_frame(rcpt.name, rcpt.identity),
                              ErrorCode.ALREADY_AUTHENTICATED,
                              "LOGIN on a connection that sent a SEALED_SEND")
    await ctx.release(sender)
    await ctx.collect(rcpt, 1)


@check("sealed.rotation")
async def rotation(ctx: Context) -> None:
    """After SET_CAPABILITY with a new capability, the old one is BAD_CAPABILITY and
    the new one works."""
    rcpt, probe, old = await with_capability(ctx)
    new = os.urandom(32)
    await probe.request(SetCapability(False, hashlib.sha256(new).digest()), Ok,
                        "SET_CAPABILITY (rotation)")
    await ctx.release(probe)
    await refused_sealed(ctx, [(rcpt.name, old, body("old"))], ErrorCode.BAD_CAPABILITY,
                         "SEALED_SEND with the capability before rotation")
    await send_sealed(ctx, [(rcpt.name, new, body("new"))], "SEALED_SEND after rotation")
    await ctx.collect(rcpt, 1)


@check("sealed.capability_rate_limited")
async def capability_rate_limited(ctx: Context) -> None:
    """A flood of sealed envelopes under one capability is refused with RATE_LIMITED
    before FLOOD_CAP envelopes."""
    limits = ctx.limits
    per_frame = max(1, min(limits.max_recipients, (limits.max_frame - 64) // 80))
    flood = min(FLOOD_CAP, limits.max_queue)
    rcpt, probe, capability = await with_capability(ctx)
    await ctx.release(probe)
    sender = await ctx.connect()
    count = 0
    while count < flood:
        n = min(per_frame, flood - count)
        rec = await sender.roundtrip(
            sender.encode(sealed([(rcpt.name, capability, b"f") for _ in range(n)])),
            what="SEALED_SEND flood")
        if isinstance(rec.frame, Error):
            await ctx.release(sender)
            if rec.frame.code == ErrorCode.RATE_LIMITED:
                return
            if rec.frame.code == ErrorCode.QUEUE_FULL:
                raise SkipCheck(f"the recipient's queue filled after {count} sealed "
                                "envelopes, before any RATE_LIMITED")
            raise CheckFailed(f"the flood got ERROR {rec.frame.code} ({rec.frame.message}), "
                              "expected RATE_LIMITED")
        if not isinstance(rec.frame, Sent):
            raise CheckFailed("SEALED_SEND flood: expected SENT or RATE_LIMITED")
        count += n
    await ctx.release(sender)
    if flood < FLOOD_CAP:
        raise SkipCheck(f"max_queue {limits.max_queue} bounds the flood; no RATE_LIMITED "
                        f"within {flood} sealed envelopes")
    raise CheckFailed(f"{FLOOD_CAP} sealed envelopes under one capability, none refused "
                      "with RATE_LIMITED")
