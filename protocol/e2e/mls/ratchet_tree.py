"""The ratchet tree's nodes and its encoding (RFC 9420 sections 7.1, 7.8, 12.4.3.3):
a vector of optional Nodes, leaves at even indices, blanks as absent nodes, with no
trailing blank (a tree ends with its rightmost non-blank leaf)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import tree_math
from protocol.e2e.mls.leaf_node import LeafNode
from protocol.wire import tls
from protocol.wire.errors import DecodeError


@dataclass(frozen=True)
class ParentNode:
    encryption_key: bytes
    parent_hash: bytes
    unmerged_leaves: tuple[int, ...]

    def encode(self) -> bytes:
        return (tls.opaque(self.encryption_key) + tls.opaque(self.parent_hash)
                + tls.vector(tls.u32(i) for i in self.unmerged_leaves))

    @classmethod
    def read(cls, r: tls.Reader) -> ParentNode:
        return cls(r.opaque(), r.opaque(), tuple(r.vector(tls.Reader.u32)))


Node = LeafNode | ParentNode


def encode_node(node: Node) -> bytes:
    return (tls.u8(1) if isinstance(node, LeafNode) else tls.u8(2)) + node.encode()


def read_node(r: tls.Reader) -> Node:
    kind = r.u8()
    if kind == 1:
        return LeafNode.read(r)
    if kind == 2:
        return ParentNode.read(r)
    raise DecodeError(f"unknown node type {kind}")


def encode_tree(nodes: list[Node | None]) -> bytes:
    """The `ratchet_tree` extension's content (12.4.3.3): trailing blanks dropped."""
    end = len(nodes)
    while end and nodes[end - 1] is None:
        end -= 1
    return tls.vector(tls.optional(None if n is None else encode_node(n))
                      for n in nodes[:end])


def read_tree(r: tls.Reader) -> list[Node | None]:
    """A ratchet tree as sent: each node in its place (leaves even, parents odd), not
    ending with a blank. The tree's full width (padded to a power of two leaves) is
    the caller's (12.4.3.3)."""
    nodes = r.vector(lambda rr: rr.optional(read_node))
    if nodes and nodes[-1] is None:
        raise DecodeError("a ratchet tree may not end with a blank node")
    if len(nodes) % 2 == 0 and nodes:
        raise DecodeError("a ratchet tree has an odd number of nodes")
    for i, node in enumerate(nodes):
        if node is not None and isinstance(node, LeafNode) != (i % 2 == 0):
            raise DecodeError(f"node {i} is a {'leaf' if i % 2 else 'parent'} out of place")
    return nodes


