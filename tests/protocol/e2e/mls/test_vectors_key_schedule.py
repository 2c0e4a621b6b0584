"""key-schedule, psk_secret and secret-tree vectors (suite 1), every entry checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import key_schedule as ks
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.secret_tree import SecretTree, sender_data_key_nonce

VECTORS = Path(__file__).parent / "vectors"


def _suite1(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return [e for e in entries if e["cipher_suite"] == cs.CIPHER_SUITE]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


KEY_SCHEDULE = _suite1("key-schedule.json")


def test_files_have_suite_1_entries() -> None:
    assert len(KEY_SCHEDULE) == 1
    assert len(PSK) == 11
    assert len(SECRET_TREE) == 3


@pytest.mark.parametrize("entry", KEY_SCHEDULE)
def test_key_schedule(entry: dict[str, Any]) -> None:
    group_id = h(entry["group_id"])
    init_secret = h(entry["initial_init_secret"])
    for epoch, v in enumerate(entry["epochs"]):
        context = GroupContext(group_id, epoch, h(v["tree_hash"]),
                                  h(v["confirmed_transcript_hash"])).encode()
        assert context == h(v["group_context"])
        secrets = ks.advance(init_secret, h(v["commit_secret"]), h(v["psk_secret"]), context)
        assert secrets.joiner_secret == h(v["joiner_secret"])
        assert secrets.welcome_secret == h(v["welcome_secret"])
        assert secrets.init_secret == h(v["init_secret"])
        assert secrets.sender_data_secret == h(v["sender_data_secret"])
        assert secrets.encryption_secret == h(v["encryption_secret"])
        assert secrets.exporter_secret == h(v["exporter_secret"])
        assert secrets.epoch_authenticator == h(v["epoch_authenticator"])
        assert secrets.external_secret == h(v["external_secret"])
        assert secrets.confirmation_key == h(v["confirmation_key"])
        assert secrets.membership_key == h(v["membership_key"])
        assert secrets.resumption_psk == h(v["resumption_psk"])
        assert secrets.external_pub == h(v["external_pub"])
        x = v["exporter"]
        # the label is a string in test-vectors.md (that it looks like hex is chance)
        label = x["label"].encode()
        assert secrets.export(label, h(x["context"]), x["length"]) == h(x["secret"])
        init_secret = secrets.init_secret


PSK = _suite1("psk_secret.json")


@pytest.mark.parametrize("entry", PSK, ids=lambda e: f"{len(e['psks'])}psks")
def test_psk_secret(entry: dict[str, Any]) -> None:
    psks = [(ks.PreSharedKeyID(ks.PSK_EXTERNAL, h(p["psk_nonce"]), psk_id=h(p["psk_id"])),
             h(p["psk"])) for p in entry["psks"]]
    assert ks.psk_secret(psks) == h(entry["psk_secret"])


SECRET_TREE = _suite1("secret-tree.json")


@pytest.mark.parametrize("entry", SECRET_TREE, ids=lambda e: f"{len(e['leaves'])}leaves")
def test_secret_tree(entry: dict[str, Any]) -> None:
    sd = entry["sender_data"]
    key, nonce = sender_data_key_nonce(h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    assert (key, nonce) == (h(sd["key"]), h(sd["nonce"]))
    leaves = entry["leaves"]
    tree = SecretTree(h(entry["encryption_secret"]), len(leaves))
    for leaf, generations in enumerate(leaves):
        for g in generations:
            hs = tree.ratchet(leaf, "handshake").get(g["generation"])
            assert (hs.key, hs.nonce) == (h(g["handshake_key"]), h(g["handshake_nonce"]))
            app = tree.ratchet(leaf, "application").get(g["generation"])
            assert (app.key, app.nonce) == (h(g["application_key"]),
                                            h(g["application_nonce"]))


def test_a_generation_is_used_once_and_skipped_ones_stay_for_late_messages() -> None:
    tree = SecretTree(bytes(32), 4)
    ratchet = tree.ratchet(2, "application")
    three = ratchet.get(3)
    with pytest.raises(ValueError):
        ratchet.get(3)
    late = ratchet.get(1)  # skipped over on the way to 3, kept once
    assert late.generation == 1 and late.key != three.key
    with pytest.raises(ValueError):
        ratchet.get(1)
    with pytest.raises(ValueError):
        ratchet.get(100_000)
