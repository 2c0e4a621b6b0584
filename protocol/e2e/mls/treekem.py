"""TreeKEM (RFC 9420 sections 7.4-7.6, 12.4.1-12.4.2): a committer refreshes every key
on its filtered direct path from one fresh path secret, encrypts each node's path
secret to the resolution of its copath child, and everyone else decrypts the one that
reaches them and derives the rest upward.

    path_secret[0]   random           (for the first node of the filtered direct path)
    path_secret[n]   = DeriveSecret(path_secret[n-1], "path")
    node_secret[n]   = DeriveSecret(path_secret[n], "node")
    node key pair[n] = DeriveKeyPair(node_secret[n])
    commit_secret    = DeriveSecret(path_secret[last], "path")

The leaf's own new key is fresh, not derived. Each path secret is encrypted with
EncryptWithLabel(key, "UpdatePathNode", provisional GroupContext, path_secret), the
context carrying the tree hash after the path is merged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import tree_math
from protocol.e2e.mls.leaf_node import LeafNode, LeafNodeSource
from protocol.e2e.mls.proposals import HPKECiphertext, UpdatePath, UpdatePathNode
from protocol.e2e.mls.ratchet_tree import ParentNode, RatchetTree
from protocol.wire.errors import RemoteProtocolError


class InvalidUpdatePath(RemoteProtocolError):
    """An UpdatePath that does not fit the tree: wrong length, keys that do not follow
    from the path secret, or a leaf whose parent hash does not chain (7.9)."""


def next_path_secret(path_secret: bytes) -> bytes:
    return cs.derive_secret(path_secret, "path")


def node_key_pair(path_secret: bytes) -> tuple[bytes, bytes]:
    return cs.derive_key_pair(cs.derive_secret(path_secret, "node"))


def _in_subtree(x: int, p: int) -> bool:
    half = (1 << tree_math.level(p)) - 1
    return p - half <= x <= p + half


def _public_key(tree: RatchetTree, x: int) -> bytes:
    node = tree.nodes[x]
    assert node is not None
    return node.encryption_key


def merge_path(tree: RatchetTree, sender: int, path_keys: list[bytes], leaf: LeafNode
               ) -> list[int]:
    """Puts the new public keys on the sender's filtered direct path (blanking the rest
    of its direct path), computes the parent hashes top-down (7.9) and sets the leaf.
    Returns the filtered direct path. The caller checks the leaf's parent_hash."""
    x = tree_math.node_index(sender)
    filtered = tree.filtered_direct_path(sender)
    if len(path_keys) != len(filtered):
        raise InvalidUpdatePath(f"the path has {len(path_keys)} nodes, the tree needs "
                                f"{len(filtered)}")
    for p in tree_math.direct_path(x, tree.n_leaves):
        tree.set_node(p, None)
    parent_hash = b""
    for p, key in reversed(list(zip(filtered, path_keys, strict=True))):
        tree.set_node(p, ParentNode(key, parent_hash, ()))
        copath_child = (tree_math.right(p) if _in_subtree(x, tree_math.left(p))
                        else tree_math.left(p))
        parent_hash = tree.parent_hash(p, copath_child)
    tree.set_node(x, leaf)
    return filtered


def expected_leaf_parent_hash(tree: RatchetTree, sender: int) -> bytes:
    """The parent hash the sender's leaf must carry once its path is merged."""
    x = tree_math.node_index(sender)
    filtered = tree.filtered_direct_path(sender)
    if not filtered:
        return b""
    p = filtered[0]
    copath_child = (tree_math.right(p) if _in_subtree(x, tree_math.left(p))
                    else tree_math.left(p))
    return tree.parent_hash(p, copath_child)


@dataclass(frozen=True)
class Decapsulated:
    path_secret: bytes  # the one this member decrypted (at the lowest common ancestor)
    node: int  # where it sits
    commit_secret: bytes
    node_privates: dict[int, bytes]  # new private keys for the path from `node` up


def decapsulate(tree: RatchetTree, sender: int, path: UpdatePath, receiver: int,
                privates: dict[int, bytes], context: bytes,
                excluded: Collection[int] = ()) -> Decapsulated:
    """For a member: `tree` is after `merge_path`, `privates` maps node indices to the
    HPKE private keys this member holds, `excluded` are leaves added by the same
    commit (they get the path secret from the Welcome, 12.4.3.1)."""
    filtered = tree.filtered_direct_path(sender)
    r = tree_math.node_index(receiver)
    for i, p in enumerate(filtered):
        if not _in_subtree(r, p):
            continue
        child = tree_math.left(p) if _in_subtree(r, tree_math.left(p)) else tree_math.right(p)
        resolution = [n for n in tree.resolution(child)
                      if not (tree_math.is_leaf(n) and tree_math.leaf_index(n) in excluded)]
        ciphertexts = path.nodes[i].encrypted_path_secret
        if len(ciphertexts) != len(resolution):
            raise InvalidUpdatePath("an UpdatePathNode does not encrypt to the resolution")
        for node, ct in zip(resolution, ciphertexts, strict=True):
            if node in privates:
                secret = cs.decrypt_with_label(privates[node], "UpdatePathNode", context,
                                               ct.kem_output, ct.ciphertext)
                return _derive_up(secret, filtered, i, path)
        raise DecryptionFailed("no key of this member can open the path secret")
    raise InvalidUpdatePath("the receiver is not below the sender's path")


