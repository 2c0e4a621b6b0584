"""Groups (docs/PROTOCOL.md 21): GROUP_SEND delivered to exactly the recipients its
sender names, as GROUP_DELIVER; one commit admitted per (group, epoch), the others
refused with COMMIT_CONFLICT; only group messages accepted; KeyPackages handed out
once, then the last-resort one.

The relay reads a group message's header and nothing else, so the checks build MLS
PrivateMessages whose header is real (RFC 9420 section 6.3) and whose encrypted part
is random bytes."""

from __future__ import annotations

import os

from conformance.relay.probe import CheckFailed
from conformance.relay.registry import Context, check
from protocol.wire import tls
from protocol.wire.frames import (
    ErrorCode,
    FetchKeyPackage,
    GroupDeliver,
    GroupSend,
    KeyPackageAnswer,
    Ok,
    Sent,
    UploadKeyPackages,
)

APPLICATION, COMMIT = 1, 3


def private_message(group_id: bytes, epoch: int, content_type: int) -> bytes:
    """An MLSMessage carrying a PrivateMessage: a readable header, random ciphertext."""
    return (tls.u16(1) + tls.u16(2) + tls.opaque(group_id) + tls.u64(epoch)
            + tls.u8(content_type) + tls.opaque(b"") + tls.opaque(os.urandom(20))
            + tls.opaque(os.urandom(64)))


def key_package() -> bytes:
    """An MLSMessage KeyPackage as a relay sees it: version 1, wire format 5, opaque."""
    return tls.u16(1) + tls.u16(5) + os.urandom(120)


@check("groups.delivered_to_named_recipients")
async def delivered_to_named_recipients(ctx: Context) -> None:
    """A GROUP_SEND is SENT with one id per recipient and queued for each of them, and
    only them, as GROUP_DELIVER carrying the message unchanged."""
    sender, probe = await ctx.register()
    bob = await ctx.offline_user()
    carol = await ctx.offline_user()
    dave = await ctx.offline_user()
    message = private_message(os.urandom(16), 0, APPLICATION)
    sent = await probe.request(GroupSend((bob.name, carol.name), message), Sent, "GROUP_SEND")
    if len(sent.envelope_ids) != 2:
        raise CheckFailed(f"SENT lists {len(sent.envelope_ids)} ids for 2 recipients")
    await ctx.release(probe)
    for user, envelope_id in zip((bob, carol), sent.envelope_ids, strict=True):
        (got,) = await ctx.collect(user, 1)
        if not isinstance(got, GroupDeliver):
            raise CheckFailed(f"{user.name} got the group message as {type(got).__name__}, "
                              "not GROUP_DELIVER")
        if (got.envelope_id, got.body) != (envelope_id, message):
            raise CheckFailed(f"{user.name}'s GROUP_DELIVER is not the message SENT named")
    await ctx.collect(dave, 0)
    _ = sender


@check("groups.one_commit_per_epoch")
async def one_commit_per_epoch(ctx: Context) -> None:
    """The first commit for a group's epoch is admitted; a second one for the same
    epoch, or for an earlier one, is COMMIT_CONFLICT and stores nothing; a commit for
    the next epoch is admitted; application messages are not ordered."""
    _, alice = await ctx.register()
    _, bob = await ctx.register()
    rcpt = await ctx.offline_user()
    group = os.urandom(16)
    await alice.request(GroupSend((rcpt.name,), private_message(group, 4, COMMIT)), Sent,
                        "the first commit for epoch 4")
    await bob.expect_error(GroupSend((rcpt.name,), private_message(group, 4, COMMIT)),
                           ErrorCode.COMMIT_CONFLICT, "a second commit for epoch 4")
    await bob.expect_error(GroupSend((rcpt.name,), private_message(group, 3, COMMIT)),
                           ErrorCode.COMMIT_CONFLICT, "a commit for an earlier epoch")
    await bob.request(GroupSend((rcpt.name,), private_message(group, 5, COMMIT)), Sent,
                      "the first commit for epoch 5")
    await bob.request(GroupSend((rcpt.name,), private_message(group, 4, APPLICATION)), Sent,
                      "an application message of epoch 4 after its commit")
    await alice.request(GroupSend((rcpt.name,), private_message(os.urandom(16), 4, COMMIT)),
                        Sent, "a commit for epoch 4 of another group")
    await ctx.release(alice)
    await ctx.release(bob)
    await ctx.collect(rcpt, 4)


@check("groups.only_group_messages")
async def only_group_messages(ctx: Context) -> None:
    """GROUP_SEND of something that is not an MLS PublicMessage, PrivateMessage or
    Welcome is MALFORMED_FRAME, and nothing is queued."""
    _, probe = await ctx.register()
    rcpt = await ctx.offline_user()
    for what, message in (("a KeyPackage", key_package()),
                          ("random bytes", b"\x07" + os.urandom(200))):
        await probe.expect_error(GroupSend((rcpt.name,), message), ErrorCode.MALFORMED_FRAME,
                                 f"GROUP_SEND of {what}")
    await ctx.release(probe)
    await ctx.collect(rcpt, 0)


@check("groups.key_packages_single_use")
async def key_packages_single_use(ctx: Context) -> None:
    """Each one-time KeyPackage is handed out once; then the last-resort one, again and
    again; an account with neither is NO_KEY_PACKAGES."""
    owner, owner_probe = await ctx.register()
    _, fetcher = await ctx.register()
    await fetcher.expect_error(FetchKeyPackage(owner.name), ErrorCode.NO_KEY_PACKAGES,
                               "FETCH_KEY_PACKAGE before any upload")
    one_time = (key_package(), key_package())
    last = key_package()
    await owner_probe.request(UploadKeyPackages(False, one_time), Ok, "UPLOAD_KEY_PACKAGES")
    await owner_probe.request(UploadKeyPackages(True, (last,)), Ok,
                              "UPLOAD_KEY_PACKAGES (last resort)")
    got = [(await fetcher.request(FetchKeyPackage(owner.name), KeyPackageAnswer,
                                  "FETCH_KEY_PACKAGE")).key_package for _ in range(4)]
    if sorted(got[:2]) != sorted(one_time):
        raise CheckFailed("the first two fetches did not hand out the two one-time packages")
    if got[2:] != [last, last]:
        raise CheckFailed("with the one-time packages gone, fetches did not hand out the "
                          "last-resort package")
    await ctx.release(owner_probe)
    await ctx.release(fetcher)
