"""Each announced limit, enforced with its own error code, and honoured up to the limit."""

from __future__ import annotations

import asyncio
import time

from conformance.relay.probe import (
    ONE_TIME_RECORD_LEN,
    CheckFailed,
    Probe,
    ServerRefused,
    SkipCheck,
    describe_answer,
)
from conformance.relay.registry import Context, body, check, make_prekeys
from protocol.wire import codec
from protocol.wire.frames import (
    FRAME_HEADER_LEN,
    Deliver,
    Error,
    ErrorCode,
    Outgoing,
    PrekeyCount,
    PrekeyCounts,
    Send,
    Sent,
    UploadOneTimePrekeys,
)

MAX_FRAME_TESTED = 16 * 1024 * 1024
MAX_QUEUE_TESTED = 50_000
MAX_RATE_FRAMES = 20_000


def _send_overhead(recipient: str) -> int:
    """Bytes of a one-envelope SEND frame besides the body."""
    return FRAME_HEADER_LEN + 2 + 1 + len(recipient) + 4


def _send_bytes(probe: Probe, recipient: str, payload: bytes) -> bytes:
    return probe.encode(Send((Outgoing(recipient, payload),)))


@check("limits.frame_too_large")
async def frame_too_large(ctx: Context) -> None:
    """A frame of max_frame + 1 bytes gets FRAME_TOO_LARGE (and the connection goes on);
    a frame of exactly max_frame bytes is not refused for its size."""
    max_frame = ctx.limits.max_frame
    if max_frame > MAX_FRAME_TESTED:
        raise SkipCheck(f"max_frame is {max_frame} bytes")
    rcpt = await ctx.offline_user()
    _, probe = await ctx.register()
    over = max_frame + 1 - _send_overhead(rcpt.name)
    if over < 1:
        raise SkipCheck(f"max_frame {max_frame} cannot hold a SEND")
    frame = _send_bytes(probe, rcpt.name, b"\x00" * over)
    assert len(frame) == max_frame + 1
    await probe.expect_error(frame, ErrorCode.FRAME_TOO_LARGE,
                             f"SEND frame of {max_frame + 1} bytes")
    padded = bytes((1, PrekeyCount.TYPE)) + codec.u32(probe.next_id()) + bytes(max_frame - 5)
    await probe.expect_error(padded, ErrorCode.FRAME_TOO_LARGE,
                             f"PREKEY_COUNT padded to {max_frame + 1} bytes")
    exact = _send_bytes(probe, rcpt.name, b"\x00" * (over - 1))
    rec = await probe.roundtrip(exact, what=f"SEND frame of exactly {max_frame} bytes")
    if isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.FRAME_TOO_LARGE:
        raise CheckFailed(f"a frame of exactly max_frame ({max_frame}) bytes got "
                          "FRAME_TOO_LARGE")
    await probe.alive("FRAME_TOO_LARGE")
    stored = 0 if isinstance(rec.frame, Error) else 1
    await ctx.collect(rcpt, stored)


@check("limits.envelope_too_large")
async def envelope_too_large(ctx: Context) -> None:
    """An envelope body of max_envelope + 1 bytes gets ENVELOPE_TOO_LARGE and nothing of
    that SEND is stored; a body of exactly max_envelope bytes is accepted."""
    lim = ctx.limits
    rcpt = await ctx.offline_user()
    _, probe = await ctx.register()
    needed = FRAME_HEADER_LEN + 2 + 2 * (1 + len(rcpt.name) + 4) + 32 + lim.max_envelope + 1
    if needed > lim.max_frame:
        raise SkipCheck(f"max_envelope {lim.max_envelope} + 1 does not fit in a frame of "
                        f"max_frame {lim.max_frame}")
    big = b"\x5a" * (lim.max_envelope + 1)
    await probe.expect_error(Send((Outgoing(rcpt.name, big),)), ErrorCode.ENVELOPE_TOO_LARGE,
                             f"SEND of a {len(big)}-byte envelope")
    await probe.expect_error(Send((Outgoing(rcpt.name, body("small")), Outgoing(rcpt.name, big))),
                             ErrorCode.ENVELOPE_TOO_LARGE,
                             "SEND of a small and a too large envelope")
    exact = body("exact", lim.max_envelope)
    assert len(exact) == lim.max_envelope
    ids = await probe.send([(rcpt.name, exact)])
    frames = await ctx.collect(rcpt, 1)
    if (frames[0].envelope_id, frames[0].body) != (ids[0], exact):
        raise CheckFailed("the envelope of exactly max_envelope bytes was not delivered intact")


