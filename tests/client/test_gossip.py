"""Gossip (PROTOCOL.md 19.8): every text carries its sender's newest directory head,
and the receiver checks, with the relay's own consistency proof, that the relay showed
both ends one directory. Real relay, real clients."""

from __future__ import annotations

import os
from pathlib import Path

from client.events import KtAlertKind
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.kt.directory import Directory
from protocol.wire.kt.evidence import verify_evidence
from protocol.wire.kt.verifier import anchor_sizes, head_code
from server.events import FrameIn
from tests.client.helpers import alerts_of, make_client, notices, shut, wait_for, wait_last
from tests.support import RunningRelay


async def test_an_honest_relay_shows_both_ends_one_history(relay: RunningRelay,
                                                           tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    seen = alerts_of(bob) + alerts_of(alice)
    await alice.send_text("bob", "hello")
    await wait_last(bob, "alice", "hello")
    await make_client(tmp_path, "carol", relay.url)  # the log grows between the two
    await bob.send_text("alice", "hi")
    await wait_last(alice, "bob", "hi")
    assert not seen and not list(tmp_path.rglob("kt-evidence-*"))
    await shut(alice, bob)


async def test_a_split_view_is_caught_with_conclusive_evidence(relay: RunningRelay,
                                                               tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hello")
    await wait_last(bob, "alice", "hello")
    # the relay shows alice a directory of its own making, signed with its log key:
    # two entries, neither of which is in the history it shows bob
    honest = relay.relay.directory
    fork = Directory(honest.signer, honest.vrf_secret)
    for name in ("alice", "mallory"):
        fork.append(name, fork.next_binding(name, IdentityKeyPair.generate().public),
                    os.urandom(16))
    state = alice.directory.state()
    assert state is not None
    state.head_note = fork.checkpoint()
    alice.directory.repo.save(state)
    seen = alerts_of(bob)
    await alice.send_text("bob", "are you there?")  # carries alice's (forked) head
    await wait_last(bob, "alice", "are you there?")
    await wait_for(lambda: bool(seen))
    (alert,) = seen
    assert alert.kind is KtAlertKind.FORK and alert.name == "alice"
    assert alert.evidence is not None and verify_evidence(alert.evidence.read_bytes()).conclusive
    assert any("split view" in n for n in notices(bob, "alice"))
    await shut(alice, bob)


async def test_both_safety_number_screens_show_the_same_directory_codes(
        relay: RunningRelay, tmp_path: Path) -> None:
    """The safety-number screen and QR include the directory (19.8): both people see
    the same codes for the same sizes, proven consistent with their heads."""
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hello")
    await wait_last(bob, "alice", "hello")
    await bob.send_text("alice", "hi")
    await wait_last(alice, "bob", "hi")
    codes = alice.directory.anchors()
    assert codes and codes == bob.directory.anchors()
    size = max(relay.relay.directory.size.bit_length() - 1, 0)
    assert codes[0].startswith(f"first {1 << size}: ")
    (_, a_payload), (_, b_payload) = alice.safety_number("bob"), bob.safety_number("alice")
    assert a_payload == b_payload and f":KT{1 << size}:" in a_payload
    await shut(alice, bob)


def test_anchor_sizes_overlap_within_a_factor_of_two() -> None:
    assert anchor_sizes(0) == () and anchor_sizes(1) == (1,)
    assert anchor_sizes(5) == (4, 2) and anchor_sizes(8) == (8, 4)
    for small in range(1, 300):
        for large in range(small, 2 * small + 1):
            assert set(anchor_sizes(small)) & set(anchor_sizes(large))
    assert head_code(64, bytes(range(32))) == "first 64: 0001 0203 0405 0607"


async def test_a_contacts_head_is_checked_once_not_per_message(relay: RunningRelay,
                                                              tmp_path: Path) -> None:
    """Gossip costs the receiver a relay round trip per distinct head, not per message:
    a drain of many texts carrying one head asks KT_CONSISTENCY once."""
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "first")
    # her capability and the text, handled (their gossip checked once they committed)
    await wait_for(lambda: bob.link.handled >= 2)
    carol = await make_client(tmp_path, "carol", relay.url)
    assert bob.conn is not None
    await bob.directory.start(bob.conn)  # bob's head is now newer than alice's
    asked: list[str] = []

    def seen(event: object) -> None:
        if isinstance(event, FrameIn) and event.frame_type == "KtConsistency" \
                and event.user == "bob":
            asked.append(event.frame_type)

    relay.relay.observers.append(seen)
    for i in range(5):
        await alice.send_text("bob", f"more {i}")
    await wait_last(bob, "alice", "more 4")
    assert asked == []  # alice's head was checked with her first message
    await shut(alice, bob, carol)
