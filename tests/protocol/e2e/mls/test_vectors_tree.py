"""tree-operations and tree-validation vectors: every suite-1 entry (tree-operations
is suite-independent in substance; all its entries are checked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls.leaf_node import LeafNode
from protocol.e2e.mls.proposals import Add, Proposal, Remove, Update
from protocol.e2e.mls.ratchet_tree import RatchetTree
from protocol.wire import tls

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return entries


def h(s: str) -> bytes:
    return bytes.fromhex(s)


OPERATIONS = _load("tree-operations.json")
VALIDATION = [e for e in _load("tree-validation.json") if e["cipher_suite"] == 1]


def test_entry_counts() -> None:
    assert len(OPERATIONS) == 5
    assert len(VALIDATION) == 14


@pytest.mark.parametrize("index", range(len(OPERATIONS)))
def test_tree_operations(index: int) -> None:
    entry = OPERATIONS[index]
    tree = RatchetTree.decode(h(entry["tree_before"]))
    assert tree.encode() == h(entry["tree_before"])
    assert tree.tree_hash() == h(entry["tree_hash_before"])
    r = tls.Reader(h(entry["proposal"]))
    proposal = Proposal.read(r)
    r.finish()
    body = proposal.body
    if isinstance(body, Add):
        tree.add(body.key_package.leaf_node)
    elif isinstance(body, Update):
        tree.update(entry["proposal_sender"], body.leaf_node)
    else:
        assert isinstance(body, Remove)
        tree.remove(body.removed)
    assert tree.encode() == h(entry["tree_after"])
    assert tree.tree_hash() == h(entry["tree_hash_after"])


@pytest.mark.parametrize("index", range(len(VALIDATION)))
def test_tree_validation(index: int) -> None:
    entry = VALIDATION[index]
    tree = RatchetTree.decode(h(entry["tree"]))
    assert len(entry["tree_hashes"]) == len(tree.nodes)
    for x, (want_hash, want_resolution) in enumerate(
            zip(entry["tree_hashes"], entry["resolutions"], strict=True)):
        assert tree.tree_hash(x) == h(want_hash)
        assert tree.resolution(x) == want_resolution
    assert tree.parent_hashes_valid()
    group_id = h(entry["group_id"])
    for i, leaf in tree.leaves():
        leaf.verify(group_id, i)


def test_a_changed_parent_key_breaks_the_parent_hash_chain() -> None:
    entry = next(e for e in VALIDATION if any(
        n is not None and not isinstance(n, LeafNode)
        for n in RatchetTree.decode(h(e["tree"])).nodes))
    tree = RatchetTree.decode(h(entry["tree"]))
    p = next(i for i, n in enumerate(tree.nodes) if i % 2 and n is not None)
    node = tree.parent_node(p)
    assert node is not None
    assert tree.parent_hashes_valid()  # and its hashes are cached now
    tree.set_node(p, type(node)(bytes(32), node.parent_hash, node.unmerged_leaves))
    assert not tree.parent_hashes_valid()
