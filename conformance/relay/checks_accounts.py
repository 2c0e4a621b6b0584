"""HELLO, registration and login."""

from __future__ import annotations

import asyncio
import os
import secrets

from conformance.relay.cleanup import NAME_PREFIX
from conformance.relay.probe import (
    KEM_RECORD_LEN,
    CheckFailed,
    Probe,
    Received,
    ServerRefused,
    describe_answer,
    frame_name,
)
from conformance.relay.registry import Context, User, body, check, fresh_username, make_prekeys
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import codec
from protocol.wire.frames import (
    REGISTER_PURPOSE,
    Ack,
    DeleteAccount,
    Deliver,
    Error,
    ErrorCode,
    FetchBundle,
    Frame,
    Login,
    Ok,
    Outgoing,
    PrekeyCount,
    PrekeysLow,
    QueueDone,
    Register,
    Send,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    delete_account_statement,
    encode_frame,
    login_statement,
    register_statement,
)
from protocol.wire.publickeys import TYPE_ED25519, encode_key

UPLOAD_SIGNED_LEN = 6 + 101 + KEM_RECORD_LEN


def _flip(sig: bytes, bit: int = 0) -> bytes:
    return bytes((sig[0] ^ (1 << bit),)) + sig[1:]


def _other_urls(url: str) -> list[str]:
    """Server URLs that are not this one: another host, another port, another scheme."""
    scheme, rest = url.split("://", 1)
    host, port = rest.rsplit(":", 1)
    other_scheme = "wss" if scheme == "ws" else "ws"
    return [
        "ws://conformance.invalid:1",
        f"{scheme}://{host}:{int(port) % 65535 + 1}",
        f"{other_scheme}://{host}:{port}",
    ]


def _raw_register(probe: Probe, name: bytes, identity: IdentityKeyPair) -> bytes:
    """A REGISTER frame for a username given as raw bytes (which may break the rule),
    signed as register_statement would sign it."""
    probe.ledger.remember(identity)
    statement = (REGISTER_PURPOSE + codec.var16(probe.url.encode()) + probe.challenge
                 + codec.var8(name) + encode_key(TYPE_ED25519, identity.public))
    payload = (codec.var8(name) + encode_key(TYPE_ED25519, identity.public)
               + identity.sign(statement))
    return bytes((1, Register.TYPE)) + codec.u32(probe.next_id()) + payload


async def _not_logged_in(probe: Probe, what: str) -> None:
    await probe.expect_error(PrekeyCount(), ErrorCode.NOT_AUTHENTICATED,
                             f"PREKEY_COUNT after {what}")


# ---- HELLO ------------------------------------------------------------------


@check("hello.first_frame")
async def hello_first_frame(ctx: Context) -> None:
    """Each connection starts with HELLO (request id 0): a fresh 32-byte challenge and
    limits that leave room for the protocol's own frames."""
    a, b = await ctx.connect(), await ctx.connect()
    if a.challenge == b.challenge:
        raise CheckFailed("two connections got the same challenge")
    if len(set(a.challenge)) < 8:
        raise CheckFailed(f"challenge {a.challenge.hex()} does not look random")
    lim = a.limits
    problems = [
        f"{name} is 0" for name in ("max_frame", "max_envelope", "max_recipients", "max_queue",
                                    "max_prekeys", "rate_per_second", "rate_burst",
                                    "envelope_ttl")
        if getattr(lim, name) == 0
    ]
    if lim.max_frame < UPLOAD_SIGNED_LEN:
        problems.append(f"max_frame {lim.max_frame} cannot hold UPLOAD_SIGNED_PREKEYS "
                        f"({UPLOAD_SIGNED_LEN} bytes)")
    if problems:
        raise CheckFailed("HELLO limits: " + "; ".join(problems))


LOGIN_WAIT = 60.0
"""How long a connection that does not log in may stay open (PROTOCOL.md 16.8; our
relay closes it after 10 s)."""


