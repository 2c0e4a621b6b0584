"""Malformed frames of every kind, a seeded fuzz, and the server still serving others."""

from __future__ import annotations

import asyncio
import os
import random

from conformance.relay.fuzz import answer_expected_by_id, judge, mutate
from conformance.relay.probe import CheckFailed, Probe, describe, describe_answer
from conformance.relay.registry import Context, User, body, check, fresh_username, make_prekeys
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import codec
from protocol.wire.frames import (
    CLIENT_FRAMES,
    FRAME_HEADER_LEN,
    Ack,
    Deliver,
    ErrorCode,
    FetchBundle,
    Frame,
    Hello,
    Login,
    LookupIdentity,
    Ok,
    Outgoing,
    PrekeyCount,
    Register,
    Send,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    encode_frame,
)
from protocol.wire.prekeys import KemKind
from protocol.wire.publickeys import TYPE_MLKEM768, TYPE_X25519, X25519_P

FUZZ_SEED = 0xB1D5EED
FUZZ_LANES = 3
FUZZ_PER_LANE = 100
FUZZ_UNAUTHENTICATED = 80


def _with_id(probe: Probe, data: bytes) -> bytes:
    """The same frame bytes under a fresh request id."""
    return data[:2] + codec.u32(probe.next_id()) + data[FRAME_HEADER_LEN:]


async def _valid_frames(ctx: Context) -> tuple[Probe, Probe, Probe, list[tuple[str, bytes]],
                                                list[tuple[str, bytes]]]:
    """Two logged-out probes (one with an account to log in as), a logged-in probe, and a
    valid frame of each client type: (REGISTER, LOGIN) for the logged-out probe, the
    other six for the logged-in one."""
    user, authed = await ctx.register()
    keys = make_prekeys(user.identity, one_time=1, kem=1)
    await authed.upload_signed(keys.signed, keys.last_resort)
    account = await ctx.offline_user()
    for_login = await ctx.connect()
    fresh = await ctx.connect()
    logged_out = [
        ("REGISTER", encode_frame(fresh.register_frame(fresh_username(),
                                                       IdentityKeyPair.generate()))),
        ("LOGIN", encode_frame(for_login.login_frame(account.name, account.identity))),
    ]
    logged_in: list[tuple[str, Frame]] = [
        ("UPLOAD_SIGNED_PREKEYS", UploadSignedPrekeys(keys.signed, keys.last_resort)),
        ("UPLOAD_ONE_TIME_PREKEYS", UploadOneTimePrekeys(tuple(keys.one_time), tuple(keys.kem))),
        ("FETCH_BUNDLE", FetchBundle(user.name)),
        ("LOOKUP_IDENTITY", LookupIdentity(user.name)),
        ("PREKEY_COUNT", PrekeyCount()),
        ("SEND", Send((Outgoing(account.name, body("malformed")),))),
        ("ACK", Ack((os.urandom(16),))),
    ]
    return (fresh, for_login, authed, logged_out,
            [(name, encode_frame(frame)) for name, frame in logged_in])


