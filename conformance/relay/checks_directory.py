"""The key directory's frames (docs/PROTOCOL.md 19.10): signed heads, lookups that
verify, the same answer for everyone, consistency, ranges, and refusals.

Other checks register accounts while these run, so the directory may grow between
two requests: every check here accepts a bigger head and proves it extends the one
before instead of assuming the size stays put.
"""

from __future__ import annotations

import hmac

from conformance.relay.probe import CheckFailed, Probe
from conformance.relay.registry import Context, User, check, fresh_username
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import (
    ErrorCode,
    KtConsistency,
    KtConsistencyProof,
    KtEntries,
    KtEntryRange,
    KtInfo,
    KtInfoAnswer,
    KtLookup,
    KtLookupAnswer,
    url_origin,
)
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.directory import (
    LogEntry,
    RangeVerifier,
    Verified,
    verify_answer,
)
from protocol.wire.kt.merkle import EMPTY_ROOT, verify_consistency
from protocol.wire.kt.note import Verifier, parse_verifier_key

KT_ERRORS = (ProtocolError, ValueError)
"""What a proof, key or note that does not hold raises (ProofError, VrfError,
MalformedNote, NoteSignatureError, DecodeError are all ProtocolErrors)."""


class Keys:
    """The directory's announced keys, read once per check from KT_INFO."""

    def __init__(self, info: KtInfoAnswer) -> None:
        try:
            self.verifier: Verifier = parse_verifier_key(info.log_key)
        except KT_ERRORS as exc:
            raise CheckFailed(f"KT_INFO: the log key {info.log_key!r} does not parse: "
                              f"{exc}") from None
        self.vrf_public_key = info.vrf_public_key

    def head(self, note: bytes, what: str) -> Checkpoint:
        try:
            return open_checkpoint(note, self.verifier)[0]
        except KT_ERRORS as exc:
            raise CheckFailed(f"{what}: the checkpoint is not signed by the announced log "
                              f"key: {exc}") from None


async def info(probe: Probe) -> tuple[Keys, Checkpoint]:
    answer = await probe.request(KtInfo(), KtInfoAnswer, "KT_INFO")
    keys = Keys(answer)
    return keys, keys.head(answer.checkpoint, "KT_INFO")


async def lookup(probe: Probe, keys: Keys, name: str) -> Verified:
    answer = await probe.request(KtLookup(name), KtLookupAnswer, f"KT_LOOKUP {name}")
    head = keys.head(answer.checkpoint, f"KT_LOOKUP {name}")
    try:
        return verify_answer(answer.answer, name, keys.vrf_public_key, head)
    except KT_ERRORS as exc:
        raise CheckFailed(f"KT_LOOKUP {name}: the answer does not verify against its "
                          f"checkpoint: {exc}") from None


async def prove_extends(probe: Probe, old: Checkpoint, new: Checkpoint, what: str) -> None:
    """KT_CONSISTENCY from `old` to `new` must verify (nothing to prove from 0)."""
    if new.size < old.size:
        raise CheckFailed(f"{what}: the head went back from {old.size} to {new.size}")
    if old.size == 0:
        return
    proof = await probe.request(KtConsistency(old.size, new.size), KtConsistencyProof,
                                f"KT_CONSISTENCY {old.size} {new.size}")
    if not hmac.compare_digest(proof.old_root, old.root_hash):
        raise CheckFailed(f"{what}: the log's root at {old.size} is not the signed one")
    try:
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof.proof)
    except KT_ERRORS as exc:
        raise CheckFailed(f"{what}: the consistency proof from {old.size} to {new.size} "
                          f"does not verify: {exc}") from None


@check("directory.info_signed_by_announced_key")
async def info_signed_by_announced_key(ctx: Context) -> None:
    """KT_INFO (before login) answers a checkpoint signed by the log key it announces,
    named after the relay's origin (19.2)."""
    probe = await ctx.connect()
    keys, head = await info(probe)
    origin = url_origin(ctx.url)
    if keys.verifier.name != origin:
        raise CheckFailed(f"KT_INFO: the log key is named {keys.verifier.name!r}, not after "
                          f"the relay's origin {origin!r}")
    if head.origin != origin:  # pragma: no cover - open_checkpoint already requires it
        raise CheckFailed("KT_INFO: the checkpoint's origin is not the relay's")


@check("directory.lookups_verify")
async def lookups_verify(ctx: Context) -> None:
    """After two registrations, KT_LOOKUP of each verifies against its signed
    checkpoint and gives the registered identity key; an unregistered name verifies
    as absent."""
    users: list[User] = []
    for _ in range(2):
        user, probe = await ctx.register()
        users.append(user)
    keys, before = await info(probe)
    for user in users:
        got = await lookup(probe, keys, user.name)
        if got.identity != user.identity.public:
            raise CheckFailed(f"KT_LOOKUP {user.name}: the directory binds another key "
                              f"({got.binding})")
        await prove_extends(probe, before, got.checkpoint, f"KT_LOOKUP {user.name}")
    nobody = fresh_username()
    got = await lookup(probe, keys, nobody)
    if got.binding is not None:
        raise CheckFailed(f"KT_LOOKUP {nobody}: a name never registered has a binding")