@check("limits.login_timeout", timeout=LOGIN_WAIT + 10, background=True)
async def hello_login_timeout(ctx: Context) -> None:
    """A connection that never logs in is closed (within 60 s): ERROR LOGIN_TIMEOUT with
    request id 0, then a close with 1008, so idle sockets cannot hold the relay's
    connections."""
    probe = await ctx.connect()
    try:
        await asyncio.wait_for(probe.closed.wait(), LOGIN_WAIT)
    except TimeoutError:
        raise CheckFailed(f"a connection not logged in was still open after "
                          f"{LOGIN_WAIT:g} s") from None
    told = [r for r in probe.pending_pushes()
            if isinstance(r.frame, Error) and r.frame.code == ErrorCode.LOGIN_TIMEOUT]
    if not told:
        raise CheckFailed(f"{probe.close_description()} without ERROR LOGIN_TIMEOUT first")
    if probe.ws.close_code != 1008:
        raise CheckFailed(f"after LOGIN_TIMEOUT {probe.close_description()}, not 1008")


# ---- registration -------------------------------------------------------------


@check("register.success")
async def register_success(ctx: Context) -> None:
    """REGISTER with a valid signature gets OK and logs the connection in; the new
    account can log in on another connection."""
    probe = await ctx.connect()
    user = User(fresh_username(), IdentityKeyPair.generate())
    try:
        await probe.register(user.name, user.identity)
    except ServerRefused as exc:
        hint = ""
        if exc.code == ErrorCode.BAD_SIGNATURE:
            hint = f" (does the server accept signatures naming {probe.url}?)"
        raise CheckFailed(f"{exc}{hint}") from None
    if await probe.counts() != (0, 0):
        raise CheckFailed("a new account does not start with 0 one-time prekeys")
    await ctx.login(user)


@check("register.username_taken")
async def register_username_taken(ctx: Context) -> None:
    """A taken username gets USERNAME_TAKEN, also with another identity key."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    other = IdentityKeyPair.generate()
    await probe.expect_error(probe.register_frame(user.name, other), ErrorCode.USERNAME_TAKEN,
                             "REGISTER of a taken username")
    await _not_logged_in(probe, "USERNAME_TAKEN")


INVALID_NAMES: list[bytes] = [
    b"", b"ab", b"a" * 33, b"1abc", b"_abc", b"-abc", b"Abcd", b"abcD", b"ab cd", b"abc!",
    b"abc/", b"abc\x00", "caf\u00e9".encode(), b"\xff\xfe\xfd", b"alice.", b"bob-", b"carol_",
]


@check("register.username_invalid")
async def register_username_invalid(ctx: Context) -> None:
    """Usernames breaking the rule (3-32 characters, a-z first, then a-z 0-9 _ . -, a-z
    or 0-9 last) get USERNAME_INVALID and register nothing; names at the rule's edges
    are accepted."""
    probe = await ctx.connect()
    identity = IdentityKeyPair.generate()
    for name in INVALID_NAMES:
        await probe.expect_error(_raw_register(probe, name, identity),
                                 ErrorCode.USERNAME_INVALID, f"REGISTER of {name!r}")
    await _not_logged_in(probe, "USERNAME_INVALID")
    longest = NAME_PREFIX + secrets.token_hex(15)
    await probe.register(longest, identity)
    # a 3-character name may have been taken by an earlier run: TAKEN also proves it valid
    edge = await ctx.connect()
    short = NAME_PREFIX[:2] + secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789")
    raw = _raw_register(edge, short.encode(), IdentityKeyPair.generate())
    rec = await edge.roundtrip(raw, what=f"REGISTER of {short!r}")
    if not isinstance(rec.frame, Ok) and not (
            isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.USERNAME_TAKEN):
        raise CheckFailed(f"REGISTER of the valid 3-character name {short!r} got "
                          f"{describe_answer(rec)}")
    mixed = await ctx.connect()
    await mixed.register(NAME_PREFIX + "0_.-" + secrets.token_hex(4), IdentityKeyPair.generate())


@check("register.identity_in_use")
async def register_identity_in_use(ctx: Context) -> None:
    """An identity key already bound to an account gets IDENTITY_IN_USE for a new
    name, and that name stays free."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    name = fresh_username()
    await probe.expect_error(probe.register_frame(name, user.identity),
                             ErrorCode.IDENTITY_IN_USE, "REGISTER reusing an identity key")
    await _not_logged_in(probe, "IDENTITY_IN_USE")
    await probe.register(name, IdentityKeyPair.generate())


