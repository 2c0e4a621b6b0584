"""welcome, passive-client-welcome and passive-client-handling-commit vectors (suite
1), every entry: a passive member joins from the Welcome, reaches the initial epoch
authenticator, and follows every epoch's proposals and commit to its authenticator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import key_schedule as ks
from protocol.e2e.mls.framing import MLSMessage
from protocol.e2e.mls.group import Group
from protocol.e2e.mls.key_package import KeyPackage
from protocol.e2e.mls.ratchet_tree import RatchetTree
from protocol.e2e.mls.welcome import GroupInfo, GroupSecrets, Welcome
from protocol.wire import tls

VECTORS = Path(__file__).parent / "vectors"


def _suite1(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return [e for e in entries if e["cipher_suite"] == cs.CIPHER_SUITE]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def _message(data: str) -> MLSMessage:
    r = tls.Reader(h(data))
    message = MLSMessage.read(r)
    r.finish()
    return message


WELCOME = _suite1("welcome.json")
PASSIVE_WELCOME = _suite1("passive-client-welcome.json")
PASSIVE_COMMIT = _suite1("passive-client-handling-commit.json")


def test_counts() -> None:
    assert (len(WELCOME), len(PASSIVE_WELCOME), len(PASSIVE_COMMIT)) == (1, 8, 13)


@pytest.mark.parametrize("entry", WELCOME)
def test_welcome(entry: dict[str, Any]) -> None:
    welcome = _message(entry["welcome"]).message
    key_package = _message(entry["key_package"]).message
    assert isinstance(welcome, Welcome) and isinstance(key_package, KeyPackage)
    mine = [s for s in welcome.secrets if s.new_member == key_package.ref()]
    assert len(mine) == 1
    ct = mine[0].encrypted_group_secrets
    r = tls.Reader(cs.decrypt_with_label(h(entry["init_priv"]), "Welcome",
                                         welcome.encrypted_group_info, ct.kem_output,
                                         ct.ciphertext))
    secrets = GroupSecrets.read(r)
    r.finish()
    assert not secrets.psks
    member = cs.extract(secrets.joiner_secret, bytes(cs.NH))
    key, nonce = ks.welcome_key_nonce(cs.derive_secret(member, "welcome"))
    r = tls.Reader(cs.aead_open(key, nonce, b"", welcome.encrypted_group_info))
    group_info = GroupInfo.read(r)
    r.finish()
    group_info.verify(h(entry["signer_pub"]))
    epoch = ks.from_joiner(secrets.joiner_secret, bytes(cs.NH),
                           group_info.group_context.encode())
    assert cs.mac(epoch.confirmation_key,
                  group_info.group_context.confirmed_transcript_hash) == \
        group_info.confirmation_tag


def _join(entry: dict[str, Any]) -> Group:
    welcome = _message(entry["welcome"]).message
    key_package = _message(entry["key_package"]).message
    assert isinstance(welcome, Welcome) and isinstance(key_package, KeyPackage)
    tree = None if entry["ratchet_tree"] is None else RatchetTree.decode(
        h(entry["ratchet_tree"]))
    psks = {h(p["psk_id"]): h(p["psk"]) for p in entry["external_psks"]}
    return Group.join(welcome, key_package, h(entry["init_priv"]),
                      h(entry["encryption_priv"]), h(entry["signature_priv"]), tree, psks)


@pytest.mark.parametrize("index", range(len(PASSIVE_WELCOME) + len(PASSIVE_COMMIT)))
def test_passive_client(index: int) -> None:
    entry = (PASSIVE_WELCOME + PASSIVE_COMMIT)[index]
    group = _join(entry)
    assert group.epoch_authenticator == h(entry["initial_epoch_authenticator"])
    for epoch in entry["epochs"]:
        for proposal in epoch["proposals"]:
            group.handle(_message(proposal))
        group.handle(_message(epoch["commit"]))
        assert group.epoch_authenticator == h(epoch["epoch_authenticator"])
