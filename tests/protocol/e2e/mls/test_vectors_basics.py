"""The suite-independent and primitive vectors of mlswg/mls-implementations: tree-math,
deserialization and crypto-basics (suite 1). Every entry is checked; none is skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import tree_math
from protocol.wire import tls
from protocol.wire.errors import DecodeError

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return data


def _optional(f: Any, *args: int) -> int | None:
    try:
        return int(f(*args))
    except ValueError:
        return None


TREE_MATH = _load("tree-math.json")


@pytest.mark.parametrize("entry", TREE_MATH, ids=lambda e: f"n_leaves={e['n_leaves']}")
def test_tree_math(entry: dict[str, Any]) -> None:
    n = entry["n_leaves"]
    assert tree_math.node_width(n) == entry["n_nodes"]
    assert tree_math.root(n) == entry["root"]
    for x in range(entry["n_nodes"]):
        assert _optional(tree_math.left, x) == entry["left"][x]
        assert _optional(tree_math.right, x) == entry["right"][x]
        assert _optional(tree_math.parent, x, n) == entry["parent"][x]
        assert _optional(tree_math.sibling, x, n) == entry["sibling"][x]


def test_tree_math_paths_agree_with_parents() -> None:
    for n in (1, 2, 4, 8, 16):
        for leaf in range(n):
            x = tree_math.node_index(leaf)
            path = tree_math.direct_path(x, n)
            assert (path[-1] if path else x) == tree_math.root(n)
            assert len(tree_math.copath(x, n)) == len(path)


DESERIALIZATION = _load("deserialization.json")


@pytest.mark.parametrize("entry", DESERIALIZATION, ids=lambda e: f"len={e['length']}")
def test_vlbytes_header(entry: dict[str, Any]) -> None:
    header = bytes.fromhex(entry["vlbytes_header"])
    assert tls.varint(entry["length"]) == header
    r = tls.Reader(header)
    assert r.varint() == entry["length"]
    r.finish()


@pytest.mark.parametrize("data", ["4000", "403f", "80000000", "80003fff", "c0", "40"])
def test_vlbytes_header_refuses_non_minimal_invalid_and_truncated(data: str) -> None:
    with pytest.raises(DecodeError):
        tls.Reader(bytes.fromhex(data)).varint()


CRYPTO = [e for e in _load("crypto-basics.json") if e["cipher_suite"] == cs.CIPHER_SUITE]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_crypto_basics_has_suite_1() -> None:
    assert len(CRYPTO) == 1


@pytest.mark.parametrize("entry", CRYPTO)
def test_crypto_basics(entry: dict[str, Any]) -> None:
    v = entry["ref_hash"]
    assert cs.ref_hash(v["label"], h(v["value"])) == h(v["out"])

    v = entry["expand_with_label"]
    assert cs.expand_with_label(h(v["secret"]), v["label"], h(v["context"]),
                                v["length"]) == h(v["out"])

    v = entry["derive_secret"]
    assert cs.derive_secret(h(v["secret"]), v["label"]) == h(v["out"])

    v = entry["derive_tree_secret"]
    assert cs.derive_tree_secret(h(v["secret"]), v["label"], v["generation"],
                                 v["length"]) == h(v["out"])

    v = entry["sign_with_label"]
    assert cs.signature_public_key(h(v["priv"])) == h(v["pub"])
    cs.verify_with_label(h(v["pub"]), v["label"], h(v["content"]), h(v["signature"]))
    mine = cs.sign_with_label(h(v["priv"]), v["label"], h(v["content"]))
    cs.verify_with_label(h(v["pub"]), v["label"], h(v["content"]), mine)
    with pytest.raises(cs.BadSignature):
        cs.verify_with_label(h(v["pub"]), v["label"] + "x", h(v["content"]), mine)

    v = entry["encrypt_with_label"]
    assert cs.x25519_public_key(h(v["priv"])) == h(v["pub"])
    assert cs.decrypt_with_label(h(v["priv"]), v["label"], h(v["context"]),
                                 h(v["kem_output"]), h(v["ciphertext"])) == h(v["plaintext"])
    kem_output, ct = cs.encrypt_with_label(h(v["pub"]), v["label"], h(v["context"]),
                                           h(v["plaintext"]))
    assert cs.decrypt_with_label(h(v["priv"]), v["label"], h(v["context"]),
                                 kem_output, ct) == h(v["plaintext"])
    with pytest.raises(DecryptionFailed):
        cs.decrypt_with_label(h(v["priv"]), v["label"], h(v["context"]) + b"x",
                              kem_output, ct)


def test_derive_key_pair_matches_rfc9180_a_1() -> None:
    """RFC 9180 appendix A.1.1, DHKEM(X25519, HKDF-SHA256): ikmE gives skEm, pkEm."""
    sk, pk = cs.derive_key_pair(h(
        "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234"))
    assert sk == h("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
    assert pk == h("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