@check("limits.too_many_recipients")
async def too_many_recipients(ctx: Context) -> None:
    """A SEND of max_recipients + 1 envelopes gets TOO_MANY_RECIPIENTS and stores
    nothing; a SEND of exactly max_recipients envelopes is accepted."""
    lim = ctx.limits
    n = lim.max_recipients
    users_needed = -(-n // lim.max_queue)
    if users_needed > 8:
        raise SkipCheck(f"max_recipients {n} envelopes need {users_needed} queues of "
                        f"max_queue {lim.max_queue}")
    rcpts = [await ctx.offline_user() for _ in range(users_needed)]
    _, probe = await ctx.register()
    per = len(rcpts[0].name) + 1 + 4 + 1
    if FRAME_HEADER_LEN + 2 + (n + 1) * per > lim.max_frame:
        raise SkipCheck(f"a SEND of {n + 1} envelopes does not fit in max_frame")
    envelopes = [(rcpts[i % len(rcpts)].name, b"x") for i in range(n + 1)]
    frame = Send(tuple(Outgoing(r, b) for r, b in envelopes))
    await probe.expect_error(frame, ErrorCode.TOO_MANY_RECIPIENTS, f"SEND of {n + 1} envelopes")
    await probe.send(envelopes[:n])
    for i, rcpt in enumerate(rcpts):
        await ctx.collect(rcpt, len(range(i, n, len(rcpts))))


@check("limits.rate_limited")
async def rate_limited(ctx: Context) -> None:
    """Frames beyond the announced burst get RATE_LIMITED; the burst itself is served,
    and the connection is served again once the rate allows."""
    lim = ctx.limits
    n = lim.rate_burst + 2 * lim.rate_per_second + 10
    if n > MAX_RATE_FRAMES:
        raise SkipCheck(f"exceeding a burst of {lim.rate_burst} at {lim.rate_per_second}/s "
                        f"takes {n} frames")
    _, probe = await ctx.register()
    frames = [probe.encode(PrekeyCount()) for _ in range(n)]
    start = time.monotonic()
    answers = await asyncio.gather(*(probe.roundtrip(f, paced=False, what="PREKEY_COUNT")
                                     for f in frames))
    elapsed = time.monotonic() - start
    limited = 0
    for i, rec in enumerate(answers):
        if isinstance(rec.frame, PrekeyCounts):
            continue
        if isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.RATE_LIMITED:
            limited += 1
            if i < lim.rate_burst - 2:
                raise CheckFailed(f"frame {i + 1} of a burst of {lim.rate_burst} got "
                                  "RATE_LIMITED")
            continue
        raise CheckFailed(f"frame {i + 1} of the burst got {describe_answer(rec)}")
    if not limited:
        raise CheckFailed(f"{n} frames in {elapsed:.2f} s, none RATE_LIMITED (burst "
                          f"{lim.rate_burst}, {lim.rate_per_second}/s)")
    await asyncio.sleep(2.0 / lim.rate_per_second + 0.05)
    await probe.counts()


@check("limits.queue_full", timeout=60.0)
async def queue_full(ctx: Context) -> None:
    """A recipient's queue takes max_queue envelopes; the next SEND to it gets QUEUE_FULL
    and stores nothing (not even for another recipient in it); all max_queue are then
    delivered in order, and after the ACK the queue takes envelopes again. A sender
    refused with SENDER_BUDGET (its share of the queue) is relieved by a fresh one."""
    lim = ctx.limits
    if lim.max_queue > MAX_QUEUE_TESTED:
        raise SkipCheck(f"max_queue is {lim.max_queue}")
    rcpt = await ctx.offline_user()
    other = await ctx.offline_user()
    _, sender = await ctx.register()
    per_frame = (lim.max_frame - FRAME_HEADER_LEN - 2) // (1 + len(rcpt.name) + 4 + 4)
    per_send = max(1, min(lim.max_recipients, per_frame))
    bodies = [i.to_bytes(4, "big") for i in range(lim.max_queue)]
    ids: list[bytes] = []
    for start in range(0, lim.max_queue, per_send):
        chunk = [(rcpt.name, b) for b in bodies[start:start + per_send]]
        try:
            ids += await sender.send(chunk)
        except ServerRefused as exc:
            if exc.code != ErrorCode.SENDER_BUDGET:
                raise
            _, sender = await ctx.register()
            ids += await sender.send(chunk)
    await sender.expect_error(Send((Outgoing(rcpt.name, b"full"),)), ErrorCode.QUEUE_FULL,
                              f"SEND to a queue holding max_queue ({lim.max_queue}) envelopes")
    if lim.max_recipients >= 2:
        both = Send((Outgoing(other.name, b"never"), Outgoing(rcpt.name, b"full")))
        await sender.expect_error(both, ErrorCode.QUEUE_FULL, "SEND to another queue and the "
                                  "full one")
    await ctx.collect(other, 0)
    probe, delivered, _ = await ctx.login(rcpt)
    got = [(r.frame.envelope_id, r.frame.body) for r in delivered
           if isinstance(r.frame, Deliver)]
    if got != list(zip(ids, bodies, strict=True)):
        raise CheckFailed(f"the full queue delivered {len(got)} envelope(s), not the "
                          f"{lim.max_queue} sent, in order")
    await probe.ack(ids)
    await sender.send([(rcpt.name, b"room again")])
    await ctx.release(probe)
    await ctx.collect(rcpt, 1)


@check("limits.queue_full_concurrent")
async def queue_full_concurrent(ctx: Context) -> None:
    """Concurrent SENDs from several connections that together overflow one queue: each
    SEND is stored whole or refused whole with QUEUE_FULL, and the queue holds exactly
    the accepted envelopes, at most max_queue."""
    lim = ctx.limits
    if lim.max_queue > 2000:
        raise SkipCheck(f"max_queue is {lim.max_queue}")
    rcpt = await ctx.offline_user()
    per = max(1, min(lim.max_recipients, -(-lim.max_queue // 4) + 1))
    senders = [(await ctx.register())[1] for _ in range(-(-lim.max_queue // per) + 2)]
    frames = [(s, s.encode(Send(tuple(Outgoing(rcpt.name, f"{n}.{i}".encode())
                                      for i in range(per)))))
              for n, s in enumerate(senders)]
    answers = await asyncio.gather(*(s.roundtrip(f, what="concurrent SEND") for s, f in frames))
    accepted = 0
    for rec in answers:
        if isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.QUEUE_FULL:
            continue
        if not isinstance(rec.frame, Sent):
            raise CheckFailed(f"a concurrent SEND got {describe_answer(rec)}")
        accepted += len(rec.frame.envelope_ids)
    if accepted > lim.max_queue:
        raise CheckFailed(f"{accepted} envelopes accepted for a queue of max_queue "
                          f"{lim.max_queue}")
    if accepted + per <= lim.max_queue:
        raise CheckFailed(f"QUEUE_FULL with only {accepted} of {lim.max_queue} queued")
    frames_got = await ctx.collect(rcpt, accepted)
    whole: dict[bytes, int] = {}
    for f in frames_got:
        sender_no = f.body.split(b".")[0]
        whole[sender_no] = whole.get(sender_no, 0) + 1
    if any(n != per for n in whole.values()):
        raise CheckFailed("a SEND refused with QUEUE_FULL was stored in part")


@check("limits.too_many_prekeys")
async def too_many_prekeys(ctx: Context) -> None:
    """Uploading X25519 one-time prekeys beyond max_prekeys gets TOO_MANY_PREKEYS and
    stores none of that upload; exactly max_prekeys are accepted."""
    most = ctx.limits.max_prekeys
    if most > 20_000:
        raise SkipCheck(f"max_prekeys is {most}")
    user, probe = await ctx.register()
    keys = make_prekeys(user.identity, one_time=most + 1)
    if FRAME_HEADER_LEN + 4 + (most + 1) * ONE_TIME_RECORD_LEN <= ctx.limits.max_frame:
        await probe.expect_error(UploadOneTimePrekeys(tuple(keys.one_time), ()),
                                 ErrorCode.TOO_MANY_PREKEYS,
                                 f"upload of {most + 1} one-time prekeys at once")
        if (counts := await probe.counts()) != (0, 0):
            raise CheckFailed(f"a refused upload stored prekeys: PREKEY_COUNTS says {counts}")
    await probe.upload_one_time(keys.one_time[:most], [])
    await probe.expect_error(UploadOneTimePrekeys((keys.one_time[most],), ()),
                             ErrorCode.TOO_MANY_PREKEYS, f"one-time prekey {most + 1}")
    if (counts := await probe.counts()) != (most, 0):
        raise CheckFailed(f"after TOO_MANY_PREKEYS, PREKEY_COUNTS says {counts}, expected "
                          f"({most}, 0)")
    again = make_prekeys(user.identity, one_time=1)  # the id of the first: a replacement
    await probe.upload_one_time(again.one_time, [])
    if (counts := await probe.counts()) != (most, 0):
        raise CheckFailed(f"replacing a prekey by id at max_prekeys gave counts {counts}")


@check("limits.sender_share")
async def sender_share(ctx: Context) -> None:
    """One sender flooding an offline recipient is refused with SENDER_BUDGET before the
    queue is full, storing nothing of the refused SEND, and another sender's envelope
    still gets through and is delivered (docs/PROTOCOL.md 16.7)."""
    lim = ctx.limits
    if lim.max_queue > MAX_QUEUE_TESTED:
        raise SkipCheck(f"max_queue is {lim.max_queue}")
    rcpt = await ctx.offline_user()
    _, flooder = await ctx.register()
    per_frame = (lim.max_frame - FRAME_HEADER_LEN - 2) // (1 + len(rcpt.name) + 4 + 4)
    per_send = max(1, min(lim.max_recipients, per_frame))
    stored = 0
    refusal: Error | None = None
    while stored < lim.max_queue:
        n = min(per_send, lim.max_queue - stored)
        frame = Send(tuple(Outgoing(rcpt.name, (stored + i).to_bytes(4, "big"))
                           for i in range(n)))
        rec = await flooder.roundtrip(flooder.encode(frame), what="flooding SEND")
        if isinstance(rec.frame, Sent):
            stored += len(rec.frame.envelope_ids)
            continue
        if isinstance(rec.frame, Error):
            refusal = rec.frame
            break
        raise CheckFailed(f"a flooding SEND got {describe_answer(rec)}")
    if refusal is None or refusal.code != ErrorCode.SENDER_BUDGET:
        got = "nothing" if refusal is None else ErrorCode(refusal.code).name
        raise CheckFailed(f"one sender queued {stored} envelopes for one recipient (max_queue "
                          f"{lim.max_queue}) and got {got}, not SENDER_BUDGET: it can lock "
                          "the recipient's other contacts out")
    _, honest = await ctx.register()
    await honest.send([(rcpt.name, b"from a real contact")])
    frames = await ctx.collect(rcpt, stored + 1)
    if frames[-1].body != b"from a real contact":
        raise CheckFailed("the other sender's envelope was not delivered after the flood")


@check("limits.fetch_budget")
async def fetch_budget(ctx: Context) -> None:
    """One account fetching an owner's bundles as fast as it may is refused with
    RATE_LIMITED before it has taken all of the owner's one-time prekeys, and another
    account still gets a bundle with a one-time prekey (docs/PROTOCOL.md 16.7)."""
    most = ctx.limits.max_prekeys
    if most > 2000:
        raise SkipCheck(f"max_prekeys is {most}")
    owner, owner_probe = await ctx.register()
    keys = make_prekeys(owner.identity, one_time=most, kem=most)
    await owner_probe.upload_signed(keys.signed, keys.last_resort)
    await owner_probe.upload_one_time(keys.one_time, keys.kem)
    _, drainer = await ctx.register()
    taken = 0
    while taken < most:
        try:
            await drainer.fetch_bundle(owner.name)
        except ServerRefused as exc:
            if exc.code != ErrorCode.RATE_LIMITED:
                raise
            break
        taken += 1
    else:
        raise CheckFailed(f"one account fetched all {most} one-time prekeys of another "
                          "without RATE_LIMITED")
    if (counts := await owner_probe.counts()) != (most - taken, most - taken):
        raise CheckFailed(f"after {taken} bundles and a refusal, PREKEY_COUNTS says {counts},"
                          f" expected {(most - taken, most - taken)}")
    _, friend = await ctx.register()
    bundle = await friend.fetch_bundle(owner.name)
    if bundle.one_time_prekey is None:
        raise CheckFailed("another account's bundle had no one-time prekey after the drain")
