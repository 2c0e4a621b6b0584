"""Properties of the Merkle log: generated proofs verify, any damage is rejected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from protocol.wire.kt.errors import ProofError
from protocol.wire.kt.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    decode_proof,
    encode_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def naive_mth(entries: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 written as the RFC writes it, to check the cached tree against."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1 << ((len(entries) - 1).bit_length() - 1)
    left, right = naive_mth(entries[:k]), naive_mth(entries[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_of(n: int) -> tuple[MerkleTree, list[bytes]]:
    tree = MerkleTree()
    entries = [b"entry %d" % i for i in range(n)]
    for e in entries:
        tree.append(e)
    return tree, entries


TREE, ENTRIES = tree_of(70)

sizes = st.integers(min_value=1, max_value=70)


def test_roots_of_every_size_match_the_rfc_definition() -> None:
    assert TREE.root(0) == EMPTY_ROOT
    for n in range(71):
        assert TREE.root(n) == naive_mth(ENTRIES[:n])


def test_the_rfc_6962_known_root() -> None:
    """The 8-leaf tree of RFC 6962's test data has this well-known root."""
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        bytes(range(0x60, 0x70)),
    ]
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf)
    want = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert tree.root().hex() == want


@settings(max_examples=200)
@given(data=st.data())
def test_inclusion_proofs_verify_and_damage_is_rejected(data: st.DataObject) -> None:
    n = data.draw(sizes)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = TREE.inclusion_proof(i, n)
    root = TREE.root(n)
    leaf = leaf_hash(ENTRIES[i])
    verify_inclusion(leaf, i, n, proof, root)
    assert len(proof) <= (n - 1).bit_length()

    if proof:
        at = data.draw(st.integers(min_value=0, max_value=32 * len(proof) - 1))
        flip = data.draw(st.integers(min_value=1, max_value=255))
        raw = bytearray(encode_proof(proof))
        raw[at] ^= flip
        with pytest.raises(ProofError):
            verify_inclusion(leaf, i, n, decode_proof(bytes(raw)), root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, i, n, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, [*proof, root], root)
    other = data.draw(st.integers(min_value=0, max_value=n))
    if other != i and other < n:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, n, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"not an entry"), i, n, proof, root)


@settings(max_examples=200)
@given(data=st.data())
def test_consistency_proofs_verify_and_damage_is_rejected(data: st.DataObject) -> None:
    n = data.draw(sizes)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = TREE.consistency_proof(m, n)
    root1, root2 = TREE.root(m), TREE.root(n)
    verify_consistency(m, n, root1, root2, proof)
    if m == n:
        assert proof == []
        return
    at = data.draw(st.integers(min_value=0, max_value=32 * len(proof) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    raw = bytearray(encode_proof(proof))
    raw[at] ^= flip
    with pytest.raises(ProofError):
        verify_consistency(m, n, root1, root2, decode_proof(bytes(raw)))
    with pytest.raises(ProofError):
        verify_consistency(m, n, root1, root2, proof[:-1])
    with pytest.raises(ProofError):
        verify_consistency(m, n, root1, root2, proof[1:])
    with pytest.raises(ProofError):
        verify_consistency(m, n, root2, root1, proof)
    with pytest.raises(ProofError):
        verify_consistency(m, n, root1, TREE.root(n - 1), proof)


@settings(max_examples=50)
@given(data=st.data())
def test_a_proof_from_a_forked_log_is_rejected(data: st.DataObject) -> None:
    """A relay that rewrote one old entry cannot prove its new head extends the old."""
    m = data.draw(st.integers(min_value=1, max_value=30))
    n = data.draw(st.integers(min_value=m + 1, max_value=40))
    changed = data.draw(st.integers(min_value=0, max_value=m - 1))
    forked = MerkleTree()
    for i, e in enumerate(ENTRIES[:n]):
        forked.append(b"forged" if i == changed else e)
    with pytest.raises(ProofError):
        verify_consistency(m, n, TREE.root(m), forked.root(n), forked.consistency_proof(m, n))


def test_truncated_wire_proofs_do_not_decode() -> None:
    raw = encode_proof(TREE.inclusion_proof(5, 70))
    with pytest.raises(DecodeError):
        decode_proof(raw[:-1])
    with pytest.raises(DecodeError):
        decode_proof(bytes(32 * 129))
    assert decode_proof(b"") == []


def test_misuse_is_local_and_bad_proofs_are_remote() -> None:
    with pytest.raises(LocalProtocolError):
        TREE.inclusion_proof(70, 70)
    with pytest.raises(LocalProtocolError):
        TREE.inclusion_proof(0, 71)
    with pytest.raises(LocalProtocolError):
        TREE.consistency_proof(0, 5)
    with pytest.raises(LocalProtocolError):
        TREE.consistency_proof(6, 5)
    with pytest.raises(LocalProtocolError):
        TREE.leaf_hash_at(-1)
    with pytest.raises(LocalProtocolError):
        MerkleTree().append_leaf_hash(b"short")
    assert issubclass(ProofError, RemoteProtocolError)
    assert TREE.leaf_hash_at(3) == leaf_hash(ENTRIES[3])


def test_a_large_tree_answers_in_logarithmic_proofs() -> None:
    tree = MerkleTree()
    for i in range(5000):
        tree.append_leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest())
    root = tree.root()
    proof = tree.inclusion_proof(4321)
    verify_inclusion(tree.leaf_hash_at(4321), 4321, 5000, proof, root)
    assert len(proof) <= 13
    consistency = tree.consistency_proof(3333)
    verify_consistency(3333, 5000, tree.root(3333), root, consistency)
    assert len(consistency) <= 14
