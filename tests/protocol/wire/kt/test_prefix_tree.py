"""The directory's prefix tree (protocol.wire.kt.prefix_tree, PROTOCOL.md 19.5): roots
as the section defines them, membership and non-membership proofs that verify to the
right answer, and refusal of any damaged, truncated or borrowed proof."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire.errors import DecodeError, LocalProtocolError
from protocol.wire.kt.errors import MalformedProof, ProofError
from protocol.wire.kt.prefix_tree import (
    EMPTY,
    LookupProof,
    PrefixTree,
    label_from_vrf_output,
    verify_lookup,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(label: bytes, commitment: bytes) -> bytes:
    return h(b"\x00" + label + commitment)


def parent(left: bytes, right: bytes) -> bytes:
    return h(b"\x01" + left + right)


def bit(label: bytes, depth: int) -> int:
    return (label[depth // 8] >> (7 - depth % 8)) & 1


def naive_root(entries: dict[bytes, bytes], depth: int = 0) -> bytes:
    """Section 19.5's definition, recursively over the label set."""
    if not entries:
        return EMPTY
    if len(entries) == 1:
        ((label, commitment),) = entries.items()
        return leaf(label, commitment)
    left = {k: v for k, v in entries.items() if bit(k, depth) == 0}
    right = {k: v for k, v in entries.items() if bit(k, depth) == 1}
    return parent(naive_root(left, depth + 1), naive_root(right, depth + 1))


def tree_of(entries: dict[bytes, bytes]) -> PrefixTree:
    tree = PrefixTree()
    for label, commitment in entries.items():
        tree.insert(label, commitment)
    return tree


def label_with(prefix_bits: str, fill: int = 0) -> bytes:
    bits = (
        prefix_bits + format(fill, "b").zfill(256 - len(prefix_bits))[-(256 - len(prefix_bits)) :]
    )
    return int(bits, 2).to_bytes(32, "big")


A = bytes(32)
C1, C2 = h(b"c1"), h(b"c2")


def test_the_empty_tree() -> None:
    tree = PrefixTree()
    assert tree.root() == EMPTY == bytes(32)
    proof = tree.prove(A)
    assert proof.encode() == b"\x00\x00\x00"
    assert verify_lookup(EMPTY, A, proof.encode()) is None
    with pytest.raises(ProofError):
        verify_lookup(h(b"not empty"), A, proof.encode())


def test_one_entry_is_a_leaf_at_the_root() -> None:
    tree = PrefixTree()
    tree.insert(A, C1)
    assert tree.root() == leaf(A, C1)
    assert tree.prove(A).encode() == b"\x01" + A + C1 + b"\x00\x00"
    assert verify_lookup(tree.root(), A, tree.prove(A)) == C1
    other = b"\xff" * 32
    assert verify_lookup(tree.root(), other, tree.prove(other).encode()) is None


def test_two_entries_sharing_a_long_prefix() -> None:
    """Two labels equal on their first 200 bits: the leaves sit at depth 201, the
    proof carries one non-EMPTY sibling and 200 zero bits."""
    a = label_with("0" * 200 + "0", 5)
    b = label_with("0" * 200 + "1", 9)
    tree = tree_of({a: C1, b: C2})
    node = parent(leaf(a, C1), leaf(b, C2))
    for _ in range(200):
        node = parent(node, EMPTY)
    assert tree.root() == node == naive_root({a: C1, b: C2})
    encoded = tree.prove(a).encode()
    assert encoded == b"\x01" + a + C1 + (201).to_bytes(2, "big") + bytes(25) + b"\x80" + leaf(
        b, C2
    )
    assert verify_lookup(tree.root(), a, encoded) == C1
    assert verify_lookup(tree.root(), b, tree.prove(b).encode()) == C2
    absent = label_with("1", 3)  # parts from both at bit 0: the walk ends on EMPTY
    proof = tree.prove(absent)
    assert proof.leaf is None and len(proof.siblings) == 1
    assert verify_lookup(tree.root(), absent, proof.encode()) is None
    near = label_with("0" * 200 + "1", 10)  # ends on b's leaf
    assert verify_lookup(tree.root(), near, tree.prove(near).encode()) is None


def test_updating_a_value() -> None:
    tree = tree_of({A: C1, b"\x80" + bytes(31): C2})
    old_root, old_proof = tree.root(), tree.prove(A).encode()
    tree.insert(A, h(b"c3"))
    assert len(tree) == 2
    assert tree.get(A) == h(b"c3")
    assert tree.root() == naive_root({A: h(b"c3"), b"\x80" + bytes(31): C2}) != old_root
    assert verify_lookup(tree.root(), A, tree.prove(A).encode()) == h(b"c3")
    with pytest.raises(ProofError):  # the old proof does not pass for the new root
        verify_lookup(tree.root(), A, old_proof)


