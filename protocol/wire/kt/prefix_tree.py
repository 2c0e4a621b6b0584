"""The key directory's prefix tree: a sparse binary Merkle trie over 32-byte labels
(docs/PROTOCOL.md section 19.5).

Why: the directory maps labels (the first 32 bytes of VRF(username), section 19.3) to
commitments (section 19.4), so the tree lists neither names nor values; and it must
prove, in O(log n) hashes, both what a label maps to and that a label maps to nothing.

Shape: the node at depth d on a path holds every label starting with that path's d
bits. It is EMPTY if there is none, a leaf if there is exactly one (a leaf sits as
high as it can), and a parent of its two depth d+1 children otherwise, even when one
child is EMPTY. So every label has one path and a node's position is implied by the
walk: hashes do not carry depths, yet a tree cannot show one label two answers.

    EMPTY  = 32 zero bytes
    leaf   = SHA-256(0x00 || label || commitment)
    parent = SHA-256(0x01 || left || right)

A lookup proof is the node where the label's walk ends (a leaf or EMPTY) and the
sibling hashes along the walk; EMPTY siblings are sent as one bit each, so a proof
costs 32 bytes per branching node only (about log2 n of them for VRF labels).

`PrefixTree` keeps the trie in memory with each node's hash cached; inserting only
forgets the hashes along one path, and `root()` rehashes just those.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from protocol.wire.codec import Reader, u8, u16
from protocol.wire.errors import DecodeError, LocalProtocolError
from protocol.wire.kt.errors import MalformedProof, ProofError

LABEL_LEN = 32
COMMITMENT_LEN = 32
HASH_LEN = 32
LABEL_BITS = 8 * LABEL_LEN
EMPTY = bytes(HASH_LEN)
"""The hash of an empty subtree (and the root of the empty tree)."""
LEAF_PREFIX = b"\x00"
PARENT_PREFIX = b"\x01"

KIND_EMPTY = 0
KIND_LEAF = 1

_sha256 = hashlib.sha256


def leaf_hash(label: bytes, commitment: bytes) -> bytes:
    """SHA-256(0x00 || label || commitment)."""
    return _sha256(LEAF_PREFIX + label + commitment).digest()


def parent_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(PARENT_PREFIX + left + right).digest()


def label_from_vrf_output(beta: bytes) -> bytes:
    """A label is the first 32 bytes of the 64-byte VRF output (section 19.3)."""
    if len(beta) != 64:
        raise LocalProtocolError("a VRF output is 64 bytes")
    return beta[:LABEL_LEN]


def _bit(label: int, depth: int) -> int:
    """Bit `depth` of the label, the most significant bit of its first byte being 0."""
    return (label >> (LABEL_BITS - 1 - depth)) & 1


class _Leaf:
    __slots__ = ("commitment", "hash", "key", "label")

    def __init__(self, label: bytes, key: int, commitment: bytes) -> None:
        self.label = label
        self.key = key
        self.commitment = commitment
        self.hash: bytes | None = None


class _Parent:
    __slots__ = ("children", "hash")

    def __init__(self) -> None:
        self.children: list[_Node] = [None, None]
        self.hash: bytes | None = None


_Node = _Leaf | _Parent | None


def _node_hash(node: _Node) -> bytes:
    if node is None:
        return EMPTY
    if node.hash is None:
        if isinstance(node, _Leaf):
            node.hash = leaf_hash(node.label, node.commitment)
        else:
            node.hash = parent_hash(_node_hash(node.children[0]), _node_hash(node.children[1]))
    return node.hash


@dataclass(frozen=True)
class LookupProof:
    """Where a label's walk ends, and the siblings met on the way (root first).

    `leaf` is (label, commitment) of the leaf the walk ends on, or None if it ends
    on an EMPTY node; `siblings[d]` is the sibling hash at depth d, EMPTY included;
    the walk ends at depth len(siblings)."""

    leaf: tuple[bytes, bytes] | None
    siblings: tuple[bytes, ...]

    def encode(self) -> bytes:
        """kind (1) || [label (32) || commitment (32)] || depth (2) || bitmap
        (ceil(depth / 8)) || the non-EMPTY siblings (32 each), root first."""
        depth = len(self.siblings)
        bitmap = bytearray((depth + 7) // 8)
        present: list[bytes] = []
        for d, sibling in enumerate(self.siblings):
            if sibling != EMPTY:
                bitmap[d >> 3] |= 0x80 >> (d & 7)
                present.append(sibling)
        head = u8(KIND_EMPTY)
        if self.leaf is not None:
            head = u8(KIND_LEAF) + self.leaf[0] + self.leaf[1]
        return head + u16(depth) + bytes(bitmap) + b"".join(present)

    @classmethod
    def decode(cls, data: bytes) -> LookupProof:
        """Strict inverse of `encode`: any other byte string is MalformedProof."""
        try:
            return cls._decode(Reader(data))
        except MalformedProof:
            raise
        except DecodeError as e:
            raise MalformedProof(f"lookup proof: {e}") from None

    @classmethod
    def _decode(cls, r: Reader) -> LookupProof:
        kind = r.u8()
        leaf: tuple[bytes, bytes] | None
        if kind == KIND_EMPTY:
            leaf = None
        elif kind == KIND_LEAF:
            leaf = (r.take(LABEL_LEN), r.take(COMMITMENT_LEN))
        else:
            raise MalformedProof(f"unknown lookup proof kind {kind}")
        depth = r.u16()
        if depth > LABEL_BITS:
            raise MalformedProof("a walk is at most 256 levels deep")
        bitmap = r.take((depth + 7) // 8)
        if depth % 8 and bitmap[-1] & (0xFF >> (depth % 8)):
            raise MalformedProof("bitmap bits past the depth are set")
        siblings: list[bytes] = []
        for d in range(depth):
            if bitmap[d >> 3] & (0x80 >> (d & 7)):
                sibling = r.take(HASH_LEN)
                if sibling == EMPTY:
                    raise MalformedProof("an EMPTY sibling must be sent as a zero bit")
                siblings.append(sibling)
            else:
                siblings.append(EMPTY)
        r.finish()
        return cls(leaf, tuple(siblings))


def verify_lookup(root: bytes, label: bytes, proof: LookupProof | bytes) -> bytes | None:
    """The commitment `label` maps to in the tree `root`, or None if it is absent.

    Steps (section 19.5): decode the proof; if it ends on a leaf, the leaf's label must
    agree with `label` on the first `depth` bits (the leaf lies on the label's walk);
    hash the end node, then for d = depth-1 down to 0 combine it with siblings[d] on
    the side given by bit d of `label`; the result must equal `root`. Then the answer
    is the leaf's commitment if its label is `label`, else None. Raises ProofError
    (MalformedProof for bad bytes) unless every step holds."""
    if len(root) != HASH_LEN:
        raise ProofError("a prefix tree root is 32 bytes")
    if len(label) != LABEL_LEN:
        raise ProofError("a label is 32 bytes")
    if isinstance(proof, bytes):
        proof = LookupProof.decode(proof)
    depth = len(proof.siblings)
    if depth > LABEL_BITS or any(len(s) != HASH_LEN for s in proof.siblings):
        raise ProofError("the proof's siblings do not fit a tree of 32-byte labels")
    key = int.from_bytes(label, "big")
    if proof.leaf is None:
        node = EMPTY
    else:
        leaf_label, commitment = proof.leaf
        if len(leaf_label) != LABEL_LEN or len(commitment) != COMMITMENT_LEN:
            raise ProofError("a leaf holds a 32-byte label and a 32-byte commitment")
        shift = LABEL_BITS - depth
        if int.from_bytes(leaf_label, "big") >> shift != key >> shift:
            raise ProofError("the proof's leaf is not on the label's path")
        node = leaf_hash(leaf_label, commitment)
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        node = parent_hash(sibling, node) if _bit(key, d) else parent_hash(node, sibling)
    if not hmac.compare_digest(node, root):
        raise ProofError("the lookup proof does not lead to the root")
    if proof.leaf is not None and proof.leaf[0] == label:
        return proof.leaf[1]
    return None


class PrefixTree:
    """The directory's label -> commitment map, with root hashes and lookup proofs."""

    def __init__(self) -> None:
        self._root: _Node = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def root(self) -> bytes:
        return _node_hash(self._root)

    def get(self, label: bytes) -> bytes | None:
        key = self._key(label)
        node, depth = self._root, 0
        while isinstance(node, _Parent):
            node = node.children[_bit(key, depth)]
            depth += 1
        return node.commitment if node is not None and node.label == label else None

    def insert(self, label: bytes, commitment: bytes) -> None:
        """Map `label` to `commitment`, adding it or replacing its commitment."""
        key = self._key(label)
        if len(commitment) != COMMITMENT_LEN:
            raise LocalProtocolError("a commitment is 32 bytes")
        label = bytes(label)
        holder: _Parent | None = None
        holder_bit = 0
        node, depth = self._root, 0
        while isinstance(node, _Parent):
            node.hash = None
            holder, holder_bit = node, _bit(key, depth)
            node = node.children[holder_bit]
            depth += 1
        if isinstance(node, _Leaf) and node.key == key:
            node.commitment, node.hash = bytes(commitment), None
            return
        new: _Node = _Leaf(label, key, bytes(commitment))
        if isinstance(node, _Leaf):  # split down to where the two labels part
            top = branch = _Parent()
            while _bit(key, depth) == _bit(node.key, depth):
                deeper = _Parent()
                branch.children[_bit(key, depth)] = deeper
                branch, depth = deeper, depth + 1
            branch.children[_bit(key, depth)] = new
            branch.children[_bit(node.key, depth)] = node
            new = top
        if holder is None:
            self._root = new
        else:
            holder.children[holder_bit] = new
        self._size += 1

    def prove(self, label: bytes) -> LookupProof:
        """The membership or non-membership proof for `label` in the current root."""
        key = self._key(label)
        siblings: list[bytes] = []
        node, depth = self._root, 0
        while isinstance(node, _Parent):
            bit = _bit(key, depth)
            siblings.append(_node_hash(node.children[1 - bit]))
            node = node.children[bit]
            depth += 1
        leaf = None if node is None else (node.label, node.commitment)
        return LookupProof(leaf, tuple(siblings))

    @staticmethod
    def _key(label: bytes) -> int:
        if len(label) != LABEL_LEN:
            raise LocalProtocolError("a prefix tree label is 32 bytes")
        return int.from_bytes(label, "big")
