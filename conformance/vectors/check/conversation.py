"""conversation.json: a scripted conversation replayed event by event, live and with
every session restored from its serialised state after each event
(docs/PROTOCOL.md sections 7, 9 and 13)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.errors import MalformedVector
from conformance.vectors import load
from conformance.vectors.check.parties import BobKeys, identity_from, recorded_encapsulation
from conformance.vectors.check.support import At, Entry, Json, b, checker, whole
from conformance.vectors.views import session_view
from protocol.e2e import aead, kdf, padding, pqxdh
from protocol.e2e.keys import TYPE_X25519, encode_key
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Session
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import PreKeyBundle

NAME = "conversation"
KEYS = ("rng", "alice", "bob", "bundle", "setup", "delivery_order", "events")
LIVE, RESTORED, COVERAGE = "events (live)", "events (restored after every event)", "coverage"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return [whole(NAME, doc, LIVE, *KEYS), whole(NAME, doc, RESTORED, *KEYS),
            whole(NAME, doc, COVERAGE, "events")]


def check_send(at: At, f: str, s: Session, event: Any, prefix: bytes) -> tuple[MessageKind, bytes]:
    r = s.ratchet
    at.eq(f"{f}.chain_key", b(event["chain_key"]), r.cks)
    next_chain_key, mk = kdf.kdf_ck(b(event["chain_key"]))
    at.eq(f"{f}.next_chain_key", b(event["next_chain_key"]), next_chain_key)
    at.eq(f"{f}.message_key", b(event["message_key"]), mk)
    enc_key, auth_key, iv = kdf.message_keys(mk)
    at.eq(f"{f}.enc_key", b(event["enc_key"]), enc_key)
    at.eq(f"{f}.auth_key", b(event["auth_key"]), auth_key)
    at.eq(f"{f}.iv", b(event["iv"]), iv)
    padded = padding.pad(b(event["plaintext"]))
    at.eq(f"{f}.padded", b(event["padded"]), padded)

    kind, wire = s.encrypt(b(event["plaintext"]))
    at.eq(f"{f}.kind", event["kind"], int(kind))
    at.eq(f"{f}.wire", b(event["wire"]), wire)
    ratchet_message = b(event["ratchet_message"])
    at.eq(f"{f}.ratchet_message", (prefix if kind is MessageKind.PREKEY else b"")
          + ratchet_message, wire)

    header = b(event["header"]["encoded"])
    fields = Header(b(event["header"]["dh"]), event["header"]["pn"], event["header"]["n"])
    at.eq(f"{f}.header.encoded", header, fields.encode())
    at.eq(f"{f}.header.encoded", ratchet_message[:HEADER_LEN], header)
    at.eq(f"{f}.header.dh", encode_key(TYPE_X25519, r.dhs.public), header[1 : HEADER_LEN - 8])
    body = b(event["ciphertext"]) + b(event["mac"])
    at.eq(f"{f}.ciphertext", ratchet_message[HEADER_LEN:], body)
    at.eq(f"{f}.ciphertext (length mod {padding.BUCKET})", 0,
          len(b(event["ciphertext"])) % padding.BUCKET)
    # ENCRYPT with CONCAT(AD, header) = AD || header, reproduced and reversed.
    at.eq(f"{f}.ciphertext", body, aead.encrypt(mk, padded, r.ad + header))
    at.eq(f"{f}.padded", padded, aead.decrypt(mk, body, r.ad + header))
    at.eq(f"{f}.next_chain_key", next_chain_key, r.cks)
    return kind, wire


def replay(at: At, data: Any, restore: bool) -> None:
    alice = identity_from(at, "alice", data["alice"])
    bob = BobKeys(at, "bob", data["bob"])
    identities = {"alice": alice, "bob": bob.identity}
    bundle = PreKeyBundle.decode(b(data["bundle"]))
    setup = data["setup"]
    rngs = {name: Drbg(label) for name, label in data["rng"].items()}
    encapsulate = recorded_encapsulation(at, "bundle", b(setup["kem_ciphertext"]),
                                         b(setup["kem_shared_secret"]), bundle.kem_prekey.public)

    alice_session = Session.initiate(alice, bundle, rngs["alice"], encapsulate)
    at.eq("setup.alice_session", setup["alice_session"], session_view(alice_session))
    at.eq("setup.alice_state", b(setup["alice_state"]), alice_session.serialize())
    at.eq("setup.prekey_prefix", b(setup["prekey_prefix"]), alice_session.pending_prefix)
    prefix = b(setup["prekey_prefix"])
    sessions: dict[str, Session | None] = {"alice": alice_session, "bob": None}
    if restore:
        sessions["alice"] = Session.deserialize(alice_session.serialize(), rngs["alice"])

    messages: dict[str, tuple[MessageKind, bytes]] = {}
    delivered = []
    for index, event in enumerate(data["events"]):
        f = f"events[{index}]"
        if event["op"] == "send":
            name = event["from"]
            sender = sessions[name]
            if sender is None:
                raise at.mismatch(f"{f}.from", "a session that can send", "no session yet")
            messages[event["id"]] = check_send(at, f, sender, event, prefix)
        elif event["op"] == "deliver":
            name = event["to"]
            kind, wire = messages[event["id"]]
            if "mutation" in event:
                wire = b(event["mutation"]["wire"])
            s = sessions[name]
            before = None if s is None else s.serialize()
            old_dhs = None if s is None else s.ratchet.dhs.public
            result = "ok"
            plaintext = b""
            try:
                if s is None:
                    s, plaintext, consumed = Session.respond(identities[name], wire, bob.lookup,
                                                             rngs[name])
                    sessions[name] = s
                    expected = event["responds"]
                    agreement = pqxdh.respond(bob.identity, PreKeyMessage.decode(wire), bob.spk,
                                              bob.kem, bob.opk)
                    at.eq(f"{f}.responds.sk", b(expected["sk"]), agreement.sk)
                    at.eq(f"{f}.responds.ad", b(expected["ad"]), agreement.ad)
                    at.eq("setup.sk", b(setup["sk"]), agreement.sk)
                    at.eq("setup.ad", b(setup["ad"]), agreement.ad)
                    at.eq(f"{f}.responds.consumed",
                          [expected["consumed"]["one_time_prekey_id"],
                           expected["consumed"]["kem_prekey_id"]],
                          [consumed.one_time_prekey_id, consumed.kem_prekey_id])
                else:
                    plaintext = s.decrypt(kind, wire)
            except ProtocolError as exc:
                result = type(exc).__name__
                if s is None or s.serialize() != before:
                    raise at.mismatch(f"{f}.state", "a failure leaves the state unchanged",
                                      "the state changed") from exc
            at.eq(f"{f}.result", event["result"], result)
            if s is None:
                raise at.mismatch(f"{f}.result", "a session after delivery", "none")
            if result == "ok":
                at.eq(f"{f}.plaintext", b(event["plaintext"]), plaintext)
                delivered.append(event["id"])
            at.eq(f"{f}.dh_ratchet_step", event["dh_ratchet_step"],
                  s.ratchet.dhs.public != old_dhs)
        else:
            raise MalformedVector(NAME, at.entry.id, f"{f}.op is {event['op']!r}")
        acting = sessions[name]
        if acting is None:
            raise at.mismatch(f"{f}.session", "a session", "none")
        at.eq(f"{f}.session", event["session"], session_view(acting))
        at.eq(f"{f}.state", b(event["state"]), acting.serialize())
        if restore:
            sessions[name] = Session.deserialize(acting.serialize(), rngs[name])
    at.eq("delivery_order", data["delivery_order"], delivered)


def check_coverage(at: At, data: Any) -> None:
    """At least 12 messages, several DH ratchet steps on both sides, out-of-order
    delivery, skipped keys, and each kind of rejection."""
    events = data["events"]
    sends = [e for e in events if e["op"] == "send"]
    delivers = [e for e in events if e["op"] == "deliver"]
    at.true("events", len(sends) >= 12, "at least 12 messages sent")
    at.eq("events[].dh_ratchet_step", {"alice", "bob"},
          {e["to"] for e in delivers if e["dh_ratchet_step"]})
    at.true("events[].dh_ratchet_step", sum(e["dh_ratchet_step"] for e in delivers) >= 4,
            "at least 4 DH ratchet steps")
    at.true("events[].session.ratchet.skipped",
            any(e["session"]["ratchet"]["skipped"] for e in delivers), "some skipped keys")
    order = [e["id"] for e in delivers if e["result"] == "ok"]
    at.true("events[].id", order != sorted(order, key=lambda mid: (mid[0], int(mid[1:]))),
            "out-of-order delivery")
    results = {e["result"] for e in delivers}
    at.true("events[].result", {"DuplicateMessage", "DecryptionFailed", "TooManySkipped"}
            <= results, "each kind of rejection")


def body(at: At, data: Any) -> None:
    if at.entry.id == COVERAGE:
        check_coverage(at, data)
    elif at.entry.id in (LIVE, RESTORED):
        replay(at, data, restore=at.entry.id == RESTORED)
    else:
        raise MalformedVector(NAME, at.entry.id, "no check for this entry")


check = checker(body)
