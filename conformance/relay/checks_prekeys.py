"""Prekeys: uploads are verified, bundles are exact and verify, one-time prekeys are
handed out at most once (also under concurrent fetches), counts and PREKEYS_LOW."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from conformance.relay.probe import CheckFailed, Probe, SkipCheck, describe_answer
from conformance.relay.registry import (
    Context,
    PrekeySet,
    User,
    check,
    fresh_username,
    make_prekeys,
)
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.errors import BadSignature
from protocol.wire.frames import (
    Error,
    ErrorCode,
    FetchBundle,
    Identity,
    LookupIdentity,
    PrekeysLow,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
)
from protocol.wire.prekeys import KemKind, KemPreKey, PreKeyBundle, SignedPreKey


def _forged(record: SignedPreKey | KemPreKey) -> SignedPreKey | KemPreKey:
    """The record with one bit of its signature flipped."""
    sig = record.signature
    return replace(record, signature=sig[:-1] + bytes((sig[-1] ^ 0x01,)))


def _verified(bundle: PreKeyBundle, what: str) -> PreKeyBundle:
    try:
        bundle.verify()
    except BadSignature:
        raise CheckFailed(f"{what}: a signature in the bundle does not verify") from None
    return bundle


async def _owner(ctx: Context, one_time: int = 0, kem: int = 0,
                 upload: bool = True) -> tuple[User, Probe, PrekeySet]:
    """A fresh account on its own connection, with its prekeys (uploaded if `upload`)."""
    user, probe = await ctx.register()
    keys = make_prekeys(user.identity, one_time, kem)
    if upload:
        await probe.upload_signed(keys.signed, keys.last_resort)
        if one_time or kem:
            await probe.upload_one_time(keys.one_time, keys.kem)
    return user, probe, keys


async def _no_bundle(probe: Probe, user: User, what: str) -> None:
    await probe.expect_error(FetchBundle(user.name), ErrorCode.NO_PREKEYS,
                             f"FETCH_BUNDLE after {what}")


@check("prekeys.bad_signed_prekey_signature")
async def bad_signed_prekey_signature(ctx: Context) -> None:
    """UPLOAD_SIGNED_PREKEYS whose signed prekey's signature does not verify against the
    account's identity key gets BAD_SIGNATURE and stores nothing."""
    user, probe, keys = await _owner(ctx, upload=False)
    stranger = make_prekeys(IdentityKeyPair.generate())
    for spk, how in ((_forged(keys.signed), "a flipped bit"), (stranger.signed, "another key")):
        assert isinstance(spk, SignedPreKey)
        await probe.expect_error(UploadSignedPrekeys(spk, keys.last_resort),
                                 ErrorCode.BAD_SIGNATURE, f"signed prekey signed with {how}")
    await _no_bundle(probe, user, "a refused upload")
    await probe.upload_signed(keys.signed, keys.last_resort)
    newer = make_prekeys(user.identity)
    await probe.expect_error(UploadSignedPrekeys(stranger.signed, newer.last_resort),
                             ErrorCode.BAD_SIGNATURE, "replacing with a bad signed prekey")
    bundle = _verified(await probe.fetch_bundle(user.name), "bundle")
    if bundle.signed_prekey != keys.signed or bundle.kem_prekey != keys.last_resort:
        raise CheckFailed("a refused UPLOAD_SIGNED_PREKEYS replaced the stored prekeys")


@check("prekeys.bad_last_resort_signature")
async def bad_last_resort_signature(ctx: Context) -> None:
    """UPLOAD_SIGNED_PREKEYS whose last-resort ML-KEM prekey's signature does not verify
    gets BAD_SIGNATURE and stores nothing."""
    user, probe, keys = await _owner(ctx, upload=False)
    stranger = make_prekeys(IdentityKeyPair.generate())
    for kem, how in ((_forged(keys.last_resort), "a flipped bit"),
                     (stranger.last_resort, "another key")):
        assert isinstance(kem, KemPreKey)
        await probe.expect_error(UploadSignedPrekeys(keys.signed, kem), ErrorCode.BAD_SIGNATURE,
                                 f"last-resort KEM prekey signed with {how}")
    await _no_bundle(probe, user, "a refused upload")


