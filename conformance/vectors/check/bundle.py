"""bundle.json: prekey records, their signatures Sig(IK_B, Encode(PK)) and bundles
(docs/PROTOCOL.md section 4)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.parties import identity_from, never_encapsulate, never_rng
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import pqxdh
from protocol.e2e.keys import (
    TYPE_MLKEM768,
    TYPE_X25519,
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    encode_key,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.session import Session
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

NAME = "bundle"
KEYS = ("rng", "identity", "signed_prekey", "kem_prekeys", "one_time_prekey")


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(
        [whole(NAME, doc, "prekey records", *KEYS),
         whole(NAME, doc, "prekeys from rng.prekeys", *KEYS)],
        listed(NAME, doc, "bundles"),
        listed(NAME, doc, "invalid_signatures"),
        listed(NAME, doc, "decode_errors"),
    )


def check_records(at: At, data: Any) -> None:
    bob = identity_from(at, "identity", data["identity"])
    at.eq("identity.seed", bob.seed, Drbg(data["rng"]["identity"])(32))

    spk = data["signed_prekey"]
    at.eq("signed_prekey.public", b(spk["public"]),
          X25519KeyPair.from_private(b(spk["private"])).public)
    at.eq("signed_prekey.signed_message", encode_key(TYPE_X25519, b(spk["public"])),
          b(spk["signed_message"]))
    at.eq("signed_prekey.signature", b(spk["signature"]), bob.sign(b(spk["signed_message"])))
    record = SignedPreKey(spk["id"], b(spk["public"]), b(spk["signature"]))
    at.eq("signed_prekey.record", b(spk["record"]), record.encode())
    at.eq("signed_prekey.record (length)", 101, len(record.encode()))
    at.eq("signed_prekey.record", record, SignedPreKey.decode(b(spk["record"])))
    record.verify(bob.public)

    for index, kem in enumerate(data["kem_prekeys"]):
        f = f"kem_prekeys[{index}]"
        pair = KemKeyPair.from_seed(b(kem["seed"]))
        at.eq(f"{f}.public", b(kem["public"]), pair.public)
        at.eq(f"{f}.signed_message", encode_key(TYPE_MLKEM768, pair.public),
              b(kem["signed_message"]))
        at.eq(f"{f}.signature", b(kem["signature"]), bob.sign(b(kem["signed_message"])))
        kem_record = KemPreKey(kem["id"], pair.public, b(kem["signature"]))
        at.eq(f"{f}.record", b(kem["record"]), kem_record.encode())
        at.eq(f"{f}.record (length)", 1253, len(kem_record.encode()))
        at.eq(f"{f}.record", kem_record, KemPreKey.decode(b(kem["record"])))
        kem_record.verify(bob.public)

    opk = data["one_time_prekey"]
    at.eq("one_time_prekey.public", b(opk["public"]),
          X25519KeyPair.from_private(b(opk["private"])).public)
    opk_record = OneTimePreKey(opk["id"], b(opk["public"]))
    at.eq("one_time_prekey.record", b(opk["record"]), opk_record.encode())
    at.eq("one_time_prekey.record (length)", 37, len(opk_record.encode()))
    at.eq("one_time_prekey.record", opk_record, OneTimePreKey.decode(b(opk["record"])))


def check_records_rng(at: At, data: Any) -> None:
    """make_* draw in the documented order: SPK, last-resort KEM, one-time KEM, OPK."""
    bob = IdentityKeyPair.from_seed(b(data["identity"]["seed"]))
    rng = Drbg(data["rng"]["prekeys"])
    last_resort, one_time = data["kem_prekeys"]
    at.eq("signed_prekey.record", b(data["signed_prekey"]["record"]),
          make_signed_prekey(bob, data["signed_prekey"]["id"], rng)[1].encode())
    at.eq("kem_prekeys[0].record", b(last_resort["record"]),
          make_kem_prekey(bob, last_resort["id"], rng)[1].encode())
    at.eq("kem_prekeys[1].record", b(one_time["record"]),
          make_kem_prekey(bob, one_time["id"], rng)[1].encode())
    at.eq("one_time_prekey.record", b(data["one_time_prekey"]["record"]),
          make_one_time_prekey(data["one_time_prekey"]["id"], rng)[1].encode())


def check_bundle(at: At, entry: Any) -> None:
    doc = at.entry.doc
    bundle = PreKeyBundle.decode(b(entry["encoded"]))
    at.eq("encoded", b(entry["encoded"]), bundle.encode())
    bundle.verify()
    at.eq("encoded (identity)", b(doc["identity"]["public"]), bundle.identity)
    at.eq("encoded (signed prekey)", b(doc["signed_prekey"]["record"]),
          bundle.signed_prekey.encode())
    at.eq("kem_kind", entry["kem_kind"], bundle.kem_kind)
    at.eq("kem_prekey_id", entry["kem_prekey_id"], bundle.kem_prekey.key_id)
    kem = next(k for k in doc["kem_prekeys"] if k["id"] == entry["kem_prekey_id"])
    at.eq("encoded (KEM prekey)", b(kem["record"]), bundle.kem_prekey.encode())
    at.eq("kem_kind", kem["kind"], entry["kem_kind"])
    if entry["one_time_prekey_id"] is None:
        at.eq("one_time_prekey_id", None, bundle.one_time_prekey)
    else:
        at.true("one_time_prekey_id", bundle.one_time_prekey is not None,
                "a one-time prekey in the bundle")
        assert bundle.one_time_prekey is not None
        at.eq("encoded (one-time prekey)", b(doc["one_time_prekey"]["record"]),
              bundle.one_time_prekey.encode())


def check_invalid_signature(at: At, entry: Any) -> None:
    bundle = PreKeyBundle.decode(b(entry["encoded"]))
    at.raises("error", entry["error"], bundle.verify)
    alice = IdentityKeyPair.from_seed(bytes(32))
    # The initiator aborts before it encapsulates or draws an ephemeral key.
    rng, encapsulate = never_rng(at, "error"), never_encapsulate(at, "error")
    at.raises("error", entry["error"], lambda: pqxdh.initiate(alice, bundle, rng, encapsulate))
    at.raises("error", entry["error"], lambda: Session.initiate(alice, bundle, rng, encapsulate))


def check_decode_error(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: PreKeyBundle.decode(b(entry["encoded"])))


check = dispatch({
    "prekey records": check_records,
    "prekeys from rng.prekeys": check_records_rng,
    "bundles": check_bundle,
    "invalid_signatures": check_invalid_signature,
    "decode_errors": check_decode_error,
})
