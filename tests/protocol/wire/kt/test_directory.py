"""The directory (PROTOCOL.md 19.6-19.8): entries, lookups, ranges, the auditor's replay,
the client's head tracking, and evidence files."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire.errors import DecodeError, LocalProtocolError, ProtocolError
from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.directory import (
    Binding,
    Directory,
    EntryKind,
    LogEntry,
    LookupAnswer,
    RangeVerifier,
    audit_entries,
    change_statement,
    check_succession,
    verify_answer,
)
from protocol.wire.kt.errors import ProofError, VrfError
from protocol.wire.kt.evidence import binding_evidence, entry_evidence, verify_evidence
from protocol.wire.kt.note import Signer
from protocol.wire.kt.verifier import (
    DirectoryKeys,
    Fork,
    Rollback,
    advance,
    check_gossip,
    open_head,
)

ORIGIN = "relay.example:8765"


def key() -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.generate()
    return private, private.public_key().public_bytes_raw()


def directory(names: int = 0) -> Directory:
    d = Directory(Signer.generate(ORIGIN), os.urandom(32))
    for i in range(names):
        d.append(f"user{i}", d.next_binding(f"user{i}", key()[1]), os.urandom(16))
    return d


def keys_of(d: Directory) -> DirectoryKeys:
    return DirectoryKeys(ORIGIN, d.signer.verifier.encode(), d.vrf_public_key)


def head(d: Directory):  # type: ignore[no-untyped-def]
    return open_checkpoint(d.checkpoint(), d.signer.verifier)[0]


def test_a_lookup_proves_the_latest_binding_and_absence() -> None:
    d = directory(30)
    _, alice = key()
    d.append("alice", d.next_binding("alice", alice), os.urandom(16))
    found = verify_answer(d.lookup("alice").encode(), "alice", d.vrf_public_key, head(d))
    assert found.identity == alice and found.binding is not None
    assert found.binding.kind is EntryKind.REGISTER and found.index == 30
    absent = verify_answer(d.lookup("mallory").encode(), "mallory", d.vrf_public_key, head(d))
    assert absent.binding is None


def test_delete_then_register_again_is_a_visible_reset() -> None:
    d = directory(3)
    d.append("user1", d.next_binding("user1", None), os.urandom(16))
    gone = verify_answer(d.lookup("user1").encode(), "user1", d.vrf_public_key, head(d))
    assert gone.binding is not None and gone.binding.kind is EntryKind.DELETE
    assert gone.identity is None
    _, new = key()
    d.append("user1", d.next_binding("user1", new), os.urandom(16))
    back = verify_answer(d.lookup("user1").encode(), "user1", d.vrf_public_key, head(d))
    assert back.binding == Binding(EntryKind.RESET, 2, new)


def test_a_change_must_be_signed_by_the_previous_key() -> None:
    d = directory()
    old_private, old = key()
    d.append("alice", Binding(EntryKind.REGISTER, 0, old), os.urandom(16))
    _, new = key()
    forged = Binding(EntryKind.CHANGE, 1, new, bytes(64))
    with pytest.raises(LocalProtocolError):
        d.append("alice", forged, os.urandom(16))
    signed = Binding(EntryKind.CHANGE, 1, new,
                     old_private.sign(change_statement("alice", 1, new)))
    d.append("alice", signed, os.urandom(16))
    assert verify_answer(d.lookup("alice").encode(), "alice", d.vrf_public_key,
                         head(d)).binding == signed
    with pytest.raises(ProofError):  # versions count up by one
        check_succession("alice", signed, Binding(EntryKind.RESET, 5, old))


def test_an_answer_for_another_name_or_an_old_head_is_refused() -> None:
    d = directory(10)
    answer = d.lookup("user3").encode()
    with pytest.raises(VrfError):
        verify_answer(answer, "user4", d.vrf_public_key, head(d))
    old = head(d)
    d.append("user99", d.next_binding("user99", key()[1]), os.urandom(16))
    with pytest.raises(ProofError):
        verify_answer(d.lookup("user3").encode(), "user3", d.vrf_public_key, old)


def test_an_unlogged_key_cannot_be_shown() -> None:
    """The relay cannot reveal a value the tree does not commit to."""
    d = directory(10)
    answer = LookupAnswer.decode(d.lookup("user3").encode(), d.size)
    assert answer.found is not None
    forged_value = Binding(EntryKind.REGISTER, 0, key()[1]).encode()
    forged = dataclasses.replace(answer, found=dataclasses.replace(answer.found,
                                                                    value=forged_value))
    with pytest.raises(ProofError):
        verify_answer(forged.encode(), "user3", d.vrf_public_key, head(d))
    hidden = dataclasses.replace(answer, found=None)  # "not registered" is refused too
    with pytest.raises(ProofError):
        verify_answer(hidden.encode(), "user3", d.vrf_public_key, head(d))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 255))
def test_any_damaged_answer_is_refused(names: int, which: int, flip: int) -> None:
    d = directory(max(names, 1))
    name = f"user{which % max(names, 1)}"
    data = bytearray(d.lookup(name).encode())
    data[flip % len(data)] ^= 1 + (flip >> 3) % 255
    with pytest.raises((ProofError, VrfError, DecodeError)):
        verify_answer(bytes(data), name, d.vrf_public_key, head(d))


def test_ranges_and_the_auditors_replay() -> None:
    d = directory(50)
    old_size, old_root = 17, d.log.root(17)
    check = RangeVerifier(old_size, d.frontier(old_size), old_root)
    for entry in d.entries[old_size:]:
        check.add(entry.leaf())
    check.finish(d.size, head(d).root_hash)
    audit_entries(d.entries)
    forged = list(d.entries)
    forged[20] = LogEntry(forged[20].label, bytes(32), forged[20].prefix_root)
    with pytest.raises(ProofError):
        audit_entries(forged)
    tampered = RangeVerifier(old_size, d.frontier(old_size), old_root)
    for entry in forged[old_size:]:
        tampered.add(entry.leaf())
    with pytest.raises(ProofError):
        tampered.finish(d.size, head(d).root_hash)
    with pytest.raises(ProofError):
        RangeVerifier(old_size, d.frontier(old_size), d.log.root(16))


def test_a_client_accepts_only_a_consistent_newer_head() -> None:
    d = directory(5)
    keys = keys_of(d)
    first = open_head(keys, d.checkpoint())
    for i in range(5, 9):
        d.append(f"user{i}", d.next_binding(f"user{i}", key()[1]), os.urandom(16))
    newer = advance(keys, first, d.checkpoint(), d.log.root(first.size),
                    d.consistency(first.size, d.size))
    assert newer.size == 9
    with pytest.raises(Rollback):
        advance(keys, newer, first.note)
    assert advance(keys, newer, d.checkpoint()) == newer


def test_a_fork_leaves_evidence_anyone_can_check() -> None:
    honest = directory(5)
    keys = keys_of(honest)
    seen = open_head(keys, honest.checkpoint())
    fork = Directory(honest.signer, honest.vrf_secret)  # same keys, another history
    for i in range(7):
        fork.append(f"other{i}", fork.next_binding(f"other{i}", key()[1]), os.urandom(16))
    with pytest.raises(Fork) as caught:
        advance(keys, seen, fork.checkpoint(), fork.log.root(seen.size),
                fork.consistency(seen.size, fork.size))
    finding = verify_evidence(caught.value.evidence.to_json())
    assert finding.conclusive and finding.kind == "fork"
    with pytest.raises(ProofError):  # a lie about the proof is not evidence
        advance(keys, seen, fork.checkpoint(), honest.log.root(seen.size),
                fork.consistency(seen.size, fork.size))


def test_binding_evidence_separates_proof_from_testimony() -> None:
    d = directory(4)
    _, served = key()
    evidence = binding_evidence(d.signer.verifier.encode(), d.vrf_public_key,
                                d.checkpoint(), "user2", d.lookup("user2").encode(),
                                "the relay served another key in a bundle", served)
    finding = verify_evidence(evidence.to_json())
    assert not finding.conclusive
    assert "user2" in finding.proven[0] and served.hex() in finding.testimony[1]
    honest = binding_evidence(d.signer.verifier.encode(), d.vrf_public_key, d.checkpoint(),
                              "user2", d.lookup("user2").encode(), "x",
                              d.current("user2").identity)  # type: ignore[union-attr]
    with pytest.raises(ProofError):
        verify_evidence(honest.to_json())
    with pytest.raises(DecodeError):
        verify_evidence("{}")


def test_gossip_agrees_on_one_history_and_catches_a_split_view() -> None:
    honest = directory(6)
    keys = keys_of(honest)
    peer_note = honest.checkpoint()  # what a contact saw, then the log grew
    for i in range(6, 11):
        honest.append(f"user{i}", honest.next_binding(f"user{i}", key()[1]), os.urandom(16))
    mine = open_head(keys, honest.checkpoint())
    assert check_gossip(keys, mine, peer_note, honest.log.root(6),
                        honest.consistency(6, mine.size)).size == 6
    assert check_gossip(keys, mine, mine.note).size == mine.size
    # the relay showed the contact a fork of 6 entries; our view has 11
    fork = Directory(honest.signer, honest.vrf_secret)
    for i in range(6):
        fork.append(f"other{i}", fork.next_binding(f"other{i}", key()[1]), os.urandom(16))
    with pytest.raises(Fork) as caught:
        check_gossip(keys, mine, fork.checkpoint(), honest.log.root(6),
                     honest.consistency(6, mine.size))
    assert verify_evidence(caught.value.evidence.to_json()).conclusive
    with pytest.raises(LocalProtocolError):  # our own head must catch up first
        check_gossip(keys, open_head(keys, peer_note), mine.note)


def test_replaying_stored_updates_rebuilds_the_same_directory() -> None:
    d = directory(12)
    d.append("user4", d.next_binding("user4", None), os.urandom(16))
    again = Directory(d.signer, d.vrf_secret)
    for entry, update in zip(d.entries, d.updates, strict=True):
        again.replay(update.username, update.binding.encode(), update.opening, entry.label)
    assert again.log.root() == d.log.root() and again.entries == d.entries
    assert verify_answer(again.lookup("user4").encode(), "user4", again.vrf_public_key,
                         head(again)).binding == d.current("user4")
    with pytest.raises(LocalProtocolError):  # a stored update out of order is refused
        again.replay("user4", Binding(EntryKind.REGISTER, 0, key()[1]).encode(),
                     os.urandom(16))


def test_entry_evidence_proves_one_update_of_a_name() -> None:
    d = directory(6)
    _, mallory = key()
    d.append("user2", d.next_binding("user2", mallory), os.urandom(16))
    index = d.size - 1
    update = d.updates[index]

    def evidence(name: str = "user2", at: int = index, reveal: bool = True) -> str:
        return entry_evidence(
            d.signer.verifier.encode(), d.vrf_public_key, d.checkpoint(), name,
            d.label(name)[1], at, d.entries[at].encode(), d.log.inclusion_proof(at),
            update.opening if reveal else None,
            update.binding.encode() if reveal else None, "not mine").to_json()

    finding = verify_evidence(evidence())
    assert finding.kind == "entry" and not finding.conclusive
    assert any(mallory.hex() in line for line in finding.proven)
    assert any("RESET" in line for line in finding.proven)
    hidden = verify_evidence(evidence(reveal=False))
    assert "did not reveal" in hidden.testimony[-1]
    with pytest.raises(ProofError):  # another name's update is not this name's
        verify_evidence(evidence(name="user3"))
    with pytest.raises(ProofError):  # the inclusion proof is for another leaf
        verify_evidence(evidence(at=index - 1).replace(
            f'"index": {index - 1}', f'"index": {index}'))


@pytest.mark.parametrize("field,value", [
    ("username", "é"), ("username", "x" * 300), ("username", "Bob"),
    ("served_identity", "AAAA"), ("log_key", "garbage"), ("checkpoints", ["!!"])])
def test_a_hostile_evidence_file_gets_a_clear_refusal(field: str, value: object) -> None:
    """`kt verify-evidence` reads files anyone can write: every bad field is a
    ProtocolError (printed as "does NOT verify"), never a crash."""
    d = directory(3)
    good = json.loads(binding_evidence(
        d.signer.verifier.encode(), d.vrf_public_key, d.checkpoint(), "user1",
        d.lookup("user1").encode(), "x", key()[1]).to_json())
    with pytest.raises(ProtocolError):
        verify_evidence(json.dumps({**good, field: value}))
