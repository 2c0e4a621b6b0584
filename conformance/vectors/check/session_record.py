"""session_record.json: SessionRecord.open and the record's bytes, step by step
(docs/PROTOCOL.md sections 13.3 and 17.3).

Each case restores Bob's record for one peer with DRBG(rng) as its random source; an
`open` step opens the message with Bob's prekeys and the pinned key, and must give the
recorded result (plaintext, slot, gap, consumed prekeys, new identity, where a new
session was stored) or the recorded error; a `send` step encrypts in the current
session and must give the recorded bytes; after every step the record must serialise
to the recorded bytes. `keys` and `encapsulations` are checked as one entry: every key
derives its recorded public part and every recorded ML-KEM encapsulation opens under
one of the KEM prekeys to its shared secret, so the messages were made from them.
"""

from __future__ import annotations

import functools
from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import IdentityKeyPair, KemKeyPair, X25519KeyPair
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import PrivatePrekeys
from protocol.e2e.session_record import Incoming, SessionRecord, Slot
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind

NAME = "session_record"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "keys and encapsulations", "keys", "encapsulations")],
                  listed(NAME, doc, "cases"))


class Prekeys:
    """One party's private prekeys as the file lists them."""

    def __init__(self, at: At, who: str, keys: Json) -> None:
        self.identity = IdentityKeyPair.from_seed(b(keys["identity_seed"]))
        at.eq(f"keys.{who}.identity_public", b(keys["identity_public"]), self.identity.public)
        self.signed = {k["id"]: X25519KeyPair.from_private(b(k["private"]))
                       for k in keys["signed_prekeys"]}
        self.kem = {(KemKind(k["kind"]), k["id"]): KemKeyPair.from_seed(b(k["seed"]))
                    for k in keys["kem_prekeys"]}
        self.one_time = {k["id"]: X25519KeyPair.from_private(b(k["private"]))
                         for k in keys["one_time_prekeys"]}

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        opk = None if msg.one_time_prekey_id is None else self.one_time[msg.one_time_prekey_id]
        return PrivatePrekeys(self.signed[msg.signed_prekey_id],
                              self.kem[(msg.kem_kind, msg.kem_prekey_id)], opk)


def check_keys(at: At, data: Any) -> None:
    parties = {who: Prekeys(at, who, keys) for who, keys in data["keys"].items()}
    at.true("keys", "bob" in parties, "keys for bob")
    kem = [pair for party in parties.values() for pair in party.kem.values()]
    for index, item in enumerate(data["encapsulations"]):
        ct, ss = b(item["ct"]), b(item["ss"])
        opens = []
        for pair in kem:
            try:
                opens.append(pair.decapsulate(ct) == ss)
            except ProtocolError:
                opens.append(False)
        at.true(f"encapsulations[{index}]", any(opens), "opens under one of the KEM prekeys")


def check_case(at: At, case: Any) -> None:
    bob = Prekeys(at, "bob", at.entry.doc["keys"]["bob"])
    rng = Drbg(case["rng"])
    record = SessionRecord.deserialize(b(case["record"]), rng)
    at.eq("record", b(case["record"]), record.serialize())
    pinned = None if case["pinned"] is None else b(case["pinned"])
    for number, step in enumerate(case["steps"]):
        where = f"steps[{number}]"
        kind = MessageKind(step["kind"])
        if step["step"] == "send":
            at.true(f"{where}.step", record.current is not None, "a current session")
            assert record.current is not None
            sent = record.current.encrypt(b(step["plaintext"]))
            at.eq(f"{where}.message", (kind, b(step["message"])), sent)
        else:
            incoming = Incoming.parse(kind, b(step["message"]))
            if "error" in step:
                at.raises(f"{where}.error", step["error"], functools.partial(
                    record.open, incoming, identity=bob.identity, pinned=pinned,
                    lookup=bob.lookup, rng=rng))
            else:
                opened = record.open(incoming, identity=bob.identity, pinned=pinned,
                                     lookup=bob.lookup, rng=rng)
                want = step["opened"]
                at.eq(f"{where}.opened.plaintext", b(want["plaintext"]), opened.plaintext)
                at.eq(f"{where}.opened.slot", Slot(want["slot"]), opened.slot)
                at.eq(f"{where}.opened.gap", want["gap"], opened.gap)
                consumed = opened.consumed
                at.eq(f"{where}.opened.one_time_prekey_id", want["one_time_prekey_id"],
                      None if consumed is None else consumed.one_time_prekey_id)
                at.eq(f"{where}.opened.kem_prekey_id", want["kem_prekey_id"],
                      None if consumed is None else consumed.kem_prekey_id)
                at.eq(f"{where}.opened.identity", want["identity"],
                      None if opened.identity is None else opened.identity.hex())
                at.eq(f"{where}.opened.stored_as", want["stored_as"],
                      None if opened.stored_as is None else opened.stored_as.value)
                if pinned is None and opened.identity is not None:
                    pinned = opened.identity
        at.eq(f"{where}.record_after", b(step["record_after"]), record.serialize())


check = dispatch({"keys and encapsulations": check_keys, "cases": check_case})
