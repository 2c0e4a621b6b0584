"""Tree math for the ratchet tree's array representation (RFC 9420 section 4.1 and
appendix C).

Nodes are numbered left to right, leaves at even indices, so the node at index x has
level = the number of trailing 1 bits of x. A tree with n leaves has 2n - 1 nodes. The
functions are the appendix's, with n the number of leaves; asking for the child of a
leaf or the parent of the root is a ValueError (local misuse, never peer input).
"""

from __future__ import annotations

__all__ = ["copath", "direct_path", "is_leaf", "leaf_index", "left", "level", "log2",
           "node_index", "node_width", "parent", "right", "root", "sibling"]


def log2(x: int) -> int:
    """The exponent of the largest power of 2 not above x (0 for x = 0)."""
    return x.bit_length() - 1 if x else 0


def level(x: int) -> int:
    """A node's level: 0 for leaves, k for a parent whose subtree has 2**k leaves."""
    k = 0
    while (x >> k) & 1:
        k += 1
    return k


def is_leaf(x: int) -> bool:
    return x % 2 == 0


def node_index(leaf: int) -> int:
    return 2 * leaf


def leaf_index(x: int) -> int:
    if not is_leaf(x):
        raise ValueError(f"node {x} is not a leaf")
    return x // 2


def node_width(n: int) -> int:
    """Nodes in a tree with n leaves."""
    return 0 if n == 0 else 2 * (n - 1) + 1


def root(n: int) -> int:
    if n == 0:
        raise ValueError("an empty tree has no root")
    return (1 << log2(node_width(n))) - 1


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"leaf {x} has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"leaf {x} has no children")
    return x ^ (0x03 << (k - 1))


def parent(x: int, n: int) -> int:
    if x == root(n):
        raise ValueError(f"node {x} is the root")
    k = level(x)
    b = (x >> (k + 1)) & 1
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n: int) -> int:
    p = parent(x, n)
    return right(p) if x < p else left(p)


def direct_path(x: int, n: int) -> list[int]:
    """The nodes from x's parent up to the root, in that order (section 4.1)."""
    r = root(n)
    path: list[int] = []
    while x != r:
        x = parent(x, n)
        path.append(x)
    return path


def copath(x: int, n: int) -> list[int]:
    """The siblings of x and of each node of its direct path but the root."""
    if x == root(n):
        return []
    nodes = [x, *direct_path(x, n)][:-1]
    return [sibling(y, n) for y in nodes]