async def _each_type(ctx: Context, variants: str) -> None:
    """Every client frame type with `variants` ('truncated' or 'trailing') applied gets
    MALFORMED_FRAME; afterwards the valid frames still work."""
    fresh, for_login, authed, logged_out, logged_in = await _valid_frames(ctx)
    rng = random.Random(variants)
    for probe, frames in ((fresh, logged_out[:1]), (for_login, logged_out[1:]),
                          (authed, logged_in)):
        for name, frame in frames:
            payload_len = len(frame) - FRAME_HEADER_LEN
            if variants == "truncated":
                cuts = sorted({0, 1, payload_len // 2, payload_len - 1} & set(range(payload_len)))
                bad = [frame[:FRAME_HEADER_LEN + cut] for cut in cuts]
            else:
                bad = [frame + b"\x00", frame + rng.randbytes(7)]
            for data in bad:
                data = _with_id(probe, data)
                await probe.expect_error(data, ErrorCode.MALFORMED_FRAME,
                                         f"{name} {variants} to {len(data)} bytes")
    for probe, (name, frame) in ((fresh, logged_out[0]), (for_login, logged_out[1])):
        rec = await probe.roundtrip(_with_id(probe, frame), what=f"the valid {name} afterwards")
        if not isinstance(rec.frame, Ok):
            raise CheckFailed(f"the valid {name} after {variants} ones got {describe_answer(rec)}")
    for name, frame in logged_in:
        rec = await authed.roundtrip(_with_id(authed, frame), what=f"the valid {name} afterwards")
        if (problem := judge(frame, rec)) is not None:
            raise CheckFailed(f"the valid {name} after {variants} ones: {problem}")


@check("malformed.unsupported_version")
async def unsupported_version(ctx: Context) -> None:
    """A frame with a version other than 1 gets UNSUPPORTED_VERSION, logged in or not,
    and the connection goes on."""
    _, authed = await ctx.register()
    logged_out = await ctx.connect()
    for probe in (logged_out, authed):
        for version in (0, 2, 0x7F, 0xFF):
            data = bytes((version, PrekeyCount.TYPE)) + codec.u32(probe.next_id())
            await probe.expect_error(data, ErrorCode.UNSUPPORTED_VERSION,
                                     f"frame version {version}", zero_ok=True)
        await probe.alive("UNSUPPORTED_VERSION")


@check("malformed.unknown_type")
async def unknown_type(ctx: Context) -> None:
    """A frame type no client frame has (server frame types included) gets
    UNKNOWN_FRAME_TYPE, logged in or not, and the connection goes on."""
    _, authed = await ctx.register()
    logged_out = await ctx.connect()
    unknown = [0x00, 0x01, 0x05, 0x1F, 0x2F, 0x7F, Hello.TYPE, Ok.TYPE, Deliver.TYPE, 0xFF]
    assert not set(unknown) & set(CLIENT_FRAMES)
    for probe in (logged_out, authed):
        for frame_type in unknown:
            for payload in (b"", b"\x00\x01\x02"):
                data = bytes((1, frame_type)) + codec.u32(probe.next_id()) + payload
                await probe.expect_error(data, ErrorCode.UNKNOWN_FRAME_TYPE,
                                         f"frame type {frame_type:#04x}")
        await probe.alive("UNKNOWN_FRAME_TYPE")


@check("malformed.truncated")
async def truncated(ctx: Context) -> None:
    """Each of the 8 client frame types, cut short at several points, gets
    MALFORMED_FRAME; the intact frames still work afterwards."""
    await _each_type(ctx, "truncated")


@check("malformed.trailing_bytes")
async def trailing_bytes(ctx: Context) -> None:
    """Each of the 8 client frame types with bytes after its end gets MALFORMED_FRAME;
    the intact frames still work afterwards."""
    await _each_type(ctx, "trailing")


@check("malformed.short_frames")
async def short_frames(ctx: Context) -> None:
    """Binary messages shorter than the 6-byte header (the empty one too) get
    MALFORMED_FRAME with request id 0."""
    _, authed = await ctx.register()
    logged_out = await ctx.connect()
    header = bytes((1, PrekeyCount.TYPE)) + codec.u32(9)
    for probe in (logged_out, authed):
        for size in range(FRAME_HEADER_LEN):
            await probe.expect_error(header[:size], ErrorCode.MALFORMED_FRAME,
                                     f"{size}-byte message")
        await probe.alive("short frames")


@check("malformed.text_message")
async def text_message(ctx: Context) -> None:
    """A text (not binary) WebSocket message gets MALFORMED_FRAME with request id 0,
    and the connection goes on."""
    _, authed = await ctx.register()
    logged_out = await ctx.connect()
    for probe in (logged_out, authed):
        for text in ("hello", "", "\x01\x13\x00\x00\x00\x05"):
            await probe.expect_error(text, ErrorCode.MALFORMED_FRAME, describe(text))
        await probe.alive("text messages")


@check("malformed.precedence")
async def precedence(ctx: Context) -> None:
    """When several errors apply, the documented order decides: FRAME_TOO_LARGE (raw
    length), version, type, parse (USERNAME_INVALID for a bad name), authentication
    (NOT_AUTHENTICATED, ALREADY_AUTHENTICATED), then the request's own checks."""
    lim = ctx.limits
    _, authed = await ctx.register()
    rcpt = await ctx.offline_user()
    logged_out = await ctx.connect()

    def raw(probe: Probe, version: int, frame_type: int, payload: bytes) -> bytes:
        return bytes((version, frame_type)) + codec.u32(probe.next_id()) + payload

    big = bytes(lim.max_frame + 1 - FRAME_HEADER_LEN)
    stranger = IdentityKeyPair.generate()
    bad_keys = make_prekeys(stranger)
    cases: list[tuple[Probe, bytes, ErrorCode, str]] = [
        (logged_out, raw(logged_out, 2, 0x7F, big), ErrorCode.FRAME_TOO_LARGE,
         "oversized frame of version 2 and unknown type"),
        (logged_out, raw(logged_out, 2, 0x7F, b""), ErrorCode.UNSUPPORTED_VERSION,
         "version 2 and unknown type"),
        (logged_out, raw(logged_out, 2, Send.TYPE, b"\x00"), ErrorCode.UNSUPPORTED_VERSION,
         "version 2 SEND with a bad payload"),
        (logged_out, raw(logged_out, 1, 0x7F, b"\x00"), ErrorCode.UNKNOWN_FRAME_TYPE,
         "unknown type before login"),
        (logged_out, raw(logged_out, 1, Send.TYPE, codec.u16(1)), ErrorCode.MALFORMED_FRAME,
         "truncated SEND before login"),
        (logged_out, raw(logged_out, 1, FetchBundle.TYPE, codec.var8(b"ABC")),
         ErrorCode.USERNAME_INVALID, "FETCH_BUNDLE of an invalid name before login"),
        (logged_out, logged_out.encode(Send((Outgoing(fresh_username(), b"x"),))),
         ErrorCode.NOT_AUTHENTICATED, "SEND to an unknown user before login"),
        (logged_out, logged_out.encode(
            Send(tuple(Outgoing(rcpt.name, b"x") for _ in range(lim.max_recipients + 1)))),
         ErrorCode.NOT_AUTHENTICATED, "SEND of too many envelopes before login"),
        (logged_out, logged_out.encode(UploadSignedPrekeys(bad_keys.signed,
                                                           bad_keys.last_resort)),
         ErrorCode.NOT_AUTHENTICATED, "badly signed prekeys before login"),
        (authed, raw(authed, 1, Register.TYPE, codec.var8(b"Not-Valid")
                     + stranger.encoded_public() + bytes(64)),
         ErrorCode.USERNAME_INVALID, "REGISTER of an invalid name when logged in"),
        (authed, authed.encode(Register(fresh_username(), stranger.public, bytes(64))),
         ErrorCode.ALREADY_AUTHENTICATED, "badly signed REGISTER when logged in"),
        (authed, authed.encode(Login(fresh_username(), bytes(64))),
         ErrorCode.ALREADY_AUTHENTICATED, "LOGIN of an unknown user when logged in"),
    ]
    if lim.max_frame > 16 * 1024 * 1024:
        cases = cases[1:]
    for probe, data, code, what in cases:
        if len(data) > lim.max_frame and code != ErrorCode.FRAME_TOO_LARGE:
            continue
        await probe.expect_error(data, code, what, zero_ok=data[0] != 1)
    for probe in (logged_out, authed):
        await probe.alive("frames with several errors")
    await ctx.collect(rcpt, 0)


@check("malformed.bad_fields")
async def bad_fields(ctx: Context) -> None:
    """Frames of the right shape with a bad field: SEND and ACK of nothing, an empty
    body, keys of the wrong type, a non-canonical X25519 key get MALFORMED_FRAME; a
    username breaking the rule gets USERNAME_INVALID."""
    user, authed = await ctx.register()
    keys = make_prekeys(user.identity, one_time=1)
    rcpt = await ctx.offline_user()
    logged_out = await ctx.connect()
    name = codec.var8(rcpt.name.encode())
    spk = keys.signed.encode()
    lr = keys.last_resort.encode()
    non_canonical = bytes((TYPE_X25519,)) + X25519_P.to_bytes(32, "little")
    malformed: list[tuple[int, bytes, str]] = [
        (Send.TYPE, codec.u16(0), "SEND of no envelope"),
        (Send.TYPE, codec.u16(1) + name + codec.var32(b""), "SEND of an empty body"),
        (Send.TYPE, codec.u16(2) + name + codec.var32(b"x"), "SEND of 2 holding 1"),
        (Ack.TYPE, codec.u16(0), "ACK of no envelope"),
        (Ack.TYPE, codec.u16(1) + bytes(15), "ACK of a 15-byte id"),
        (UploadSignedPrekeys.TYPE, spk[:4] + bytes((TYPE_MLKEM768,)) + spk[5:] + lr,
         "signed prekey with the ML-KEM type byte"),
        (UploadSignedPrekeys.TYPE, spk[:4] + non_canonical + spk[37:] + lr,
         "non-canonical X25519 signed prekey"),
        (UploadSignedPrekeys.TYPE, spk + lr[:4] + bytes((TYPE_X25519,)) + lr[5:],
         "last-resort prekey with the X25519 type byte"),
        (UploadOneTimePrekeys.TYPE, codec.u16(1) + keys.one_time[0].encode()[:4]
         + non_canonical + codec.u16(0), "non-canonical X25519 one-time prekey"),
        (UploadOneTimePrekeys.TYPE, codec.u16(0) + codec.u16(1) + lr[:4]
         + bytes((KemKind.ONE_TIME,)) + lr[5:], "one-time KEM prekey with a bad type byte"),
    ]
    for frame_type, payload, what in malformed:
        data = bytes((1, frame_type)) + codec.u32(authed.next_id()) + payload
        await authed.expect_error(data, ErrorCode.MALFORMED_FRAME, what)
    register = logged_out.register_frame(fresh_username(), IdentityKeyPair.generate())
    raw = encode_frame(register, logged_out.next_id())
    wrong_type = raw[:FRAME_HEADER_LEN + 1 + len(register.username)]
    wrong_type += bytes((TYPE_X25519,)) + raw[len(wrong_type) + 1:]
    await logged_out.expect_error(wrong_type, ErrorCode.MALFORMED_FRAME,
                                  "REGISTER with an X25519-typed identity key")
    invalid_names: list[tuple[int, bytes, str]] = [
        (FetchBundle.TYPE, codec.var8(b"No-Such!"), "FETCH_BUNDLE of an invalid name"),
        (FetchBundle.TYPE, codec.var8(b""), "FETCH_BUNDLE of an empty name"),
        (FetchBundle.TYPE, codec.var8("\u00e9t\u00e9".encode()),
         "FETCH_BUNDLE of a non-ASCII name"),
        (Send.TYPE, codec.u16(1) + codec.var8(b"X") + codec.var32(b"x"),
         "SEND to an invalid name"),
    ]
    for frame_type, payload, what in invalid_names:
        data = bytes((1, frame_type)) + codec.u32(authed.next_id()) + payload
        await authed.expect_error(data, ErrorCode.USERNAME_INVALID, what)
    await authed.alive("frames with bad fields")
    await ctx.collect(rcpt, 0)


async def _fuzz_lane(probe: Probe, bases: list[bytes], rng: random.Random, count: int,
                     lane: str) -> None:
    for i in range(count):
        data = mutate(rng, rng.choice(bases))
        what = f"fuzz frame {lane}.{i} ({describe(data)})"
        rec = await probe.roundtrip(data, zero_ok=not answer_expected_by_id(data), what=what)
        if (problem := judge(data, rec)) is not None:
            raise CheckFailed(f"{what}: {problem}")


@check("malformed.fuzz", timeout=60.0)
async def fuzz(ctx: Context) -> None:
    """A seeded fuzz of a few hundred frames (bit flips, truncations, inserted, removed
    and random bytes of valid frames of each type) on several connections, logged in and
    not: each gets an ERROR of a known code (never INTERNAL_ERROR) or, if well-formed, its
    proper answer; every connection keeps working, and a bystander is still served."""
    sink_id = IdentityKeyPair.generate()
    sink = User(fresh_username(), sink_id)
    reg = await ctx.connect()
    await reg.register(sink.name, sink.identity)
    sink_keys = make_prekeys(sink.identity, one_time=2, kem=2)
    await reg.upload_signed(sink_keys.signed, sink_keys.last_resort)
    await reg.upload_one_time(sink_keys.one_time, sink_keys.kem)
    await ctx.release(reg)
    bystander, watcher = await ctx.register()
    lanes: list[tuple[Probe, list[bytes], int, str]] = []
    for lane in range(FUZZ_LANES):
        user, probe = await ctx.register()
        keys = make_prekeys(user.identity, one_time=1, kem=1)
        frames: list[Frame] = [
            probe.register_frame(fresh_username(), IdentityKeyPair.generate()),
            probe.login_frame(user.name, user.identity),
            UploadSignedPrekeys(keys.signed, keys.last_resort),
            UploadOneTimePrekeys(tuple(keys.one_time), tuple(keys.kem)),
            FetchBundle(sink.name),
            PrekeyCount(),
            Send((Outgoing(sink.name, body("fuzz", 24)),)),
            Ack((os.urandom(16),)),
            Ok(),
        ]
        lanes.append((probe, [probe.encode(f) for f in frames], FUZZ_PER_LANE, f"{lane}"))
    anon = await ctx.connect()
    account = await ctx.offline_user()
    anon_frames: list[Frame] = [
        anon.register_frame(fresh_username(), IdentityKeyPair.generate()),
        anon.login_frame(account.name, account.identity),
        PrekeyCount(),
    ]
    lanes.append((anon, [anon.encode(f) for f in anon_frames], FUZZ_UNAUTHENTICATED, "anon"))
    await asyncio.gather(*(
        _fuzz_lane(probe, bases, random.Random(f"{FUZZ_SEED}:{name}"), count, name)
        for probe, bases, count, name in lanes))
    for probe, _, _, name in lanes:
        await probe.alive(f"fuzz lane {name}")
    _, sender = await ctx.register()
    after = body("after fuzz", 32)
    ids = await sender.send([(bystander.name, after)])
    pushed, _ = await watcher.wait_push(Deliver, "DELIVER to a bystander after the fuzz")
    if (pushed.envelope_id, pushed.body) != (ids[0], after):
        raise CheckFailed("a bystander got another envelope than the one sent after the fuzz")
    # leave nothing behind: take whatever the fuzz queued for the sink
    probe, delivered, _ = await ctx.login(sink)
    stored = [r.frame.envelope_id for r in delivered if isinstance(r.frame, Deliver)]
    if stored:
        await probe.ack(stored)


@check("malformed.server_still_serves")
async def server_still_serves(ctx: Context) -> None:
    """After all of the above, new clients are served: register, upload prekeys, fetch
    and verify a bundle, send, receive live and from the queue, acknowledge."""
    alice, a = await ctx.register()
    bob, b = await ctx.register()
    keys = make_prekeys(bob.identity, one_time=1, kem=1)
    await b.upload_signed(keys.signed, keys.last_resort)
    await b.upload_one_time(keys.one_time, keys.kem)
    bundle = await a.fetch_bundle(bob.name)
    bundle.verify()
    live = body("live", 100)
    ids = await a.send([(bob.name, live)])
    pushed, _ = await b.wait_push(Deliver, "DELIVER")
    if (pushed.envelope_id, pushed.body) != (ids[0], live):
        raise CheckFailed("the live envelope arrived changed")
    await b.ack(ids)
    await ctx.release(a)
    queued = body("queued", 100)
    ids = await b.send([(alice.name, queued)])
    frames = await ctx.collect(alice, 1)
    if (frames[0].envelope_id, frames[0].body) != (ids[0], queued):
        raise CheckFailed("the queued envelope arrived changed")