@check("prekeys.bad_one_time_kem_signature")
async def bad_one_time_kem_signature(ctx: Context) -> None:
    """UPLOAD_ONE_TIME_PREKEYS with one ML-KEM prekey whose signature does not verify
    gets BAD_SIGNATURE and stores none of the upload (the X25519 ones included)."""
    user, probe, keys = await _owner(ctx, one_time=3, kem=3, upload=False)
    await probe.upload_signed(keys.signed, keys.last_resort)
    bad = _forged(keys.kem[1])
    assert isinstance(bad, KemPreKey)
    frame = UploadOneTimePrekeys(tuple(keys.one_time), (keys.kem[0], bad, keys.kem[2]))
    await probe.expect_error(frame, ErrorCode.BAD_SIGNATURE, "one-time KEM prekey with a bad "
                             "signature")
    if (counts := await probe.counts()) != (0, 0):
        raise CheckFailed(f"after a refused upload PREKEY_COUNTS says {counts}, not (0, 0)")
    stranger = make_prekeys(IdentityKeyPair.generate(), kem=1)
    frame = UploadOneTimePrekeys((), (stranger.kem[0],))
    await probe.expect_error(frame, ErrorCode.BAD_SIGNATURE, "one-time KEM prekey signed by "
                             "another key")
    bundle = _verified(await probe.fetch_bundle(user.name), "bundle")
    if bundle.one_time_prekey is not None or bundle.kem_kind != KemKind.LAST_RESORT:
        raise CheckFailed("a refused upload's one-time prekeys are handed out")


@check("prekeys.bundle_verifies")
async def bundle_verifies(ctx: Context) -> None:
    """Fetched bundles verify (PreKeyBundle.verify) and hold exactly the uploaded keys:
    the identity, the signed prekey, one one-time prekey of each kind while any is left,
    then the last-resort ML-KEM prekey and no one-time X25519 prekey."""
    user, _, keys = await _owner(ctx, one_time=3, kem=2)
    _, fetcher_probe = await ctx.register()
    seen_one: list[int] = []
    seen_kem: list[int] = []
    one_by_id = {k.key_id: k for k in keys.one_time}
    kem_by_id = {k.key_id: k for k in keys.kem}
    for i in range(5):
        what = f"bundle {i + 1}"
        bundle = _verified(await fetcher_probe.fetch_bundle(user.name), what)
        if bundle.identity != user.identity.public:
            raise CheckFailed(f"{what} names another identity key")
        if bundle.signed_prekey != keys.signed:
            raise CheckFailed(f"{what} holds a signed prekey that was not uploaded")
        opk = bundle.one_time_prekey
        if i < 3:
            if opk is None:
                raise CheckFailed(f"{what} has no one-time X25519 prekey though "
                                  f"{3 - i} are left")
            if one_by_id.get(opk.key_id) != opk:
                raise CheckFailed(f"{what} holds a one-time prekey that was not uploaded")
            seen_one.append(opk.key_id)
        elif opk is not None:
            raise CheckFailed(f"{what} has a one-time prekey though all were handed out")
        if i < 2:
            if bundle.kem_kind != KemKind.ONE_TIME:
                raise CheckFailed(f"{what} has no one-time KEM prekey though {2 - i} are left")
            if kem_by_id.get(bundle.kem_prekey.key_id) != bundle.kem_prekey:
                raise CheckFailed(f"{what} holds a one-time KEM prekey that was not uploaded")
            seen_kem.append(bundle.kem_prekey.key_id)
        else:
            if bundle.kem_kind != KemKind.LAST_RESORT:
                raise CheckFailed(f"{what}: KEM prekey kind {bundle.kem_kind.name} after all "
                                  "one-time KEM prekeys were handed out")
            if bundle.kem_prekey != keys.last_resort:
                raise CheckFailed(f"{what} holds a last-resort KEM prekey that was not "
                                  "uploaded")
    if len(set(seen_one)) != 3 or len(set(seen_kem)) != 2:
        raise CheckFailed("a one-time prekey was handed out twice")


