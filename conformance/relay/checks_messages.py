"""Envelopes: live pushes, in-order offline delivery, deletion after ACK, no sender,
several recipients, all-or-nothing SEND, expiry."""

from __future__ import annotations

import asyncio
import os
import time

from conformance.relay.probe import (
    CheckFailed,
    Received,
    SkipCheck,
    deliver_payload,
    describe_answer,
)
from conformance.relay.registry import Context, body, check, fresh_username
from protocol.wire.frames import (
    Ack,
    Deliver,
    ErrorCode,
    Ok,
    Outgoing,
    PrekeysLow,
    Send,
    encode_frame,
)

CLOCK_SLACK = 3600
"""How far DELIVER's received-at may be from this machine's clock (seconds)."""

EXPIRY_GRACE = 2.5
"""Seconds beyond TTL + 1 (whole-second timestamps) the server gets to expire an envelope."""


def _compare(delivered: list[Received], ids: list[bytes], bodies: list[bytes],
             what: str) -> None:
    """The DELIVERs are exactly these envelopes, in this order."""
    frames = [r.frame for r in delivered]
    got = [(f.envelope_id, f.body) for f in frames if isinstance(f, Deliver)]
    want = list(zip(ids, bodies, strict=True))
    if got == want:
        return
    if len(got) != len(want):
        raise CheckFailed(f"{what}: {len(got)} envelope(s) delivered, expected {len(want)}")
    if sorted(got) == sorted(want):
        raise CheckFailed(f"{what}: the envelopes arrived out of order")
    if [g[0] for g in got] == ids:
        raise CheckFailed(f"{what}: a delivered body differs from the body sent")
    raise CheckFailed(f"{what}: the delivered envelope ids are not the ids SENT listed")


@check("messages.online_push")
async def online_push(ctx: Context) -> None:
    """A logged-in recipient is pushed DELIVER at once, in order, with the ids SENT
    listed and the exact bodies; unacknowledged, they are delivered again at the next
    login."""
    rcpt, live = await ctx.register()
    _, sender = await ctx.register()
    bodies = [body(f"online{i}", 40 + i) for i in range(5)]
    ids = list(await sender.send([(rcpt.name, b) for b in bodies[:3]]))
    ids += await sender.send([(rcpt.name, bodies[3])])
    ids += await sender.send([(rcpt.name, bodies[4])])
    pushed = [(await live.wait_push(Deliver, f"DELIVER {i + 1} of 5"))[1] for i in range(5)]
    _compare(pushed, ids, bodies, "live DELIVER")
    await live.counts()
    if any(isinstance(r.frame, Deliver) for r in live.pending_pushes()):
        raise CheckFailed("an envelope was pushed twice on one connection")
    await ctx.release(live)
    again, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, ids, bodies, "unacknowledged envelopes at the next LOGIN")
    await again.ack(ids)


@check("messages.offline_in_order")
async def offline_in_order(ctx: Context) -> None:
    """Envelopes for an offline recipient are queued and delivered in order at login,
    followed by QUEUE_DONE with their number."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body(f"queued{i}", 30 + 7 * i) for i in range(7)]
    ids: list[bytes] = []
    for b in bodies[:4]:
        ids += await sender.send([(rcpt.name, b)])
    ids += await sender.send([(rcpt.name, b) for b in bodies[4:]])
    probe, delivered, count = await ctx.login(rcpt)
    if count != len(bodies):
        raise CheckFailed(f"QUEUE_DONE says {count}, expected {len(bodies)}")
    _compare(delivered, ids, bodies, "queued envelopes at LOGIN")
    await probe.ack(ids)


@check("messages.deleted_after_ack")
async def deleted_after_ack(ctx: Context) -> None:
    """ACKed envelopes are deleted: the next login delivers only the unacknowledged
    ones, in order; once all are acknowledged the queue is empty."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body(f"ack{i}", 50) for i in range(5)]
    ids = [(await sender.send([(rcpt.name, b)]))[0] for b in bodies]
    first, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, ids, bodies, "first LOGIN")
    await first.ack([ids[0], ids[2]])
    await ctx.release(first)
    second, delivered, _ = await ctx.login(rcpt)
    keep = [1, 3, 4]
    _compare(delivered, [ids[i] for i in keep], [bodies[i] for i in keep],
             "LOGIN after acknowledging envelopes 1 and 3")
    await second.ack([ids[i] for i in keep])
    await ctx.release(second)
    _, delivered, _ = await ctx.login(rcpt)
    if delivered:
        raise CheckFailed(f"{len(delivered)} acknowledged envelope(s) delivered again")