@check("register.concurrent")
async def register_concurrent(ctx: Context) -> None:
    """The same username registered at once from several connections: exactly one gets
    OK, the others USERNAME_TAKEN; likewise one identity key under several names (the
    others get IDENTITY_IN_USE)."""
    probes = [await ctx.connect() for _ in range(6)]
    name = fresh_username()
    frames = [p.register_frame(name, IdentityKeyPair.generate()) for p in probes]
    answers = await asyncio.gather(*(p.roundtrip(p.encode(f), what="concurrent REGISTER")
                                     for p, f in zip(probes, frames, strict=True)))
    _one_winner(answers, ErrorCode.USERNAME_TAKEN, "the same username")
    probes = [await ctx.connect() for _ in range(6)]
    shared = IdentityKeyPair.generate()
    frames = [p.register_frame(fresh_username(), shared) for p in probes]
    answers = await asyncio.gather(*(p.roundtrip(p.encode(f), what="concurrent REGISTER")
                                     for p, f in zip(probes, frames, strict=True)))
    _one_winner(answers, ErrorCode.IDENTITY_IN_USE, "the same identity key")


def _one_winner(answers: list[Received], loser: ErrorCode, what: str) -> None:
    ok = sum(isinstance(a.frame, Ok) for a in answers)
    others = [describe_answer(a) for a in answers
              if not isinstance(a.frame, Ok)
              and not (isinstance(a.frame, Error) and a.frame.code == loser)]
    if others:
        raise CheckFailed(f"concurrent REGISTERs of {what} got {others[0]}")
    if ok != 1:
        raise CheckFailed(f"{ok} of {len(answers)} concurrent REGISTERs of {what} got OK")


@check("register.bad_signature")
async def register_bad_signature(ctx: Context) -> None:
    """A REGISTER whose signature does not verify (a flipped bit, another key's
    signature) gets BAD_SIGNATURE and registers nothing."""
    probe = await ctx.connect()
    name, identity = fresh_username(), IdentityKeyPair.generate()
    good = probe.register_frame(name, identity)
    for bit in (0, 7):
        await probe.expect_error(Register(name, identity.public, _flip(good.signature, bit)),
                                 ErrorCode.BAD_SIGNATURE, "REGISTER with a flipped signature bit")
    stranger = IdentityKeyPair.generate()
    other_sig = stranger.sign(register_statement(probe.url, probe.challenge, name,
                                                 identity.public))
    await probe.expect_error(Register(name, identity.public, other_sig), ErrorCode.BAD_SIGNATURE,
                             "REGISTER signed by another key")
    await probe.expect_error(Register(name, identity.public, bytes(64)), ErrorCode.BAD_SIGNATURE,
                             "REGISTER with an all-zero signature")
    await probe.expect_error(Register(name, b"\xff" * 32, good.signature),
                             (ErrorCode.BAD_SIGNATURE, ErrorCode.MALFORMED_FRAME),
                             "REGISTER with an identity key that is no curve point")
    await _not_logged_in(probe, "BAD_SIGNATURE")
    await probe.register(name, identity)  # the name was not taken by the failures


SMALL_ORDER_KEY = b"\x01" + bytes(31)
"""The Ed25519 encoding of the neutral point: a key with no X25519 form (3.3)."""


@check("register.small_order_identity")
async def register_small_order_identity(ctx: Context) -> None:
    """A REGISTER with a small-order identity key and the "universal" signature
    (R = the neutral point, S = 0, which a lax Ed25519 accepts for every message) is
    refused (MALFORMED_FRAME: the key has no X25519 form) and registers nothing, so
    nobody can then log in as it."""
    probe = await ctx.connect()
    name = fresh_username()
    universal = SMALL_ORDER_KEY + bytes(32)
    await probe.expect_error(Register(name, SMALL_ORDER_KEY, universal),
                             ErrorCode.MALFORMED_FRAME,
                             "REGISTER with a small-order identity key")
    await _not_logged_in(probe, "a small-order identity key")
    await probe.expect_error(Login(name, universal), ErrorCode.BAD_SIGNATURE,
                             "LOGIN with the universal signature")
    await probe.register(name, IdentityKeyPair.generate())


@check("register.other_server_url")
async def register_other_server_url(ctx: Context) -> None:
    """A REGISTER signed for another server URL (host, port or scheme) gets
    BAD_SIGNATURE: a signature cannot be replayed to another server."""
    probe = await ctx.connect()
    name, identity = fresh_username(), IdentityKeyPair.generate()
    for url in _other_urls(probe.url):
        sig = identity.sign(register_statement(url, probe.challenge, name, identity.public))
        await probe.expect_error(Register(name, identity.public, sig), ErrorCode.BAD_SIGNATURE,
                                 f"REGISTER signed for {url}")
    await probe.register(name, identity)


