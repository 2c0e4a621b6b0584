"""Checks every entry of conformance/vectors/session_record.json (docs/PROTOCOL.md
sections 13.3 and 17.3): restoring each case's record, every step must open with the
recorded session (or fail with the recorded error), Bob's sends must produce the
recorded bytes, and the record's bytes must match after every step."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from conformance.drbg import Drbg
from conformance.vectors import gen_session_record
from protocol.e2e.keys import IdentityKeyPair, KemKeyPair, X25519KeyPair
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import PrivatePrekeys
from protocol.e2e.session_record import Incoming, SessionRecord, Slot
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind

VECTORS: dict[str, Any] = json.loads(
    resources.files("conformance.vectors").joinpath("session_record.json").read_text("utf-8"))
CASES = {case["name"]: case for case in VECTORS["cases"]}


class Prekeys:
    """Bob's private prekeys as the file lists them."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.identity = IdentityKeyPair.from_seed(bytes.fromhex(keys["identity_seed"]))
        assert self.identity.public.hex() == keys["identity_public"]
        self.signed = {k["id"]: X25519KeyPair.from_private(bytes.fromhex(k["private"]))
                       for k in keys["signed_prekeys"]}
        self.kem = {(KemKind(k["kind"]), k["id"]): KemKeyPair.from_seed(bytes.fromhex(k["seed"]))
                    for k in keys["kem_prekeys"]}
        self.one_time = {k["id"]: X25519KeyPair.from_private(bytes.fromhex(k["private"]))
                         for k in keys["one_time_prekeys"]}

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        opk = None if msg.one_time_prekey_id is None else self.one_time[msg.one_time_prekey_id]
        return PrivatePrekeys(self.signed[msg.signed_prekey_id],
                              self.kem[(msg.kem_kind, msg.kem_prekey_id)], opk)


def test_the_file_covers_the_required_cases() -> None:
    assert {"simultaneous start", "new session, late message", "identity key change",
            "replayed first message"} <= set(CASES)
    assert VECTORS["format"] == 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_step_of_a_case_is_reproduced(name: str) -> None:
    case = CASES[name]
    bob = Prekeys(VECTORS["keys"]["bob"])
    rng = Drbg(case["rng"])
    record = SessionRecord.deserialize(bytes.fromhex(case["record"]), rng)
    assert record.serialize().hex() == case["record"]
    pinned = None if case["pinned"] is None else bytes.fromhex(case["pinned"])
    for number, step in enumerate(case["steps"]):
        where = f"{name}, step {number}"
        kind = MessageKind(step["kind"])
        if step["step"] == "send":
            assert record.current is not None, where
            sent = record.current.encrypt(bytes.fromhex(step["plaintext"]))
            assert sent == (kind, bytes.fromhex(step["message"])), where
        else:
            incoming = Incoming.parse(kind, bytes.fromhex(step["message"]))
            try:
                opened = record.open(incoming, identity=bob.identity, pinned=pinned,
                                     lookup=bob.lookup, rng=rng)
            except ProtocolError as exc:
                assert type(exc).__name__ == step.get("error"), where
            else:
                assert "error" not in step, where
                want = step["opened"]
                assert opened.plaintext.hex() == want["plaintext"], where
                assert opened.slot is Slot(want["slot"]), where
                assert opened.gap == want["gap"], where
                consumed = opened.consumed
                assert (None if consumed is None else consumed.one_time_prekey_id) == \
                    want["one_time_prekey_id"], where
                assert (None if consumed is None else consumed.kem_prekey_id) == \
                    want["kem_prekey_id"], where
                assert (None if opened.identity is None else opened.identity.hex()) == \
                    want["identity"], where
                assert (None if opened.stored_as is None else opened.stored_as.value) == \
                    want["stored_as"], where
                if pinned is None and opened.identity is not None:
                    pinned = opened.identity
        assert record.serialize().hex() == step["record_after"], where


def test_the_generator_reproduces_the_file() -> None:
    assert gen_session_record.build() == VECTORS