@check("messages.quiet_ack")
async def quiet_ack(ctx: Context) -> None:
    """An ACK with request id 0 (a quiet ACK, PROTOCOL.md 16.5) deletes its envelopes
    like any ACK and is answered by nothing: neither OK nor ERROR comes before the
    answer to the next request, and the next login delivers only the others."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body(f"quiet{i}", 44) for i in range(3)]
    ids = [(await sender.send([(rcpt.name, b)]))[0] for b in bodies]
    first, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, ids, bodies, "first LOGIN")
    await first.send_raw(first.core.send_quiet(Ack((ids[0], ids[1]))))
    await first.counts()  # handled after the ACK: an answer to it would come first
    for rec in first.pending_pushes():
        if not isinstance(rec.frame, Deliver | PrekeysLow):
            raise CheckFailed(f"a quiet ACK (request id 0) was answered with "
                              f"{describe_answer(rec)}; it gets no answer")
    await ctx.release(first)
    second, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, [ids[2]], [bodies[2]], "LOGIN after a quiet ACK of envelopes 1 and 2")
    await second.ack([ids[2]])


@check("messages.ack_only_own")
async def ack_only_own(ctx: Context) -> None:
    """ACK is idempotent and only for one's own envelopes: an ACK naming another
    account's envelope ids, ids that never existed or ids already acknowledged gets OK
    and deletes nothing else."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body("mine", 33), body("mine", 34)]
    ids = list(await sender.send([(rcpt.name, b) for b in bodies]))
    _, stranger = await ctx.register()
    for id_list, what in ((ids, "another account's envelope ids"),
                          ([os.urandom(16) for _ in range(3)], "envelope ids that never existed")):
        rec = await stranger.roundtrip(stranger.encode(Ack(tuple(id_list))),
                                       what=f"ACK of {what}")
        if not isinstance(rec.frame, Ok):
            raise CheckFailed(f"ACK of {what} got {describe_answer(rec)}, expected OK")
    probe, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, ids, bodies, "envelopes another account tried to ACK")
    await probe.ack(ids)
    await probe.ack(ids)  # again: already deleted, still OK
    await ctx.release(probe)
    await ctx.collect(rcpt, 0)


