"""treekem vectors (suite 1), every entry: each member's private keys match the tree;
each UpdatePath merges to the given tree hash and every other member decrypts the
given path secret and commit secret; and an UpdatePath we make from every member's
leaf is decrypted by all the others to our commit secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import tree_math, treekem
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.proposals import UpdatePath
from protocol.e2e.mls.ratchet_tree import RatchetTree
from protocol.wire import tls

ENTRIES = [e for e in json.loads((Path(__file__).parent / "vectors" / "treekem.json")
                                 .read_text()) if e["cipher_suite"] == 1]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_suite_1_count() -> None:
    assert len(ENTRIES) == 11


def _privates(entry: dict[str, Any], tree: RatchetTree) -> dict[int, dict[int, bytes]]:
    out: dict[int, dict[int, bytes]] = {}
    for member in entry["leaves_private"]:
        x = tree_math.node_index(member["index"])
        keys = {x: h(member["encryption_priv"])}
        for p in member["path_secrets"]:
            keys[p["node"]] = treekem.node_key_pair(h(p["path_secret"]))[0]
        for node, private in keys.items():
            assert cs.x25519_public_key(private) == tree.nodes[node].encryption_key  # type: ignore[union-attr]
        out[member["index"]] = keys
    return out


def _context(entry: dict[str, Any], tree_hash: bytes) -> bytes:
    return GroupContext(h(entry["group_id"]), entry["epoch"], tree_hash,
                        h(entry["confirmed_transcript_hash"])).encode()


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_treekem(index: int) -> None:
    entry = ENTRIES[index]
    base = RatchetTree.decode(h(entry["ratchet_tree"]))
    assert base.parent_hashes_valid()
    privates = _privates(entry, base)
    group_id = h(entry["group_id"])

    for update in entry["update_paths"]:
        sender = update["sender"]
        r = tls.Reader(h(update["update_path"]))
        path = UpdatePath.read(r)
        r.finish()
        tree = base.copy()
        treekem.apply_path(tree, sender, path, group_id)
        assert tree.tree_hash() == h(update["tree_hash_after"])
        assert tree.parent_hashes_valid()
        context = _context(entry, tree.tree_hash())
        for receiver, want in enumerate(update["path_secrets"]):
            if want is None:
                continue
            got = treekem.decapsulate(tree, sender, path, receiver, privates[receiver],
                                      context)
            assert got.path_secret == h(want)
            assert got.commit_secret == h(update["commit_secret"])

    # our own UpdatePaths, from every member
    for member in entry["leaves_private"]:
        sender = member["index"]
        tree = base.copy()
        leaf = tree.leaf(sender)
        assert leaf is not None
        made = treekem.encapsulate(tree, sender, leaf, h(member["signature_priv"]),
                                   group_id, lambda th: _context(entry, th))
        receiving = base.copy()
        treekem.apply_path(receiving, sender, made.path, group_id)
        assert receiving.tree_hash() == tree.tree_hash()
        assert receiving.parent_hashes_valid()
        context = _context(entry, receiving.tree_hash())
        for other in entry["leaves_private"]:
            if other["index"] == sender:
                continue
            got = treekem.decapsulate(receiving, sender, made.path, other["index"],
                                      privates[other["index"]], context)
            assert got.commit_secret == made.commit_secret


def test_a_path_with_a_wrong_key_is_refused() -> None:
    entry = ENTRIES[3]
    base = RatchetTree.decode(h(entry["ratchet_tree"]))
    update = entry["update_paths"][0]
    r = tls.Reader(h(update["update_path"]))
    path = UpdatePath.read(r)
    first = path.nodes[0]
    forged = UpdatePath(path.leaf_node, (type(first)(bytes(32), first.encrypted_path_secret),
                                         *path.nodes[1:]))
    with pytest.raises(treekem.InvalidUpdatePath):
        treekem.apply_path(base.copy(), update["sender"], forged, h(entry["group_id"]))
