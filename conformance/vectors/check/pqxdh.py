"""pqxdh.json: PQXDH from both sides and the session layer's first message
(docs/PROTOCOL.md sections 5, 6 and 9)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.errors import MalformedVector
from conformance.vectors import load
from conformance.vectors.check.parties import BobKeys, identity_from, recorded_encapsulation
from conformance.vectors.check.support import At, Entry, Json, b, checker, concat, listed, whole
from protocol.e2e import kdf, pqxdh
from protocol.e2e.keys import TYPE_ED25519, X25519KeyPair, encode_key
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import Session
from protocol.wire.prekeys import PreKeyBundle

NAME = "pqxdh"
SIDES = ("initiator", "responder", "first message")


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    per_side = []
    for case in listed(NAME, doc, "cases"):
        for side in SIDES:
            per_side.append(Entry(NAME, f"{case.id} ({side})", case.data, doc, case.covers))
    return concat([whole(NAME, doc, "info", "info")], per_side, listed(NAME, doc, "failures"))


def check_info(at: At, data: Any) -> None:
    at.eq("info", data["info"], kdf.PQXDH_INFO.decode("ascii"))


def check_initiator(at: At, case: Any) -> None:
    alice = identity_from(at, "alice", case["alice"])
    bundle = PreKeyBundle.decode(b(case["bundle"]))
    ct, ss = b(case["kem_ciphertext"]), b(case["kem_shared_secret"])
    encapsulate = recorded_encapsulation(at, "bundle", ct, ss, bundle.kem_prekey.public)
    init = pqxdh.initiate(alice, bundle, Drbg(case["rng"]["alice"]), encapsulate)

    ephemeral = X25519KeyPair.from_private(b(case["ephemeral_private"]))
    at.eq("ephemeral_private", ephemeral.private, Drbg(case["rng"]["alice"])(32))
    at.eq("ephemeral_public", b(case["ephemeral_public"]), ephemeral.public)
    at.eq("dh", case["dh"], [d.hex() for d in init.agreement.dh])
    at.eq("dh (count)", 4 if bundle.one_time_prekey is not None else 3, len(case["dh"]))
    at.eq("ikm", b(case["ikm"]), b"\xff" * 32 + b"".join(init.agreement.dh) + ss)
    at.eq("kem_shared_secret", ss, init.agreement.kem_shared_secret)
    at.eq("sk", b(case["sk"]), init.agreement.sk)
    at.eq("sk", b(case["sk"]), kdf.hkdf(bytes(32), b(case["ikm"]), kdf.PQXDH_INFO, 32))
    at.eq("ad", b(case["ad"]), init.agreement.ad)
    at.eq("ad", encode_key(TYPE_ED25519, alice.public) + encode_key(TYPE_ED25519, bundle.identity),
          b(case["ad"]))
    at.eq("bundle (signed prekey)", bundle.signed_prekey.public, init.signed_prekey)
    at.eq("prekey_prefix", b(case["prekey_prefix"]), init.prefix)


def check_responder(at: At, case: Any) -> None:
    bob = BobKeys(at, "bob", case["bob"])
    message = PreKeyMessage.decode(b(case["first_message"]["message"]))
    at.eq("prekey_prefix", b(case["prekey_prefix"]), message.encode_prefix())
    at.eq("alice.public", b(case["alice"]["public"]), message.identity)
    at.eq("ephemeral_public", b(case["ephemeral_public"]), message.ephemeral)
    at.eq("kem_ciphertext", b(case["kem_ciphertext"]), message.kem_ciphertext)
    at.eq("bob (prekey ids)", (bob.spk_id, bob.kem_kind, bob.kem_id, bob.opk_id),
          (message.signed_prekey_id, message.kem_kind, message.kem_prekey_id,
           message.one_time_prekey_id))
    agreement = pqxdh.respond(bob.identity, message, bob.spk, bob.kem, bob.opk)
    at.eq("dh", case["dh"], [d.hex() for d in agreement.dh])
    at.eq("kem_shared_secret", b(case["kem_shared_secret"]), agreement.kem_shared_secret)
    at.eq("sk", b(case["sk"]), agreement.sk)
    at.eq("ad", b(case["ad"]), agreement.ad)


def check_first_message(at: At, case: Any) -> None:
    alice = identity_from(at, "alice", case["alice"])
    bob = BobKeys(at, "bob", case["bob"])
    bundle = PreKeyBundle.decode(b(case["bundle"]))
    first = case["first_message"]
    encapsulate = recorded_encapsulation(at, "bundle", b(case["kem_ciphertext"]),
                                         b(case["kem_shared_secret"]), bundle.kem_prekey.public)
    session = Session.initiate(alice, bundle, Drbg(case["rng"]["alice"]), encapsulate)
    at.eq("first_message.alice_ratchet_private", b(first["alice_ratchet_private"]),
          session.ratchet.dhs.private)
    at.eq("first_message.alice_ratchet_public", b(first["alice_ratchet_public"]),
          session.ratchet.dhs.public)
    kind, message = session.encrypt(b(first["plaintext"]))
    at.eq("first_message.kind", first["kind"], int(kind))
    at.eq("first_message.message", b(first["message"]), message)

    received, plaintext, consumed = Session.respond(bob.identity, message, bob.lookup,
                                                    Drbg(case["rng"]["bob"]))
    at.eq("first_message.plaintext", b(first["plaintext"]), plaintext)
    at.eq("first_message.bob_ratchet_private", b(first["bob_ratchet_private"]),
          received.ratchet.dhs.private)
    at.eq("first_message.bob_ratchet_public", b(first["bob_ratchet_public"]),
          received.ratchet.dhs.public)
    at.eq("ephemeral_public", b(case["ephemeral_public"]), received.base_key)
    at.eq("consumed", (case["consumed"]["one_time_prekey_id"], case["consumed"]["kem_prekey_id"]),
          (consumed.one_time_prekey_id, consumed.kem_prekey_id))


def check_failure(at: At, entry: Any) -> None:
    case = next(c for c in at.entry.doc["cases"] if c["name"] == entry["case"])
    bob = BobKeys(at, f"cases[{entry['case']}].bob", case["bob"])
    at.raises("error", entry["error"], lambda: Session.respond(
        bob.identity, b(entry["message"]), bob.lookup, Drbg(case["rng"]["bob"])))


def body(at: At, data: Any) -> None:
    entry_id = at.entry.id
    if entry_id == "info":
        check_info(at, data)
    elif entry_id.startswith("failures["):
        check_failure(at, data)
    elif entry_id.endswith("(initiator)"):
        check_initiator(at, data)
    elif entry_id.endswith("(responder)"):
        check_responder(at, data)
    elif entry_id.endswith("(first message)"):
        check_first_message(at, data)
    else:
        raise MalformedVector(NAME, entry_id, "no check for this entry")


check = checker(body)