@check("register.stale_challenge")
async def register_stale_challenge(ctx: Context) -> None:
    """A REGISTER signed over another connection's challenge gets BAD_SIGNATURE."""
    a, b = await ctx.connect(), await ctx.connect()
    name, identity = fresh_username(), IdentityKeyPair.generate()
    await b.expect_error(a.register_frame(name, identity), ErrorCode.BAD_SIGNATURE,
                         "REGISTER signed over another connection's challenge")
    await a.register(name, identity)


@check("register.login_signature_rejected")
async def register_login_signature_rejected(ctx: Context) -> None:
    """A signature over the LOGIN statement is not accepted as a REGISTER signature
    (the purpose strings differ)."""
    probe = await ctx.connect()
    name, identity = fresh_username(), IdentityKeyPair.generate()
    sig = identity.sign(login_statement(probe.url, probe.challenge, name))
    await probe.expect_error(Register(name, identity.public, sig), ErrorCode.BAD_SIGNATURE,
                             "REGISTER signed with the LOGIN statement")
    await _not_logged_in(probe, "BAD_SIGNATURE")


@check("register.signature_not_valid_for_login")
async def register_signature_not_login(ctx: Context) -> None:
    """A signature over the REGISTER statement is not accepted by LOGIN."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    sig = user.identity.sign(register_statement(probe.url, probe.challenge, user.name,
                                                user.identity.public))
    await probe.expect_error(Login(user.name, sig), ErrorCode.BAD_SIGNATURE,
                             "LOGIN signed with the REGISTER statement")
    await _not_logged_in(probe, "BAD_SIGNATURE")


# ---- login --------------------------------------------------------------------


@check("login.success")
async def login_success(ctx: Context) -> None:
    """LOGIN with a valid signature gets OK and then QUEUE_DONE; the connection is
    logged in; the same account can be logged in on a second connection too."""
    user, first = await ctx.register()
    await ctx.release(first)
    probe, delivered, _ = await ctx.login(user)
    if delivered:
        raise CheckFailed(f"a new account's queue held {len(delivered)} envelope(s)")
    await probe.counts()
    await ctx.login(user)


def _sequence(frames: list[Frame]) -> list[str]:
    out = []
    for f in frames:
        if isinstance(f, QueueDone):
            out.append(f"QUEUE_DONE({f.delivered})")
        elif isinstance(f, PrekeysLow):
            out.append(f"PREKEYS_LOW({f.one_time}, {f.kem_one_time})")
        elif isinstance(f, Deliver):
            out.append(f"DELIVER({f.body[:12]!r})")
        else:
            out.append(frame_name(f))
    return out


@check("login.sequence")
async def login_sequence(ctx: Context) -> None:
    """After the OK for REGISTER or LOGIN the server pushes a DELIVER per queued
    envelope, oldest first, then QUEUE_DONE with their number, then PREKEYS_LOW if the
    one-time prekeys are below prekey_low, and nothing else."""
    low = [PrekeysLow(0, 0)] if ctx.limits.prekey_low > 0 else []
    user, reg = await ctx.register()
    await reg.counts()  # answered after the whole login sequence
    got = _sequence([r.frame for r in reg.pending_pushes()])
    want = _sequence([QueueDone(0), *low])
    if got != want:
        raise CheckFailed(f"after REGISTER the server pushed {got}, expected {want}")
    await ctx.release(reg)
    _, sender = await ctx.register()
    bodies = [body("seq0", 20), body("seq1", 20)]
    ids = [(await sender.send([(user.name, b)]))[0] for b in bodies]
    probe = await ctx.connect()
    await probe.login(user.name, user.identity)
    await probe.counts()
    pushed = probe.pending_pushes()
    got = _sequence([r.frame for r in pushed])
    want = _sequence([Deliver(ids[0], 0, bodies[0]), Deliver(ids[1], 0, bodies[1]),
                      QueueDone(2), *low])
    if got != want:
        raise CheckFailed(f"after LOGIN the server pushed {got}, expected {want}")
    if [getattr(r.frame, "envelope_id", None) for r in pushed[:2]] != ids:
        raise CheckFailed("the envelope ids delivered at LOGIN are not the ids SENT listed")
    await probe.ack(ids)


@check("login.bad_signature")
async def login_bad_signature(ctx: Context) -> None:
    """LOGIN with a signature that does not verify gets BAD_SIGNATURE and leaves the
    connection logged out."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    good = probe.login_frame(user.name, user.identity)
    await probe.expect_error(Login(user.name, _flip(good.signature)), ErrorCode.BAD_SIGNATURE,
                             "LOGIN with a flipped signature bit")
    stranger = IdentityKeyPair.generate()
    await probe.expect_error(probe.login_frame(user.name, stranger),
                             ErrorCode.BAD_SIGNATURE, "LOGIN signed by another key")
    await _not_logged_in(probe, "BAD_SIGNATURE")