@check("directory.same_answer_for_everyone")
async def same_answer_for_everyone(ctx: Context) -> None:
    """Two users on two connections asking for the same name get the same head (root
    at the same size) and the same binding."""
    target, _ = await ctx.register()
    _, first = await ctx.register()
    _, second = await ctx.register()
    keys, _ = await info(first)
    for _attempt in range(5):
        a = await lookup(first, keys, target.name)
        b = await lookup(second, keys, target.name)
        if a.checkpoint.size == b.checkpoint.size:
            break
    else:
        # the directory kept growing: then the later head must extend the earlier one
        await prove_extends(first, a.checkpoint, b.checkpoint, "two lookups")
        return
    if not hmac.compare_digest(a.checkpoint.root_hash, b.checkpoint.root_hash):
        raise CheckFailed(f"two users got different roots at size {a.checkpoint.size}")
    if (a.label, a.binding, a.index) != (b.label, b.binding, b.index):
        raise CheckFailed(f"two users got different bindings for {target.name}")


@check("directory.consistency_verifies")
async def consistency_verifies(ctx: Context) -> None:
    """KT_CONSISTENCY between a head seen before a registration and one after verifies
    (RFC 9162), and KT_CONSISTENCY of equal sizes is an empty proof."""
    await ctx.register()
    anonymous = await ctx.connect()
    _, before = await info(anonymous)
    await ctx.register()
    _, after = await info(anonymous)
    if after.size <= before.size:
        raise CheckFailed(f"the directory did not grow with a registration ({before.size} "
                          f"then {after.size})")
    await prove_extends(anonymous, before, after, "KT_CONSISTENCY")
    same = await anonymous.request(KtConsistency(after.size, after.size), KtConsistencyProof,
                                   "KT_CONSISTENCY of equal sizes")
    if same.proof or not hmac.compare_digest(same.old_root, after.root_hash):
        raise CheckFailed("KT_CONSISTENCY of equal sizes: expected the root and no hashes")


@check("directory.entries_verify")
async def entries_verify(ctx: Context) -> None:
    """KT_ENTRIES (before login) gives leaves that, from the frontier it sends, lead to
    the signed root (RangeVerifier)."""
    await ctx.register()
    anonymous = await ctx.connect()
    _, head = await info(anonymous)
    start = max(0, head.size - 5)
    if start == 0:
        start_root = EMPTY_ROOT
    else:
        proof = await anonymous.request(KtConsistency(start, head.size), KtConsistencyProof,
                                        f"KT_CONSISTENCY {start} {head.size}")
        try:
            verify_consistency(start, head.size, proof.old_root, head.root_hash, proof.proof)
        except KT_ERRORS as exc:
            raise CheckFailed(f"KT_CONSISTENCY {start} {head.size}: {exc}") from None
        start_root = proof.old_root
    rng = await anonymous.request(KtEntries(start, head.size - start), KtEntryRange,
                                  f"KT_ENTRIES {start}")
    if rng.start != start or len(rng.entries) != head.size - start:
        raise CheckFailed(f"KT_ENTRIES {start} {head.size - start}: got {len(rng.entries)} "
                          f"entries from {rng.start}")
    try:
        verifier = RangeVerifier(start, rng.frontier, start_root)
        for raw in rng.entries:
            verifier.add(LogEntry.decode(raw).leaf())
        verifier.finish(head.size, head.root_hash)
    except KT_ERRORS as exc:
        raise CheckFailed(f"KT_ENTRIES {start}: the range does not verify: {exc}") from None


@check("directory.out_of_range_refused")
async def out_of_range_refused(ctx: Context) -> None:
    """KT_CONSISTENCY from 0, backwards or past the head, and KT_ENTRIES past the head
    get KT_OUT_OF_RANGE; KT_LOOKUP before login gets NOT_AUTHENTICATED."""
    await ctx.register()
    anonymous = await ctx.connect()
    _, head = await info(anonymous)
    far = head.size + 1_000_000
    for frame in (KtConsistency(0, head.size), KtConsistency(head.size, head.size - 1),
                  KtConsistency(1, far), KtEntries(far, 1)):
        await anonymous.expect_error(frame, ErrorCode.KT_OUT_OF_RANGE, repr(frame))
    await anonymous.expect_error(KtLookup(fresh_username()), ErrorCode.NOT_AUTHENTICATED,
                                 "KT_LOOKUP before login")
    await anonymous.alive("after the refusals")