def test_bad_arguments() -> None:
    tree = PrefixTree()
    with pytest.raises(LocalProtocolError):
        tree.insert(bytes(31), C1)
    with pytest.raises(LocalProtocolError):
        tree.insert(A, bytes(31))
    with pytest.raises(ProofError):
        verify_lookup(EMPTY, bytes(31), b"\x00\x00\x00")
    with pytest.raises(ProofError):
        verify_lookup(EMPTY[:31], A, b"\x00\x00\x00")
    assert label_from_vrf_output(bytes(range(64))) == bytes(range(32))


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"\x02\x00\x00",  # unknown kind
        b"\x00\x00",  # truncated depth
        b"\x00\x00\x00\x00",  # trailing byte
        b"\x00\x01\x01\x00",  # depth 257
        b"\x00\x00\x01\x40",  # a bitmap bit past the depth
        b"\x00\x00\x01\x80" + bytes(32),  # an EMPTY sibling sent as a hash
        b"\x00\x00\x01\x80" + bytes(31) + b"\x01" + b"\x00",  # trailing after a sibling
        b"\x01" + bytes(63) + b"\x00",  # leaf cut short
    ],
)
def test_malformed_encodings(encoded: bytes) -> None:
    with pytest.raises(MalformedProof) as caught:
        LookupProof.decode(encoded)
    assert isinstance(caught.value, DecodeError) and isinstance(caught.value, ProofError)
    with pytest.raises(MalformedProof):
        verify_lookup(EMPTY, A, encoded)


labels = st.binary(min_size=32, max_size=32)
label_sets = st.lists(labels, min_size=0, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(present=label_sets, absent=st.lists(labels, max_size=10), seed=st.integers(0, 2**32))
def test_every_label_verifies_to_its_answer(
    present: list[bytes], absent: list[bytes], seed: int
) -> None:
    entries = {label: h(label + b"commitment") for label in present}
    tree = tree_of(entries)
    root = tree.root()
    assert root == naive_root(entries)
    shuffled = list(entries.items())
    random.Random(seed).shuffle(shuffled)
    assert tree_of(dict(shuffled)).root() == root  # insertion order does not matter
    for label, commitment in entries.items():
        assert verify_lookup(root, label, tree.prove(label).encode()) == commitment
    for label in absent:
        if label not in entries:
            assert verify_lookup(root, label, tree.prove(label).encode()) is None


def answer_or_refusal(root: bytes, label: bytes, encoded: bytes) -> bytes | str | None:
    try:
        return verify_lookup(root, label, encoded)
    except ProofError:
        return "refused"


@settings(max_examples=40, deadline=None)
@given(
    present=st.lists(labels, min_size=1, max_size=30, unique=True),
    absent=labels,
    data=st.data(),
)
def test_damaged_proofs_are_refused(
    present: list[bytes], absent: bytes, data: st.DataObject
) -> None:
    entries = {label: h(label) for label in present}
    tree = tree_of(entries)
    root = tree.root()
    for label in (data.draw(st.sampled_from(present)), absent):
        encoded = tree.prove(label).encode()
        i = data.draw(st.integers(0, len(encoded) - 1))
        delta = data.draw(st.integers(1, 255))
        changed = encoded[:i] + bytes([encoded[i] ^ delta]) + encoded[i + 1 :]
        with pytest.raises(ProofError):  # MalformedProof included
            verify_lookup(root, label, changed)
        cut = data.draw(st.integers(0, len(encoded) - 1))
        with pytest.raises(MalformedProof):
            verify_lookup(root, label, encoded[:cut])


@settings(max_examples=40, deadline=None)
@given(
    present=st.lists(labels, min_size=2, max_size=30, unique=True),
    others=st.lists(labels, max_size=5),
)
def test_borrowed_proofs_never_give_a_wrong_answer(
    present: list[bytes], others: list[bytes]
) -> None:
    """A proof made for one label, checked for another: between two present labels it
    is always refused; in general it is refused or gives the other label's true answer."""
    entries = {label: h(label) for label in present}
    tree = tree_of(entries)
    root = tree.root()
    a, b = present[0], present[1]
    with pytest.raises(ProofError):
        verify_lookup(root, b, tree.prove(a).encode())
    with pytest.raises(ProofError):
        verify_lookup(root, a, tree.prove(b).encode())
    pool = present[:5] + others
    for x in pool:
        for y in pool:
            got = answer_or_refusal(root, y, tree.prove(x).encode())
            assert got in ("refused", entries.get(y))


def test_proof_sizes_for_ten_thousand_labels() -> None:
    """VRF labels are uniformly random: a walk meets about log2(n) parents, so the
    proofs stay far under 2 KiB (section 19.5)."""
    rng = random.Random(10)
    entries = {rng.randbytes(32): rng.randbytes(32) for _ in range(10_000)}
    tree = tree_of(entries)
    root = tree.root()
    sizes = []
    for label in list(entries)[:500] + [rng.randbytes(32) for _ in range(500)]:
        encoded = tree.prove(label).encode()
        assert answer_or_refusal(root, label, encoded) == entries.get(label)
        sizes.append(len(encoded))
    assert max(sizes) < 2048
    assert sum(sizes) / len(sizes) < 32 * 20 + 100


def test_a_fresh_random_label_is_absent() -> None:
    tree = tree_of({os.urandom(32): C1 for _ in range(100)})
    label = os.urandom(32)
    assert tree.get(label) is None
    assert verify_lookup(tree.root(), label, tree.prove(label).encode()) is None


def test_a_leaf_off_the_labels_path_is_refused() -> None:
    """A dishonest root with a leaf for a label starting with bit 1 in the left half:
    the hashes agree, but the leaf is not on the walk of a label starting with bit 0."""
    misplaced = b"\x80" + bytes(31)
    root = parent(leaf(misplaced, C1), EMPTY)
    proof = LookupProof((misplaced, C1), (EMPTY,))
    with pytest.raises(ProofError):
        verify_lookup(root, A, proof.encode())
    with pytest.raises(ProofError):
        verify_lookup(root, misplaced, proof.encode())