@check("prekeys.signed_prekeys_replaced")
async def signed_prekeys_replaced(ctx: Context) -> None:
    """A second UPLOAD_SIGNED_PREKEYS replaces the signed prekey and the last-resort
    ML-KEM prekey."""
    user, probe, _ = await _owner(ctx)
    newer = make_prekeys(user.identity)
    await probe.upload_signed(newer.signed, newer.last_resort)
    bundle = _verified(await probe.fetch_bundle(user.name), "bundle")
    if bundle.signed_prekey != newer.signed:
        raise CheckFailed("the bundle still holds the replaced signed prekey")
    if bundle.kem_kind != KemKind.LAST_RESORT or bundle.kem_prekey != newer.last_resort:
        raise CheckFailed("the bundle still holds the replaced last-resort KEM prekey")


@check("prekeys.replaced_by_id")
async def replaced_by_id(ctx: Context) -> None:
    """A one-time prekey uploaded again under an id already present replaces the old
    one: the count stays, and only the new key is handed out."""
    user, probe, keys = await _owner(ctx, one_time=3, kem=2)
    newer = make_prekeys(user.identity, one_time=3, kem=2)  # the same ids, new keys
    await probe.upload_one_time([newer.one_time[1]], [newer.kem[0]])
    if (counts := await probe.counts()) != (3, 2):
        raise CheckFailed(f"after replacing by id PREKEY_COUNTS says {counts}, not (3, 2)")
    _, fetcher = await ctx.register()
    bundles = [await fetcher.fetch_bundle(user.name) for _ in range(3)]
    one = {b.one_time_prekey for b in bundles}
    kem = {b.kem_prekey for b in bundles if b.kem_kind == KemKind.ONE_TIME}
    if one != {keys.one_time[0], newer.one_time[1], keys.one_time[2]}:
        raise CheckFailed("the one-time X25519 prekeys handed out are not the uploaded ones "
                          "with the replacement")
    if kem != {newer.kem[0], keys.kem[1]}:
        raise CheckFailed("the one-time KEM prekeys handed out are not the uploaded ones "
                          "with the replacement")


@check("prekeys.counts")
async def prekey_counts(ctx: Context) -> None:
    """PREKEY_COUNT tells the owner how many one-time prekeys of each kind are left,
    after uploads and after fetches."""
    user, probe, _ = await _owner(ctx, one_time=3, kem=2)
    expected = [(3, 2)]
    got = [await probe.counts()]
    more = make_prekeys(user.identity, one_time=2, first_id=5000)
    await probe.upload_one_time(more.one_time, [])
    expected.append((5, 2))
    got.append(await probe.counts())
    _, fetcher = await ctx.register()
    for left in ((4, 1), (3, 0), (2, 0)):
        await fetcher.fetch_bundle(user.name)
        expected.append(left)
        got.append(await probe.counts())
    if got != expected:
        raise CheckFailed(f"PREKEY_COUNTS went {got}, expected {expected}")


@check("prekeys.low_pushed")
async def low_pushed(ctx: Context) -> None:
    """When a fetch leaves fewer one-time prekeys than the announced prekey_low, the
    logged-in owner is pushed PREKEYS_LOW with the counts left (not before)."""
    low = ctx.limits.prekey_low
    if low == 0:
        raise SkipCheck("prekey_low is 0: prekeys are never low")
    if low + 1 > ctx.limits.max_prekeys:
        raise SkipCheck(f"prekey_low {low} is not below max_prekeys {ctx.limits.max_prekeys}")
    user, owner, _ = await _owner(ctx, one_time=low + 1, kem=low + 1)
    await owner.counts()
    owner.pending_pushes()  # what REGISTER pushed
    _, fetcher = await ctx.register()
    await fetcher.fetch_bundle(user.name)
    await owner.counts()
    early = [r for r in owner.pending_pushes() if isinstance(r.frame, PrekeysLow)]
    if early:
        raise CheckFailed(f"PREKEYS_LOW pushed with {low} of each kind left, which is not "
                          f"below prekey_low {low}")
    await fetcher.fetch_bundle(user.name)
    pushed, _ = await owner.wait_push(PrekeysLow, f"PREKEYS_LOW with {low - 1} of each left")
    if (pushed.one_time, pushed.kem_one_time) != (low - 1, low - 1):
        raise CheckFailed(f"PREKEYS_LOW says ({pushed.one_time}, {pushed.kem_one_time}) left, "
                          f"expected ({low - 1}, {low - 1})")


