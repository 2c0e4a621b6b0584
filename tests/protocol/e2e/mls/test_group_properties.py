"""Groups made with our committing side and followed by our receiving side: whatever
sequence of adds, removes, self-updates, proposals by reference and messages, every
member agrees on the epoch, tree and epoch authenticator, every member reads every
application message, and a removed member reads nothing sent after its removal
(RFC 9420 sections 12-16)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.e2e.mls import committing
from protocol.e2e.mls.framing import MLSMessage
from protocol.e2e.mls.group import Group, GroupError
from protocol.e2e.mls.welcome import Welcome
from protocol.wire.errors import RemoteProtocolError


class World:
    def __init__(self) -> None:
        self.identities = {"m0": committing.Identity.generate(b"m0")}
        self.groups: dict[str, Group] = {"m0": committing.create_group(self.identities["m0"])}
        self.removed: dict[str, Group] = {}
        self.count = 1

    def names(self) -> list[str]:
        return sorted(self.groups)

    def deliver(self, sender: str, message: MLSMessage) -> None:
        for name, group in self.groups.items():
            if name != sender:
                group.handle(message)

    def adopt(self, name: str, pending: committing.PendingCommit) -> None:
        self.deliver(name, pending.message)
        self.groups[name] = pending.group

    def add(self, pick: int) -> None:
        name = f"m{self.count}"
        self.count += 1
        identity = committing.Identity.generate(name.encode())
        kp = committing.new_key_package(identity)
        committer = self.names()[pick % len(self.groups)]
        pending = committing.commit(self.groups[committer], adds=[kp.key_package])
        self.adopt(committer, pending)
        assert pending.welcome is not None and isinstance(pending.welcome.message, Welcome)
        self.groups[name] = Group.join(pending.welcome.message, kp.key_package,
                                       kp.init_private, kp.encryption_private,
                                       identity.signature_private)
        self.identities[name] = identity

    def remove(self, pick: int) -> None:
        if len(self.groups) < 2:
            return
        names = self.names()
        victim = names[pick % len(names)]
        committer = next(n for n in names if n != victim)
        leaf = self.groups[victim].own_leaf
        pending = committing.commit(self.groups[committer], removes=[leaf])
        self.deliver(committer, pending.message)  # the victim processes it too
        self.groups[committer] = pending.group
        assert self.groups[victim].removed
        self.removed[victim] = self.groups.pop(victim)

    def update(self, pick: int) -> None:
        name = self.names()[pick % len(self.groups)]
        self.adopt(name, committing.commit(self.groups[name]))

    def leave_by_proposal(self, pick: int) -> None:
        if len(self.groups) < 2:
            return
        names = self.names()
        leaver = names[pick % len(names)]
        self.deliver(leaver, committing.leave(self.groups[leaver]))
        committer = next(n for n in names if n != leaver)
        pending = committing.commit(self.groups[committer])
        self.deliver(committer, pending.message)
        self.groups[committer] = pending.group
        assert self.groups[leaver].removed
        self.removed[leaver] = self.groups.pop(leaver)

    def message(self, pick: int) -> None:
        names = self.names()
        sender = names[pick % len(names)]
        text = f"hello from {sender} #{pick}".encode()
        message = committing.encrypt_application(self.groups[sender], text)
        for name in names:
            if name != sender:
                assert self.groups[name].handle(message).content.body == text
        for group in self.removed.values():
            with pytest.raises((GroupError, RemoteProtocolError)):
                group.handle(message)

    def check(self) -> None:
        groups = list(self.groups.values())
        first = groups[0]
        for group in groups[1:]:
            assert group.epoch == first.epoch
            assert group.epoch_authenticator == first.epoch_authenticator
            assert group.tree.tree_hash() == first.tree.tree_hash()
            assert group.tree.encode() == first.tree.encode()


OPS = ["add", "add", "remove", "update", "leave_by_proposal", "message", "message"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1000)), min_size=1,
                max_size=14))
def test_members_agree_whatever_happens(ops: list[tuple[str, int]]) -> None:
    world = World()
    for op, pick in ops:
        getattr(world, op)(pick)
        world.check()
    world.message(0)


def test_a_commit_for_the_wrong_epoch_is_refused_and_changes_nothing() -> None:
    world = World()
    world.add(0)
    world.add(0)
    stale = committing.commit(world.groups["m1"])  # made at the current epoch
    world.update(0)  # m0 moves the group on first
    before = world.groups["m2"].epoch_authenticator
    with pytest.raises(GroupError):
        world.groups["m2"].handle(stale.message)
    assert world.groups["m2"].epoch_authenticator == before


def test_a_member_cannot_commit_its_own_removal() -> None:
    world = World()
    world.add(0)
    with pytest.raises(GroupError):
        committing.commit(world.groups["m0"], removes=[world.groups["m0"].own_leaf])


def test_a_stored_and_restored_state_carries_on_exactly() -> None:
    """The client's store keeps the group as bytes (protocol/e2e/mls/state.py): a
    member restored from them reads the next messages and follows the next commits,
    and late messages whose keys were skipped still open after the restore."""
    from protocol.e2e.mls import state

    world = World()
    world.add(0)
    world.add(0)
    early = committing.encrypt_application(world.groups["m1"], b"late")
    later = committing.encrypt_application(world.groups["m1"], b"first")
    assert world.groups["m2"].handle(later).content.body == b"first"
    for name in list(world.groups):
        data = state.serialize(world.groups[name])
        world.groups[name] = state.deserialize(data)
        assert state.serialize(world.groups[name]) == data
    assert world.groups["m2"].handle(early).content.body == b"late"
    world.update(1)
    world.message(2)
    world.check()
