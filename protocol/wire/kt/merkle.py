"""The append-only Merkle log of key transparency: RFC 9162 section 2.1 with SHA-256.

Why this shape (docs/PROTOCOL.md section 19.1): a client that has verified one tree head
must be able to check, with O(log n) hashes, that a leaf is in a later head (inclusion,
RFC 9162 2.1.3) and that the later head extends the earlier one (consistency, 2.1.4).
The two verifiers follow RFC 9162 2.1.3.2 and 2.1.4.2 step by step, so that the
official vectors (tests/protocol/wire/kt/vectors/rfc9162-merkle) apply unchanged.

`MerkleTree` stores the leaf hashes and, per level, the hash of every *complete*
subtree (2^k leaves starting at a multiple of 2^k). Those never change once the log
has grown past them, so any root or proof for any earlier size is assembled from
O(log n) of them: a million entries cost about 64 MB and proofs stay cheap.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from protocol.wire.errors import DecodeError, LocalProtocolError
from protocol.wire.kt.errors import ProofError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
MAX_PROOF_HASHES = 128
"""More hashes than any proof of a tree below 2^64 leaves needs; a longer proof is
refused before any hashing."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() (RFC 9162 2.1.1)."""


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only log of leaf hashes that answers for every size it has had."""

    def __init__(self) -> None:
        # _levels[k] holds the hashes of the complete subtrees of 2^k leaves,
        # concatenated: subtree i at bytes [32 i, 32 i + 32).
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, entry: bytes) -> int:
        """Append one entry (hashed as a leaf); returns its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already computed leaf hash; returns its index."""
        if len(leaf) != HASH_SIZE:
            raise LocalProtocolError("a leaf hash is 32 bytes")
        index = self.size
        self._levels[0] += leaf
        count, level = index + 1, 0
        while count % 2 == 0:  # the new leaf completed a subtree one level up
            count //= 2
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            row = self._levels[level]
            self._levels[level + 1] += node_hash(
                bytes(row[-2 * HASH_SIZE : -HASH_SIZE]), bytes(row[-HASH_SIZE:])
            )
            level += 1
        return index

    def leaf_hash_at(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise LocalProtocolError(f"leaf {index} is outside a tree of {self.size}")
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]) for the current or any earlier size."""
        n = self._size_arg(size)
        return EMPTY_ROOT if n == 0 else self._mth(0, n)

    def root_of(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range inside the current tree."""
        if not 0 <= start < end <= self.size:
            raise LocalProtocolError(f"no range [{start}, {end}) in a tree of {self.size}")
        return self._mth(start, end)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 2.1.3.1, lowest level first."""
        n = self._size_arg(size)
        if not 0 <= index < n:
            raise LocalProtocolError(f"leaf {index} is outside a tree of {n}")
        path: list[bytes] = []
        start, end, m = 0, n, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                path.append(self._mth(start + k, end))
                end = start + k
            else:
                path.append(self._mth(start, start + k))
                start, m = start + k, m - k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:size]) of RFC 9162 2.1.4.1 (empty when the sizes match)."""
        n = self._size_arg(size)
        if not 0 < old_size <= n:
            raise LocalProtocolError(f"no consistency proof from {old_size} to {n}")
        proof: list[bytes] = []
        start, end, m, complete = 0, n, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._mth(start + k, end))
                end = start + k
            else:
                proof.append(self._mth(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            proof.append(self._mth(start, end))
        proof.reverse()
        return proof

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise LocalProtocolError(f"the tree never had {size} leaves (it has {self.size})")
        return size

    def _mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]): cached when complete, else split as RFC 9162 does."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            i = start >> level
            return bytes(self._levels[level][i * HASH_SIZE : (i + 1) * HASH_SIZE])
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))


def _check_hashes(proof: Sequence[bytes], *named: bytes) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError("the proof has more hashes than any tree needs")
    if any(len(h) != HASH_SIZE for h in (*named, *proof)):
        raise ProofError("every hash in a proof is 32 bytes")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: is the leaf hash at `index` in the tree `root` of `size` leaves?

    Raises ProofError unless it is."""
    _check_hashes(proof, leaf, root)
    if not 0 <= index < size:  # step 1
        raise ProofError("the leaf index is not inside the tree")
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or not hmac.compare_digest(r, root):  # step 5
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: is the tree `root2` of `size2` an extension of `root1` of `size1`?

    Equal sizes need an empty proof and equal roots; a proof from the empty tree proves
    nothing and is refused, as transparency-dev/merkle does. Raises ProofError."""
    if size1 > size2:
        raise ProofError("the first tree is larger than the second")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        if not hmac.compare_digest(root1, root2):
            raise ProofError("two heads of the same size have different roots")
        return
    _check_hashes(proof, root1, root2)
    if not proof:  # step 1
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError("the consistency proof is longer than the path")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # step 7
    ok1 = hmac.compare_digest(fr, root1)
    ok2 = hmac.compare_digest(sr, root2)
    if not (ok1 and ok2 and sn == 0):
        raise ProofError("the consistency proof does not lead to both roots")


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Inclusion of leaf `index` in the subtree [start, end) with hash `root`.

    The subtree must be one the tree actually has a node for: start < end and start a
    multiple of the smallest power of two >= end - start (the Merkle Tree Certificates
    draft's rule, as in transparency-dev/merkle). Its proof is then the RFC 9162 proof
    of leaf index - start in a tree of end - start leaves. Raises ProofError."""
    if not 0 <= start < end:
        raise ProofError("the subtree is empty or reversed")
    width = 1 << (end - start - 1).bit_length()
    if start % width:
        raise ProofError("the range is not a subtree of the log")
    if not start <= index < end:
        raise ProofError("the leaf is outside the subtree")
    verify_inclusion(leaf, index - start, end - start, proof, root)


def encode_proof(proof: Sequence[bytes]) -> bytes:
    """A proof on the wire: its 32-byte hashes concatenated, in order (section 19.1)."""
    if any(len(h) != HASH_SIZE for h in proof):
        raise LocalProtocolError("every hash in a proof is 32 bytes")
    return b"".join(proof)


def decode_proof(data: bytes) -> list[bytes]:
    """The inverse of encode_proof; a length that is not a multiple of 32 is refused."""
    if len(data) % HASH_SIZE:
        raise DecodeError("a proof is a whole number of 32-byte hashes")
    if len(data) // HASH_SIZE > MAX_PROOF_HASHES:
        raise DecodeError("a proof has more hashes than any tree needs")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