class RatchetTree:
    """A group's ratchet tree (section 7): `nodes` in array order, always the full
    width of a power-of-two number of leaves, blanks as None."""

    def __init__(self, nodes: list[Node | None]) -> None:
        n_leaves = 1
        while tree_math.node_width(n_leaves) < len(nodes):
            n_leaves *= 2
        self.nodes: list[Node | None] = nodes + [None] * (
            tree_math.node_width(n_leaves) - len(nodes))
        self.n_leaves = n_leaves
        self._hashes: dict[int, bytes] = {}
        """Tree hashes by node (without removed leaves), dropped along a changed
        node's direct path: a commit rehashes O(log n) nodes, not the tree."""

    @classmethod
    def decode(cls, data: bytes) -> RatchetTree:
        r = tls.Reader(data)
        nodes = read_tree(r)
        r.finish()
        if not nodes:
            raise DecodeError("a ratchet tree has at least one leaf")
        return cls(nodes)

    def encode(self) -> bytes:
        return encode_tree(self.nodes)

    def copy(self) -> RatchetTree:
        tree = RatchetTree(list(self.nodes))
        tree._hashes = dict(self._hashes)
        return tree

    def set_node(self, x: int, node: Node | None) -> None:
        """Every change to a node goes through here, so cached hashes stay right."""
        self.nodes[x] = node
        self._hashes.pop(x, None)
        if x != tree_math.root(self.n_leaves):
            for p in tree_math.direct_path(x, self.n_leaves):
                self._hashes.pop(p, None)

    # -- reading

    def leaf(self, index: int) -> LeafNode | None:
        node = self.nodes[tree_math.node_index(index)]
        assert node is None or isinstance(node, LeafNode)
        return node

    def parent_node(self, x: int) -> ParentNode | None:
        node = self.nodes[x]
        assert node is None or isinstance(node, ParentNode)
        return node

    def leaves(self) -> list[tuple[int, LeafNode]]:
        return [(i, leaf) for i in range(self.n_leaves)
                if (leaf := self.leaf(i)) is not None]

    def resolution(self, x: int) -> list[int]:
        """Section 4.1.1: the non-blank nodes that cover x's subtree."""
        node = self.nodes[x]
        if node is not None:
            if isinstance(node, ParentNode):
                return [x, *(tree_math.node_index(i) for i in node.unmerged_leaves)]
            return [x]
        if tree_math.is_leaf(x):
            return []
        return self.resolution(tree_math.left(x)) + self.resolution(tree_math.right(x))

    def filtered_direct_path(self, leaf: int) -> list[int]:
        """Section 4.1.2: the direct path without the nodes whose copath child has an
        empty resolution."""
        x = tree_math.node_index(leaf)
        return [p for p, s in zip(tree_math.direct_path(x, self.n_leaves),
                                  tree_math.copath(x, self.n_leaves), strict=True)
                if self.resolution(s)]

    # -- hashes (sections 7.8, 7.9)

    def tree_hash(self, x: int | None = None) -> bytes:
        """The tree hash of the subtree at x (the root by default)."""
        return self._tree_hash(tree_math.root(self.n_leaves) if x is None else x, set())

    def _tree_hash(self, x: int, removed: set[int]) -> bytes:
        if not removed and x in self._hashes:
            return self._hashes[x]
        out = self._compute_hash(x, removed)
        if not removed:
            self._hashes[x] = out
        return out

    def _compute_hash(self, x: int, removed: set[int]) -> bytes:
        node = self.nodes[x]
        if tree_math.is_leaf(x):
            leaf = None if tree_math.leaf_index(x) in removed else node
            body = tls.u32(tree_math.leaf_index(x)) + tls.optional(
                None if leaf is None else leaf.encode())
            return cs.hash_(tls.u8(1) + body)
        encoded = None
        if node is not None:
            assert isinstance(node, ParentNode)
            if removed:
                node = ParentNode(node.encryption_key, node.parent_hash,
                                  tuple(i for i in node.unmerged_leaves if i not in removed))
            encoded = node.encode()
        body = (tls.optional(encoded)
                + tls.opaque(self._tree_hash(tree_math.left(x), removed))
                + tls.opaque(self._tree_hash(tree_math.right(x), removed)))
        return cs.hash_(tls.u8(2) + body)

    def parent_hash(self, p: int, copath_child: int) -> bytes:
        """ParentHash of p as seen from its child that is not `copath_child` (7.9): over
        p's key and parent hash and the sibling's tree hash without p's unmerged leaves."""
        node = self.parent_node(p)
        assert node is not None
        sibling = self._tree_hash(copath_child, set(node.unmerged_leaves))
        return cs.hash_(tls.opaque(node.encryption_key) + tls.opaque(node.parent_hash)
                        + tls.opaque(sibling))

    def parent_hashes_valid(self) -> bool:
        """Section 7.9.2: every non-blank parent node is the next link of a chain from
        some node below it: a node D in the resolution of one child whose parent_hash
        is p's parent hash with the other child as co-path child."""
        for p in range(1, len(self.nodes), 2):
            if self.nodes[p] is None:
                continue
            ok = False
            for child, other in ((tree_math.left(p), tree_math.right(p)),
                                 (tree_math.right(p), tree_math.left(p))):
                want = self.parent_hash(p, other)
                for d in self.resolution(child):
                    below = self.nodes[d]
                    assert below is not None
                    if below.parent_hash and hmac.compare_digest(below.parent_hash, want):
                        ok = True
            if not ok:
                return False
        return True

    # -- changes (section 12.1)

    def _blank_direct_path(self, leaf: int) -> None:
        for p in tree_math.direct_path(tree_math.node_index(leaf), self.n_leaves):
            self.set_node(p, None)

    def add(self, leaf_node: LeafNode) -> int:
        """Section 12.1.1: the leftmost blank leaf, extending the tree if none; the new
        leaf is unmerged at every non-blank parent above it."""
        index = next((i for i in range(self.n_leaves) if self.leaf(i) is None), None)
        if index is None:
            index = self.n_leaves
            self.nodes += [None] * (tree_math.node_width(2 * self.n_leaves) - len(self.nodes))
            self.n_leaves *= 2
            self._hashes.clear()
        x = tree_math.node_index(index)
        self.set_node(x, leaf_node)
        for p in tree_math.direct_path(x, self.n_leaves):
            node = self.parent_node(p)
            if node is not None:
                self.set_node(p, ParentNode(node.encryption_key, node.parent_hash,
                                       (*node.unmerged_leaves, index)))
        return index

    def update(self, index: int, leaf_node: LeafNode) -> None:
        """Section 12.1.2: the new leaf, and its direct path blanked."""
        self.set_node(tree_math.node_index(index), leaf_node)
        self._blank_direct_path(index)

    def remove(self, index: int) -> None:
        """Section 12.1.3: the leaf and its direct path blanked, then the tree
        truncated while the right half of the root holds no leaf."""
        self.set_node(tree_math.node_index(index), None)
        self._blank_direct_path(index)
        while self.n_leaves > 1 and all(self.leaf(i) is None for i in
                                        range(self.n_leaves // 2, self.n_leaves)):
            self.n_leaves //= 2
            del self.nodes[tree_math.node_width(self.n_leaves):]
            self._hashes.clear()