@check("prekeys.low_on_login")
async def low_on_login(ctx: Context) -> None:
    """An owner logging in with fewer one-time prekeys than prekey_low is pushed
    PREKEYS_LOW; with enough of them, it is not."""
    low = ctx.limits.prekey_low
    if low == 0:
        raise SkipCheck("prekey_low is 0: prekeys are never low")
    user, first, _ = await _owner(ctx)
    await ctx.release(first)
    probe, _, _ = await ctx.login(user)
    told = [r.frame for r in probe.skipped if isinstance(r.frame, PrekeysLow)]
    frame = told[0] if told else (await probe.wait_push(PrekeysLow, "PREKEYS_LOW at LOGIN"))[0]
    if (frame.one_time, frame.kem_one_time) != (0, 0):
        raise CheckFailed(f"PREKEYS_LOW at LOGIN says ({frame.one_time}, "
                          f"{frame.kem_one_time}) left, expected (0, 0)")
    if low > ctx.limits.max_prekeys:
        return
    enough = make_prekeys(user.identity, one_time=low, kem=low)
    await probe.upload_one_time(enough.one_time, enough.kem)
    await ctx.release(probe)
    again, _, _ = await ctx.login(user)
    await again.counts()
    if any(isinstance(r.frame, PrekeysLow) for r in again.skipped + again.pending_pushes()):
        raise CheckFailed(f"PREKEYS_LOW pushed at LOGIN with {low} of each kind left "
                          f"(prekey_low {low})")


@check("prekeys.single_use_concurrent")
async def single_use_concurrent(ctx: Context) -> None:
    """N one-time prekeys of each kind, 3N concurrent FETCH_BUNDLEs from several
    connections: each one-time prekey is handed out exactly once, the other bundles carry
    no X25519 one-time prekey and the last-resort KEM prekey."""
    n = min(20, ctx.limits.max_prekeys)
    user, owner, keys = await _owner(ctx, one_time=n, kem=n)
    fetchers = [p for _, p in await asyncio.gather(*(ctx.register() for _ in range(6)))]
    bundles = await asyncio.gather(*(fetchers[i % len(fetchers)].fetch_bundle(user.name)
                                     for i in range(3 * n)))
    one_ids: list[int] = []
    kem_ids: list[int] = []
    uploaded_one = {k.key_id: k for k in keys.one_time}
    uploaded_kem = {k.key_id: k for k in keys.kem}
    for bundle in bundles:
        _verified(bundle, "concurrently fetched bundle")
        if bundle.one_time_prekey is not None:
            if uploaded_one.get(bundle.one_time_prekey.key_id) != bundle.one_time_prekey:
                raise CheckFailed("a bundle holds a one-time prekey that was not uploaded")
            one_ids.append(bundle.one_time_prekey.key_id)
        if bundle.kem_kind == KemKind.ONE_TIME:
            if uploaded_kem.get(bundle.kem_prekey.key_id) != bundle.kem_prekey:
                raise CheckFailed("a bundle holds a one-time KEM prekey that was not uploaded")
            kem_ids.append(bundle.kem_prekey.key_id)
        elif bundle.kem_prekey != keys.last_resort:
            raise CheckFailed("a LAST_RESORT bundle holds another KEM prekey")
    for kind, ids in (("X25519", one_ids), ("ML-KEM", kem_ids)):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise CheckFailed(f"one-time {kind} prekey(s) {twice} handed out more than once")
        if len(ids) != n:
            raise CheckFailed(f"{len(ids)} of {n} one-time {kind} prekeys handed out by "
                              f"{3 * n} fetches")
    if (counts := await owner.counts()) != (0, 0):
        raise CheckFailed(f"PREKEY_COUNTS says {counts} left after all were handed out")
    last = _verified(await fetchers[0].fetch_bundle(user.name), "bundle after the run")
    if last.one_time_prekey is not None or last.kem_kind != KemKind.LAST_RESORT:
        raise CheckFailed("a bundle fetched afterwards still carries one-time prekeys")


