"""Groups on a real relay (docs/PROTOCOL.md 21): a group message stored once and
delivered to every recipient its sender names, one commit admitted per (group,
epoch), KeyPackages handed out once, and nothing kept about who is in which group."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.mls import committing
from protocol.e2e.mls.framing import MLSMessage, WireFormat
from protocol.e2e.mls.group import Group
from protocol.wire import tls
from protocol.wire.frames import (
    Ack,
    Deliver,
    ErrorCode,
    FetchKeyPackage,
    GroupDeliver,
    GroupSend,
    KeyPackageAnswer,
    Ok,
    QueueDone,
    Sent,
    UploadKeyPackages,
)
from server.sqlite_store import DB_FILENAME
from tests.support import running_relay


async def _user(url: str, name: str) -> RelayConnection:
    conn = await RelayConnection.open(url)
    await conn.register(name, IdentityKeyPair.generate())
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn


async def _login(url: str, name: str, identity: IdentityKeyPair) -> RelayConnection:
    conn = await RelayConnection.open(url)
    await conn.login(name, identity)
    return conn


def _rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return list(db.execute(sql))
    finally:
        db.close()


def _group(n: int) -> tuple[Group, list[Group]]:
    """A group of n members made with our MLS engine: the creator and the others."""
    identities = [committing.Identity.generate(f"m{i}".encode()) for i in range(n)]
    creator = committing.create_group(identities[0])
    packages = [committing.new_key_package(i) for i in identities[1:]]
    pending = committing.commit(creator, adds=[p.key_package for p in packages])
    welcome = pending.welcome
    assert welcome is not None
    members = [Group.join(welcome.message, p.key_package, p.init_private,  # type: ignore[arg-type]
                          p.encryption_private, i.signature_private)
               for p, i in zip(packages, identities[1:], strict=True)]
    return pending.group, members


def committing_message(data: bytes) -> MLSMessage:
    return MLSMessage.read(tls.Reader(data))


def _mls(key_package: object) -> bytes:
    return MLSMessage(WireFormat.KEY_PACKAGE, key_package).encode()


async def _group_deliver(conn: RelayConnection) -> GroupDeliver:
    while True:  # PREKEYS_LOW and QUEUE_DONE may come first
        frame = await conn.next_push(5)
        if isinstance(frame, GroupDeliver):
            return frame
        assert not isinstance(frame, Deliver), frame


async def test_a_group_message_is_stored_once_and_reaches_every_named_recipient(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice = await _user(relay.url, "alice")
        bob = await _user(relay.url, "bob")
        carol_id = IdentityKeyPair.generate()
        carol = await RelayConnection.open(relay.url)
        await carol.register("carol", carol_id)
        assert isinstance(await carol.next_push(5), QueueDone)
        await carol.close()  # carol is offline: hers waits in the queue

        group, members = _group(3)
        message = committing.encrypt_application(group, b"hello group").encode()
        sent = await alice.request(GroupSend(("bob", "carol"), message), Sent)
        assert len(sent.envelope_ids) == 2
        assert _rows(tmp_path, "SELECT refs, length(body) FROM group_bodies") == [
            (2, len(message))]
        assert _rows(tmp_path, "SELECT length(body) FROM envelopes") == [(0,), (0,)]

        got = await _group_deliver(bob)
        assert got.body == message
        assert members[0].handle(committing_message(got.body)).content.body == b"hello group"
        await bob.request(Ack((got.envelope_id,)), Ok)
        assert _rows(tmp_path, "SELECT refs FROM group_bodies") == [(1,)]

        carol = await _login(relay.url, "carol", carol_id)
        queued = await _group_deliver(carol)
        assert queued.body == message
        await carol.request(Ack((queued.envelope_id,)), Ok)
        assert _rows(tmp_path, "SELECT * FROM group_bodies") == []
        for conn in (alice, bob, carol):
            await conn.close()


async def test_one_commit_per_epoch_wins_and_the_loser_is_told(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice = await _user(relay.url, "alice")
        bob = await _user(relay.url, "bob")
        group, members = _group(3)
        first = committing.commit(group)
        second = committing.commit(members[0])  # raced: same epoch
        await alice.request(GroupSend(("bob",), first.message.encode()), Sent)
        with pytest.raises(RelayError) as refused:
            await bob.request(GroupSend(("alice",), second.message.encode()), Sent)
        assert refused.value.code == ErrorCode.COMMIT_CONFLICT
        assert "apply it and commit again" in str(refused.value)
        # the loser applies the winner's commit and commits again, for the next epoch
        members[0].handle(first.message)
        retry = committing.commit(members[0])
        await bob.request(GroupSend(("alice",), retry.message.encode()), Sent)
        # application messages are not ordered: an old epoch's still goes through
        late = committing.encrypt_application(members[1], b"still mine").encode()
        await bob.request(GroupSend(("alice",), late), Sent)
        # what the relay keeps: the group's hash, its last commit's epoch and the time
        group_hash = hashlib.sha256(group.context.group_id).digest()
        assert _rows(tmp_path, "SELECT group_hash, epoch FROM group_epochs") == [
            (group_hash, group.epoch + 1)]
        await alice.close()
        await bob.close()


async def test_what_is_not_a_group_message_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice = await _user(relay.url, "alice")
        await _user(relay.url, "bob")
        with pytest.raises(RelayError) as refused:
            await alice.request(GroupSend(("bob",), b"\x00\x01\x00\x05" + bytes(60)), Sent)
        assert refused.value.code == ErrorCode.MALFORMED_FRAME
        await alice.close()


async def test_key_packages_are_handed_out_once_then_the_last_resort(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice = await _user(relay.url, "alice")
        bob = await _user(relay.url, "bob")
        identity = committing.Identity.generate(b"bob")
        one, two, last = (committing.new_key_package(identity).key_package for _ in range(3))
        with pytest.raises(RelayError) as none:
            await alice.request(FetchKeyPackage("bob"), KeyPackageAnswer)
        assert none.value.code == ErrorCode.NO_KEY_PACKAGES
        await bob.request(UploadKeyPackages(False, (_mls(one), _mls(two))), Ok)
        await bob.request(UploadKeyPackages(True, (_mls(last),)), Ok)
        got = {(await alice.request(FetchKeyPackage("bob"), KeyPackageAnswer)).key_package
               for _ in range(2)}
        assert got == {_mls(one), _mls(two)}
        for _ in range(2):
            answer = await alice.request(FetchKeyPackage("bob"), KeyPackageAnswer)
            assert answer.key_package == _mls(last)
        with pytest.raises(RelayError) as unknown:
            await alice.request(FetchKeyPackage("nobody"), KeyPackageAnswer)
        assert unknown.value.code == ErrorCode.UNKNOWN_USER
        await alice.close()
        await bob.close()


async def test_queued_group_messages_survive_a_restart(tmp_path: Path) -> None:
    group, members = _group(2)
    message = committing.encrypt_application(group, b"kept").encode()
    bob_id = IdentityKeyPair.generate()
    async with running_relay(tmp_path) as relay:
        alice = await _user(relay.url, "alice")
        bob = await RelayConnection.open(relay.url)
        await bob.register("bob", bob_id)
        await bob.close()
        await alice.request(GroupSend(("bob",), message), Sent)
        await alice.close()
    async with running_relay(tmp_path) as relay:
        bob = await _login(relay.url, "bob", bob_id)
        got = await _group_deliver(bob)
        assert members[0].handle(committing_message(got.body)).content.body == b"kept"
        await bob.close()