@check("login.unknown_user")
async def login_unknown_user(ctx: Context) -> None:
    """LOGIN for a username nobody registered gets the answer a wrong signature for a
    registered one gets (BAD_SIGNATURE, the same message), so LOGIN does not tell which
    names are taken."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    unknown = await probe.expect_error(
        probe.login_frame(fresh_username(), IdentityKeyPair.generate()),
        ErrorCode.BAD_SIGNATURE, "LOGIN of an unknown user")
    wrong = await probe.expect_error(probe.login_frame(user.name, IdentityKeyPair.generate()),
                                     ErrorCode.BAD_SIGNATURE, "LOGIN signed by another key")
    if unknown.message != wrong.message:
        raise CheckFailed(f"LOGIN of an unknown name says {unknown.message!r}, a wrong key "
                          f"{wrong.message!r}: the answers tell taken names apart")
    await _not_logged_in(probe, "BAD_SIGNATURE")


@check("login.replayed_frame")
async def login_replayed_frame(ctx: Context) -> None:
    """A LOGIN frame captured from one connection and replayed on another gets
    BAD_SIGNATURE, because the second connection's challenge differs."""
    user, _ = await ctx.register()
    a, b = await ctx.connect(), await ctx.connect()
    captured = encode_frame(a.login_frame(user.name, user.identity), a.next_id())
    rec = await a.roundtrip(captured, what="LOGIN")
    if not isinstance(rec.frame, Ok):
        raise CheckFailed(f"LOGIN on the first connection got {describe_answer(rec)}")
    await b.expect_error(captured, ErrorCode.BAD_SIGNATURE, "LOGIN replayed on a new connection")
    await _not_logged_in(b, "a replayed LOGIN")
    c = await ctx.connect()  # replayed before the original was used, too
    await c.expect_error(b.login_frame(user.name, user.identity), ErrorCode.BAD_SIGNATURE,
                         "LOGIN signed over another connection's challenge")


@check("login.other_server_url")
async def login_other_server_url(ctx: Context) -> None:
    """LOGIN signed for another server URL gets BAD_SIGNATURE."""
    user, _ = await ctx.register()
    probe = await ctx.connect()
    for url in _other_urls(probe.url):
        sig = user.identity.sign(login_statement(url, probe.challenge, user.name))
        await probe.expect_error(Login(user.name, sig), ErrorCode.BAD_SIGNATURE,
                                 f"LOGIN signed for {url}")
    await probe.login(user.name, user.identity)


@check("login.already_authenticated")
async def login_already_authenticated(ctx: Context) -> None:
    """A second LOGIN or REGISTER on a logged-in connection gets ALREADY_AUTHENTICATED,
    whether the connection logged in or registered."""
    user, registered = await ctx.register()
    await registered.expect_error(registered.login_frame(user.name, user.identity),
                                  ErrorCode.ALREADY_AUTHENTICATED, "LOGIN after REGISTER")
    probe, _, _ = await ctx.login(user)
    await probe.expect_error(probe.login_frame(user.name, user.identity),
                             ErrorCode.ALREADY_AUTHENTICATED, "second LOGIN")
    await probe.expect_error(probe.register_frame(fresh_username(), IdentityKeyPair.generate()),
                             ErrorCode.ALREADY_AUTHENTICATED, "REGISTER after LOGIN")
    await probe.counts()