@check("prekeys.no_prekeys")
async def no_prekeys(ctx: Context) -> None:
    """FETCH_BUNDLE for an account without signed prekeys gets NO_PREKEYS, even when it
    has one-time prekeys, and uses none of them up."""
    user, probe, keys = await _owner(ctx, one_time=2, kem=2, upload=False)
    _, fetcher = await ctx.register()
    await _no_bundle(fetcher, user, "no upload")
    await probe.upload_one_time(keys.one_time, keys.kem)
    await _no_bundle(fetcher, user, "an upload of one-time prekeys only")
    if (counts := await probe.counts()) != (2, 2):
        raise CheckFailed(f"a refused FETCH_BUNDLE used up prekeys: PREKEY_COUNTS says {counts}")


@check("prekeys.unknown_user")
async def unknown_user(ctx: Context) -> None:
    """FETCH_BUNDLE for a username nobody registered gets UNKNOWN_USER."""
    _, probe = await ctx.register()
    await probe.expect_error(FetchBundle(fresh_username()), ErrorCode.UNKNOWN_USER,
                             "FETCH_BUNDLE of an unknown user")


@check("prekeys.identity_lookup")
async def identity_lookup(ctx: Context) -> None:
    """LOOKUP_IDENTITY answers with the identity key a username registered, uses up no
    prekey, and gets UNKNOWN_USER for a name nobody registered."""
    owner, owner_probe, _ = await _owner(ctx, one_time=1, kem=1)
    _, asker = await ctx.register()
    answer = await asker.request(LookupIdentity(owner.name), Identity)
    if answer.identity != owner.identity.public:
        raise CheckFailed("LOOKUP_IDENTITY answered with a key the user did not register")
    if (counts := await owner_probe.counts()) != (1, 1):
        raise CheckFailed(f"LOOKUP_IDENTITY used up prekeys: PREKEY_COUNTS says {counts}")
    await asker.expect_error(LookupIdentity(fresh_username()), ErrorCode.UNKNOWN_USER,
                             "LOOKUP_IDENTITY of an unknown user")


LOOKUP_PROBES = 3
LOOKUPS_EACH = 150


@check("prekeys.lookup_budget")
async def lookup_budget(ctx: Context) -> None:
    """LOOKUP_IDENTITY is budgeted per account, not only per connection: one account
    asking about 450 names over three connections (150 each, within any connection's
    burst) gets RATE_LIMITED before the end, so names cannot be enumerated quickly."""
    user, first = await ctx.register()
    probes = [first] + [(await ctx.login(user))[0] for _ in range(LOOKUP_PROBES - 1)]
    for probe in probes:
        for _ in range(LOOKUPS_EACH):
            rec = await probe.roundtrip(probe.encode(LookupIdentity(fresh_username())),
                                        what="LOOKUP_IDENTITY")
            if isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.RATE_LIMITED:
                return
            if not (isinstance(rec.frame, Error) and rec.frame.code == ErrorCode.UNKNOWN_USER):
                raise CheckFailed(f"LOOKUP_IDENTITY of an unknown name got "
                                  f"{describe_answer(rec)}")
    raise CheckFailed(f"{LOOKUP_PROBES * LOOKUPS_EACH} lookups by one account over "
                      f"{LOOKUP_PROBES} connections were all answered")


@check("prekeys.too_many_kem")
async def too_many_kem(ctx: Context) -> None:
    """Uploading ML-KEM one-time prekeys beyond max_prekeys gets TOO_MANY_PREKEYS and
    stores none of that upload."""
    most = ctx.limits.max_prekeys
    if most > 2000:
        raise SkipCheck(f"max_prekeys {most}: uploading that many ML-KEM prekeys is slow")
    user, probe, _ = await _owner(ctx)
    keys = make_prekeys(user.identity, kem=most + 1)
    await probe.upload_one_time([], keys.kem[:most])
    await probe.expect_error(UploadOneTimePrekeys((), (keys.kem[most],)),
                             ErrorCode.TOO_MANY_PREKEYS, f"ML-KEM one-time prekey {most + 1}")
    if (counts := await probe.counts()) != (0, most):
        raise CheckFailed(f"after TOO_MANY_PREKEYS, PREKEY_COUNTS says {counts}, expected "
                          f"(0, {most})")