@check("messages.push_during_login")
async def push_during_login(ctx: Context) -> None:
    """Envelopes stored while their recipient logs in are each delivered exactly once on
    that connection, in the order stored: those before QUEUE_DONE are counted by it,
    the rest are pushed after it."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body(f"race{i}", 24) for i in range(40)]
    ids: list[bytes] = []

    async def send_all() -> None:
        for b in bodies:
            ids.extend(await sender.send([(rcpt.name, b)]))

    sending = asyncio.get_running_loop().create_task(send_all())
    try:
        while len(ids) < 10 and not sending.done():
            await asyncio.sleep(0.001)
        probe = await ctx.connect()
        await probe.login(rcpt.name, rcpt.identity)
        delivered, count = await probe.drain_queue(f"LOGIN {rcpt.name}")
        if count != len(delivered):
            raise CheckFailed(f"QUEUE_DONE says {count} after {len(delivered)} DELIVER frames")
        await sending
    finally:
        sending.cancel()
    delivered += [(await probe.wait_push(Deliver, f"DELIVER {i + 1} after QUEUE_DONE"))[1]
                  for i in range(len(delivered), len(bodies))]
    await probe.counts()
    delivered += [r for r in probe.pending_pushes() if isinstance(r.frame, Deliver)]
    _compare(delivered, ids, bodies, "envelopes sent during LOGIN")
    await probe.ack(ids)


@check("messages.several_connections")
async def several_connections(ctx: Context) -> None:
    """A user logged in on several connections gets every envelope on each of them."""
    user, first = await ctx.register()
    second, _, _ = await ctx.login(user)
    _, sender = await ctx.register()
    bodies = [body("both0", 30), body("both1", 31)]
    ids = [(await sender.send([(user.name, b)]))[0] for b in bodies]
    for n, probe in enumerate((first, second)):
        pushed = [(await probe.wait_push(Deliver, f"DELIVER {i + 1} on connection {n + 1}"))[1]
                  for i in range(2)]
        _compare(pushed, ids, bodies, f"connection {n + 1}")
    await first.ack(ids)


@check("messages.no_sender")
async def no_sender(ctx: Context) -> None:
    """DELIVER holds the envelope id, the time received and the exact body, nothing
    else: the same body from two senders is delivered in frames that differ only in id
    and time."""
    rcpt = await ctx.offline_user()
    same = body("nosender", 64)
    ids: list[bytes] = []
    for _ in range(2):
        _, sender = await ctx.register()
        ids += await sender.send([(rcpt.name, same)])
    probe, delivered, _ = await ctx.login(rcpt)
    _compare(delivered, ids, [same, same], "envelopes from two senders")
    now = time.time()
    for rec in delivered:
        assert isinstance(rec.frame, Deliver)
        frame = rec.frame
        exact = bytes((1, Deliver.TYPE)) + bytes(4) + deliver_payload(
            frame.envelope_id, frame.received_at, same)
        if rec.raw != exact:
            raise CheckFailed(f"a DELIVER frame of {len(rec.raw)} bytes is not exactly header, "
                              f"id, time and body ({len(exact)} bytes)")
        if abs(frame.received_at - now) > CLOCK_SLACK:
            raise CheckFailed(f"DELIVER's received-at {frame.received_at} is more than "
                              f"{CLOCK_SLACK} s from this machine's clock")
    await probe.ack(ids)


@check("messages.multi_recipient")
async def multi_recipient(ctx: Context) -> None:
    """One SEND with envelopes for several recipients (one of them twice): SENT lists an
    id per envelope, in order, and each recipient gets its own."""
    online, live = await ctx.register()
    offline = await ctx.offline_user()
    _, sender = await ctx.register()
    bodies = [body("multi0", 40), body("multi1", 41), body("multi2", 42)]
    ids = await sender.send([(online.name, bodies[0]), (offline.name, bodies[1]),
                             (online.name, bodies[2])])
    pushed = [(await live.wait_push(Deliver, f"DELIVER {i + 1} of 2"))[1] for i in range(2)]
    _compare(pushed, [ids[0], ids[2]], [bodies[0], bodies[2]], "live recipient")
    await live.ack([ids[0], ids[2]])
    frames = await ctx.collect(offline, 1)
    if (frames[0].envelope_id, frames[0].body) != (ids[1], bodies[1]):
        raise CheckFailed("the offline recipient got another envelope than its own")


@check("messages.unknown_recipient_atomic")
async def unknown_recipient_atomic(ctx: Context) -> None:
    """A SEND naming an unknown recipient gets UNKNOWN_USER (an invalid name
    USERNAME_INVALID) and stores nothing, not even for the valid recipients."""
    rcpt = await ctx.offline_user()
    _, sender = await ctx.register()
    nobody = fresh_username()
    cases = [
        ([(rcpt.name, body("a")), (nobody, body("b"))], ErrorCode.UNKNOWN_USER, "last"),
        ([(nobody, body("c")), (rcpt.name, body("d"))], ErrorCode.UNKNOWN_USER, "first"),
        ([(rcpt.name, body("e")), ("No-Such!", body("f"))], ErrorCode.USERNAME_INVALID,
         "invalid"),
    ]
    for envelopes, code, where in cases:
        frame = Send(tuple(Outgoing(r, b) for r, b in envelopes))
        await sender.expect_error(encode_frame(frame, sender.next_id()), code,
                                  f"SEND whose {where} recipient does not exist")
    await ctx.collect(rcpt, 0)


@check("messages.expiry", timeout=lambda lim: lim.envelope_ttl + EXPIRY_GRACE + 25,
       background=True)
async def expiry(ctx: Context) -> None:
    """An undelivered envelope older than the announced envelope_ttl is not delivered
    (a fresher one still is). SKIP when the TTL is over 60 s."""
    ttl = ctx.limits.envelope_ttl
    if ttl > 60:
        raise SkipCheck(f"envelope_ttl is {ttl} s; the check waits out the TTL only up to 60 s")
    rcpt = await ctx.offline_user()
    user, sender = await ctx.register()
    await sender.send([(rcpt.name, body("expires", 40))])
    stored = time.monotonic()
    await ctx.release(sender)
    await asyncio.sleep(ttl + 1 + EXPIRY_GRACE)
    fresh = body("fresh", 40)
    sender = await ctx.connect()
    await sender.login(user.name, user.identity)
    fresh_id = await sender.send([(rcpt.name, fresh)])
    age = time.monotonic() - stored
    probe, delivered, _ = await ctx.login(rcpt)
    bodies = [r.frame.body for r in delivered if isinstance(r.frame, Deliver)]
    if len(bodies) > 1 or (bodies and bodies[0] != fresh):
        raise CheckFailed(f"an envelope {age:.1f} s old was delivered (envelope_ttl {ttl} s)")
    if not bodies:
        raise CheckFailed("an envelope sent just before LOGIN was not delivered")
    await probe.ack(list(fresh_id))
