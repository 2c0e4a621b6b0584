"""The ratchet tree's nodes and its encoding (RFC 9420 sections 7.1, 7.8, 12.4.3.3):
a vector of optional Nodes, leaves at even indices, blanks as absent nodes, with no
trailing blank (a tree ends with its rightmost non-blank leaf)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.e2e.mls import tls
from protocol.e2e.mls.leaf_node import LeafNode
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