@check("login.required")
async def login_required(ctx: Context) -> None:
    """Every other request before LOGIN gets NOT_AUTHENTICATED and has no effect: no
    envelope is queued, no one-time prekey is used up."""
    owner_id = IdentityKeyPair.generate()
    keys = make_prekeys(owner_id, one_time=1, kem=1)
    owner = User(fresh_username(), owner_id)
    reg = await ctx.connect()
    await reg.register(owner.name, owner.identity)
    await reg.upload_signed(keys.signed, keys.last_resort)
    await reg.upload_one_time(keys.one_time, keys.kem)
    await ctx.release(reg)
    probe = await ctx.connect()
    requests = [
        UploadSignedPrekeys(keys.signed, keys.last_resort),
        UploadOneTimePrekeys(tuple(keys.one_time), tuple(keys.kem)),
        FetchBundle(owner.name),
        PrekeyCount(),
        Send((Outgoing(owner.name, body("unauthenticated")),)),
        Ack((os.urandom(16),)),
    ]
    for frame in requests:
        await probe.expect_error(frame, ErrorCode.NOT_AUTHENTICATED,
                                 f"{type(frame).__name__} before LOGIN")
    check_probe, delivered, _ = await ctx.login(owner)
    if delivered:
        raise CheckFailed("a SEND refused with NOT_AUTHENTICATED was delivered anyway")
    if await check_probe.counts() != (1, 1):
        raise CheckFailed("a FETCH_BUNDLE refused with NOT_AUTHENTICATED used up prekeys")


# ---- deleting an account --------------------------------------------------------


def _delete_frame(probe: Probe, user: User) -> DeleteAccount:
    return probe.core.delete_account_frame(user.identity.sign)


@check("delete_account.success")
async def delete_account_success(ctx: Context) -> None:
    """DELETE_ACCOUNT signed by the account's key gets OK and the server closes the
    connection, and the account's other connections; afterwards LOGIN gets
    UNKNOWN_USER, the name can be registered again (with another key), and what was
    queued for the old account is gone."""
    user, probe = await ctx.register()
    second, _, _ = await ctx.login(user)
    _, sender = await ctx.register()
    await sender.send([(user.name, body("for-the-deleted", 20))])
    await probe.request(_delete_frame(probe, user), Ok, "DELETE_ACCOUNT")
    for which, conn in (("the connection", probe), ("another connection of the account",
                                                     second)):
        try:
            await asyncio.wait_for(conn.closed.wait(), conn.timeout)
        except TimeoutError:
            raise CheckFailed(f"the server did not close {which} after DELETE_ACCOUNT's "
                              "OK") from None
    again = await ctx.connect()
    # a LOGIN naming no account is answered like a wrong key (16.4), so the old key
    # gets BAD_SIGNATURE: it no longer logs anyone in
    await again.expect_error(again.login_frame(user.name, user.identity),
                             ErrorCode.BAD_SIGNATURE, "LOGIN of a deleted account")
    newcomer = User(user.name, IdentityKeyPair.generate())
    fresh = await ctx.connect()
    try:
        await fresh.register(newcomer.name, newcomer.identity)
    except ServerRefused as exc:
        raise CheckFailed(f"the name of a deleted account is not free again: {exc}") from None
    delivered, count = await fresh.drain_queue("REGISTER of a deleted account's name")
    if delivered or count:
        raise CheckFailed(f"the new account got {len(delivered)} envelope(s) queued for the "
                          "deleted one")


@check("delete_account.bad_signature")
async def delete_account_bad_signature(ctx: Context) -> None:
    """DELETE_ACCOUNT with a flipped signature bit, signed by another key, signed as a
    LOGIN, or over another connection's challenge gets BAD_SIGNATURE and deletes
    nothing; before login it gets NOT_AUTHENTICATED."""
    user, probe = await ctx.register()
    good = _delete_frame(probe, user)
    stranger = IdentityKeyPair.generate()
    other = await ctx.connect()
    bad = [
        (DeleteAccount(_flip(good.signature)), "a flipped signature bit"),
        (DeleteAccount(stranger.sign(delete_account_statement(probe.url, probe.challenge,
                                                              user.name))), "another key"),
        (DeleteAccount(user.identity.sign(login_statement(probe.url, probe.challenge,
                                                          user.name))), "a LOGIN statement"),
        (DeleteAccount(user.identity.sign(delete_account_statement(
            probe.url, other.challenge, user.name))), "another connection's challenge"),
    ]
    for frame, what in bad:
        await probe.expect_error(frame, ErrorCode.BAD_SIGNATURE,
                                 f"DELETE_ACCOUNT signed with {what}")
    await other.expect_error(DeleteAccount(good.signature), ErrorCode.NOT_AUTHENTICATED,
                             "DELETE_ACCOUNT before login")
    await probe.alive("refused DELETE_ACCOUNTs")
    await ctx.release(probe)
    await ctx.login(user)  # the account is still there