def _derive_up(secret: bytes, filtered: list[int], start: int, path: UpdatePath
               ) -> Decapsulated:
    privates: dict[int, bytes] = {}
    current = secret
    for m in range(start, len(filtered)):
        if m > start:
            current = next_path_secret(current)
        private, public = node_key_pair(current)
        if public != path.nodes[m].encryption_key:
            raise InvalidUpdatePath("a path key does not follow from the path secret")
        privates[filtered[m]] = private
    return Decapsulated(secret, filtered[start], next_path_secret(current), privates)


@dataclass(frozen=True)
class Encapsulated:
    path: UpdatePath
    commit_secret: bytes
    leaf_private: bytes
    path_secrets: dict[int, bytes]  # node index -> path secret (for Welcome, 12.4.3.1)
    node_privates: dict[int, bytes]


def encapsulate(tree: RatchetTree, sender: int, leaf: LeafNode, signature_private: bytes,
                group_id: bytes, context_for: Callable[[bytes], bytes],
                excluded: Collection[int] = (), leaf_secret: bytes | None = None,
                ) -> Encapsulated:
    """A committer's side: fresh keys for `sender`'s leaf and filtered direct path,
    merged into `tree` (changed in place), the leaf re-signed as a commit leaf, each
    path secret encrypted to its copath resolution. `context_for(tree_hash)` gives the
    provisional GroupContext's encoding for the tree hash after the merge."""
    filtered = tree.filtered_direct_path(sender)
    leaf_private, leaf_public = cs.derive_key_pair(leaf_secret or os.urandom(32))
    secrets: list[bytes] = []
    current = os.urandom(cs.NH)
    for i in range(len(filtered)):
        if i:
            current = next_path_secret(current)
        secrets.append(current)
    # with no one to share it (an empty filtered path), the commit secret is still
    # fresh: a member removed by this commit must not be able to derive the epoch
    commit_secret = next_path_secret(current)
    pairs = [node_key_pair(s) for s in secrets]
    provisional = replace(leaf, encryption_key=leaf_public,
                          leaf_node_source=LeafNodeSource.COMMIT, lifetime=None)
    merge_path(tree, sender, [pub for _, pub in pairs], provisional)
    signed = replace(provisional, parent_hash=expected_leaf_parent_hash(tree, sender)
                     ).sign(signature_private, group_id, sender)
    tree.set_node(tree_math.node_index(sender), signed)
    context = context_for(tree.tree_hash())
    x = tree_math.node_index(sender)
    nodes = []
    for p, secret, (_, public) in zip(filtered, secrets, pairs, strict=True):
        child = tree_math.right(p) if _in_subtree(x, tree_math.left(p)) else tree_math.left(p)
        resolution = [n for n in tree.resolution(child)
                      if not (tree_math.is_leaf(n) and tree_math.leaf_index(n) in excluded)]
        cts = tuple(HPKECiphertext(*cs.encrypt_with_label(_public_key(tree, n),
                                                          "UpdatePathNode", context, secret))
                    for n in resolution)
        nodes.append(UpdatePathNode(public, cts))
    return Encapsulated(UpdatePath(signed, tuple(nodes)), commit_secret, leaf_private,
                        dict(zip(filtered, secrets, strict=True)),
                        {p: priv for p, (priv, _) in zip(filtered, pairs, strict=True)})


def apply_path(tree: RatchetTree, sender: int, path: UpdatePath, group_id: bytes) -> None:
    """A receiver merges a committer's path (12.4.2): the leaf must be a commit leaf,
    signed for this group and leaf, whose parent hash chains to the new path."""
    leaf = path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise InvalidUpdatePath("an UpdatePath's leaf must come from a commit")
    leaf.verify(group_id, sender)
    merge_path(tree, sender, [n.encryption_key for n in path.nodes], leaf)
    if leaf.parent_hash != expected_leaf_parent_hash(tree, sender):
        raise InvalidUpdatePath("the leaf's parent hash does not match its path")
