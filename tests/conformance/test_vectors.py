"""The implementation reproduces every value in conformance/vectors/*.json, from both sides.

The vectors are data (format: docs/PROTOCOL.md, "Test vectors"); this file only loads
them and feeds them to protocol/. The deterministic random source is
`conformance.drbg.Drbg`, itself pinned by drbg.json, so a vector, the generator and
the implementation have to agree with each other and with the spec.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from conformance.drbg import Drbg
from conformance.vectors import load
from protocol.e2e import aead, content, kdf, padding, pqxdh
from protocol.e2e import safety_numbers as fingerprint
from protocol.e2e.keys import (
    TYPE_ED25519,
    TYPE_MLKEM768,
    TYPE_X25519,
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    decode_key,
    encode_key,
    identity_dh_public,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
    verify_signature,
    x25519,
)
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage, RatchetMessage
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIP, MAX_SKIPPED_KEYS, Ratchet
from protocol.e2e.sealed import MessageKind, SealedContent, unseal
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire import frames
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from protocol.wire.usernames import check_username, decode_username

Json = dict[str, Any]


# ------------------------------------------------------------------------ the loader


def cases(name: str, *path: str) -> list[Any]:
    """The list at `path` in a vector file, as pytest parameters with readable ids."""
    node: Any = load(name)
    for step in path:
        node = node[step]
    params = []
    for index, entry in enumerate(node):
        label = str(index)
        if isinstance(entry, dict):
            label = str(entry.get("name") or entry.get("description") or entry.get("username")
                        or index)
        params.append(pytest.param(entry, id=f"{index}-{label}"[:60]))
    return params


def b(value: str) -> bytes:
    return bytes.fromhex(value)


def raises(name: str, call: Callable[[], object]) -> None:
    """`call` raises exactly the protocol exception class called `name`."""
    with pytest.raises(ProtocolError) as info:
        call()
    assert type(info.value).__name__ == name


def recorded_encapsulation(ct: bytes, ss: bytes, public: bytes) -> pqxdh.Encapsulate:
    """Stands in for ML-KEM-768.Encaps, which takes no injected randomness."""

    def encapsulate(key: bytes) -> tuple[bytes, bytes]:
        assert key == public, "encapsulating to the wrong KEM key"
        return ct, ss

    return encapsulate


def never_encapsulate(_key: bytes) -> tuple[bytes, bytes]:
    raise AssertionError("encapsulated to a bundle that does not verify")


def never_rng(_n: int) -> bytes:
    raise AssertionError("drew randomness for a bundle that does not verify")


def identity_from(entry: Json) -> IdentityKeyPair:
    key = IdentityKeyPair.from_seed(b(entry["seed"]))
    assert key.public == b(entry["public"])
    assert key.dh_private() == b(entry["x25519_private"])
    assert key.dh_public() == b(entry["x25519_public"])
    return key


class BobKeys:
    """Bob's private keys as a vector lists them, with the lookup Session.respond needs."""

    def __init__(self, entry: Json) -> None:
        self.identity = identity_from(entry["identity"])
        self.spk_id = entry["signed_prekey_id"]
        self.spk = X25519KeyPair.from_private(b(entry["signed_prekey_private"]))
        self.kem_id = entry["kem_prekey_id"]
        self.kem_kind = KemKind(entry["kem_kind"])
        self.kem = KemKeyPair.from_seed(b(entry["kem_prekey_seed"]))
        self.opk_id = entry["one_time_prekey_id"]
        private = entry["one_time_prekey_private"]
        self.opk = None if private is None else X25519KeyPair.from_private(b(private))

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        assert msg.signed_prekey_id == self.spk_id
        assert msg.kem_prekey_id == self.kem_id
        assert msg.kem_kind is self.kem_kind
        assert msg.one_time_prekey_id == self.opk_id
        return PrivatePrekeys(self.spk, self.kem, self.opk)


# -------------------------------------------------------------------------- drbg.json


@pytest.mark.parametrize("case", cases("drbg", "cases"))
def test_drbg(case: Json) -> None:
    rng = Drbg(case["label"])
    for draw in case["draws"]:
        assert rng(draw["n"]) == b(draw["output"])


# -------------------------------------------------------------------------- keys.json


def test_type_bytes() -> None:
    types = load("keys")["type_bytes"]
    expected = (types["ed25519"], types["x25519"], types["mlkem768"])
    assert expected == (TYPE_ED25519, TYPE_X25519, TYPE_MLKEM768)
    assert len({TYPE_ED25519, TYPE_X25519, TYPE_MLKEM768}) == 3


@pytest.mark.parametrize("entry", cases("keys", "ed25519"))
def test_ed25519(entry: Json) -> None:
    key = IdentityKeyPair.from_seed(b(entry["seed"]))
    assert key.public == b(entry["public"])
    assert key.encoded_public() == b(entry["encoded"]) == bytes((TYPE_ED25519,)) + key.public
    assert decode_key(TYPE_ED25519, b(entry["encoded"])) == key.public
    assert key.dh_private() == b(entry["x25519_private"])
    assert key.dh_public() == identity_dh_public(key.public) == b(entry["x25519_public"])
    # The converted private key belongs to the converted public key.
    assert X25519KeyPair.from_private(key.dh_private()).public == key.dh_public()
    assert key.sign(b(entry["message"])) == b(entry["signature"])
    verify_signature(key.public, b(entry["signature"]), b(entry["message"]))


def test_ed25519_seeds_come_from_the_drbg() -> None:
    data = load("keys")
    rng = Drbg(data["rng"]["ed25519"])
    for entry in data["ed25519"]:
        if entry["name"].startswith("drbg_"):
            assert rng(32) == b(entry["seed"])


@pytest.mark.parametrize("entry", cases("keys", "x25519"))
def test_x25519(entry: Json) -> None:
    pair = X25519KeyPair.from_private(b(entry["private"]))
    assert pair.public == b(entry["public"])
    assert pair.encoded_public() == b(entry["encoded"]) == bytes((TYPE_X25519,)) + pair.public
    assert decode_key(TYPE_X25519, b(entry["encoded"])) == pair.public


def test_x25519_privates_come_from_the_drbg() -> None:
    data = load("keys")
    rng = Drbg(data["rng"]["x25519"])
    for entry in data["x25519"]:
        if entry["name"].startswith("drbg_"):
            assert X25519KeyPair.generate(rng).private == b(entry["private"])


@pytest.mark.parametrize("entry", cases("keys", "x25519_dh"))
def test_x25519_dh(entry: Json) -> None:
    private, peer = b(entry["private"]), b(entry["peer_public"])
    if "error" in entry:
        raises(entry["error"], lambda: x25519(private, peer))
    else:
        assert x25519(private, peer) == b(entry["shared"])


@pytest.mark.parametrize("entry", cases("keys", "mlkem768"))
def test_mlkem768(entry: Json) -> None:
    pair = KemKeyPair.from_seed(b(entry["seed"]))
    assert pair.public == b(entry["public"])
    assert pair.encoded_public() == b(entry["encoded"]) == bytes((TYPE_MLKEM768,)) + pair.public
    assert decode_key(TYPE_MLKEM768, b(entry["encoded"])) == pair.public
    assert pair.decapsulate(b(entry["kem_ciphertext"])) == b(entry["kem_shared_secret"])


def test_mlkem768_seeds_come_from_the_drbg() -> None:
    data = load("keys")
    rng = Drbg(data["rng"]["mlkem768"])
    for entry in data["mlkem768"]:
        assert KemKeyPair.generate(rng).seed == b(entry["seed"])


@pytest.mark.parametrize("entry", cases("keys", "decode_errors"))
def test_key_decode_errors(entry: Json) -> None:
    raises(entry["error"], lambda: decode_key(entry["expected_type"], b(entry["encoded"])))


@pytest.mark.parametrize("entry", cases("keys", "conversion_errors"))
def test_key_conversion_errors(entry: Json) -> None:
    raises(entry["error"], lambda: identity_dh_public(b(entry["ed25519_public"])))


# --------------------------------------------------------------------------- kdf.json


def test_info_strings() -> None:
    info = load("kdf")["info"]
    assert info["pqxdh"].encode("ascii") == kdf.PQXDH_INFO
    assert info["root_chain"].encode("ascii") == kdf.ROOT_INFO
    assert info["message_keys"].encode("ascii") == kdf.MESSAGE_KEYS_INFO
    assert load("pqxdh")["info"] == info["pqxdh"]


def test_kdf_functions() -> None:
    data = load("kdf")
    for e in data["kdf_rk"]:
        assert kdf.kdf_rk(b(e["root_key"]), b(e["dh_output"])) == (
            b(e["new_root_key"]), b(e["chain_key"]))
    for e in data["kdf_ck"]:
        assert kdf.kdf_ck(b(e["chain_key"])) == (b(e["next_chain_key"]), b(e["message_key"]))
    for e in data["message_keys"]:
        assert kdf.message_keys(b(e["message_key"])) == (
            b(e["enc_key"]), b(e["auth_key"]), b(e["iv"]))
    for e in data["pqxdh_kdf"]:
        assert kdf.pqxdh_kdf(b(e["key_material"])) == b(e["sk"])


@pytest.mark.parametrize("entry", cases("kdf", "aead"))
def test_aead(entry: Json) -> None:
    mk, plaintext, ad = b(entry["message_key"]), b(entry["plaintext"]), b(entry["associated_data"])
    assert aead.encrypt(mk, plaintext, ad) == b(entry["output"])
    assert aead.decrypt(mk, b(entry["output"]), ad) == plaintext


@pytest.mark.parametrize("entry", cases("kdf", "aead_failures"))
def test_aead_failures(entry: Json) -> None:
    raises(entry["error"], lambda: aead.decrypt(
        b(entry["message_key"]), b(entry["data"]), b(entry["associated_data"])))


# ------------------------------------------------------------------------ bundle.json


def test_prekey_records() -> None:
    data = load("bundle")
    bob = identity_from(data["identity"])
    assert bob.seed == Drbg(data["rng"]["identity"])(32)

    spk = data["signed_prekey"]
    assert X25519KeyPair.from_private(b(spk["private"])).public == b(spk["public"])
    assert b(spk["signed_message"]) == encode_key(TYPE_X25519, b(spk["public"]))
    assert bob.sign(b(spk["signed_message"])) == b(spk["signature"])
    record = SignedPreKey(spk["id"], b(spk["public"]), b(spk["signature"]))
    assert record.encode() == b(spk["record"])
    assert len(record.encode()) == 101
    assert SignedPreKey.decode(b(spk["record"])) == record
    record.verify(bob.public)

    for kem in data["kem_prekeys"]:
        pair = KemKeyPair.from_seed(b(kem["seed"]))
        assert pair.public == b(kem["public"])
        assert b(kem["signed_message"]) == encode_key(TYPE_MLKEM768, pair.public)
        assert bob.sign(b(kem["signed_message"])) == b(kem["signature"])
        kem_record = KemPreKey(kem["id"], pair.public, b(kem["signature"]))
        assert kem_record.encode() == b(kem["record"])
        assert len(kem_record.encode()) == 1253
        assert KemPreKey.decode(b(kem["record"])) == kem_record
        kem_record.verify(bob.public)

    opk = data["one_time_prekey"]
    assert X25519KeyPair.from_private(b(opk["private"])).public == b(opk["public"])
    opk_record = OneTimePreKey(opk["id"], b(opk["public"]))
    assert opk_record.encode() == b(opk["record"])
    assert len(opk_record.encode()) == 37
    assert OneTimePreKey.decode(b(opk["record"])) == opk_record


def test_prekeys_come_from_the_drbg() -> None:
    """make_* draw in the documented order: SPK, last-resort KEM, one-time KEM, OPK."""
    data = load("bundle")
    bob = IdentityKeyPair.from_seed(b(data["identity"]["seed"]))
    rng = Drbg(data["rng"]["prekeys"])
    last_resort, one_time = data["kem_prekeys"]
    made = [
        make_signed_prekey(bob, data["signed_prekey"]["id"], rng)[1].encode(),
        make_kem_prekey(bob, last_resort["id"], rng)[1].encode(),
        make_kem_prekey(bob, one_time["id"], rng)[1].encode(),
        make_one_time_prekey(data["one_time_prekey"]["id"], rng)[1].encode(),
    ]
    assert made == [b(data["signed_prekey"]["record"]), b(last_resort["record"]),
                    b(one_time["record"]), b(data["one_time_prekey"]["record"])]


@pytest.mark.parametrize("entry", cases("bundle", "bundles"))
def test_bundle(entry: Json) -> None:
    data = load("bundle")
    bundle = PreKeyBundle.decode(b(entry["encoded"]))
    assert bundle.encode() == b(entry["encoded"])
    bundle.verify()
    assert bundle.identity == b(data["identity"]["public"])
    assert bundle.signed_prekey.encode() == b(data["signed_prekey"]["record"])
    assert bundle.kem_kind == entry["kem_kind"]
    assert bundle.kem_prekey.key_id == entry["kem_prekey_id"]
    kem = next(k for k in data["kem_prekeys"] if k["id"] == entry["kem_prekey_id"])
    assert bundle.kem_prekey.encode() == b(kem["record"])
    assert kem["kind"] == entry["kem_kind"]
    if entry["one_time_prekey_id"] is None:
        assert bundle.one_time_prekey is None
    else:
        assert bundle.one_time_prekey is not None
        assert bundle.one_time_prekey.encode() == b(data["one_time_prekey"]["record"])


@pytest.mark.parametrize("entry", cases("bundle", "invalid_signatures"))
def test_bundle_invalid_signature(entry: Json) -> None:
    bundle = PreKeyBundle.decode(b(entry["encoded"]))
    raises(entry["error"], bundle.verify)
    alice = IdentityKeyPair.from_seed(bytes(32))
    # The initiator aborts before it encapsulates or draws an ephemeral key.
    raises(entry["error"], lambda: pqxdh.initiate(alice, bundle, never_rng, never_encapsulate))
    raises(entry["error"], lambda: Session.initiate(alice, bundle, never_rng, never_encapsulate))


@pytest.mark.parametrize("entry", cases("bundle", "decode_errors"))
def test_bundle_decode_errors(entry: Json) -> None:
    raises(entry["error"], lambda: PreKeyBundle.decode(b(entry["encoded"])))


# ------------------------------------------------------------------------- pqxdh.json


@pytest.mark.parametrize("case", cases("pqxdh", "cases"))
def test_pqxdh_initiator(case: Json) -> None:
    alice = identity_from(case["alice"])
    bundle = PreKeyBundle.decode(b(case["bundle"]))
    ct, ss = b(case["kem_ciphertext"]), b(case["kem_shared_secret"])
    encapsulate = recorded_encapsulation(ct, ss, bundle.kem_prekey.public)
    init = pqxdh.initiate(alice, bundle, Drbg(case["rng"]["alice"]), encapsulate)

    ephemeral = X25519KeyPair.from_private(b(case["ephemeral_private"]))
    assert ephemeral.private == Drbg(case["rng"]["alice"])(32)
    assert ephemeral.public == b(case["ephemeral_public"])
    assert [d.hex() for d in init.agreement.dh] == case["dh"]
    assert len(case["dh"]) == (4 if bundle.one_time_prekey is not None else 3)
    assert b(case["ikm"]) == b"\xff" * 32 + b"".join(init.agreement.dh) + ss
    assert init.agreement.kem_shared_secret == ss
    assert init.agreement.sk == b(case["sk"])
    assert kdf.hkdf(bytes(32), b(case["ikm"]), kdf.PQXDH_INFO, 32) == b(case["sk"])
    assert init.agreement.ad == b(case["ad"]) == (
        encode_key(TYPE_ED25519, alice.public) + encode_key(TYPE_ED25519, bundle.identity))
    assert init.signed_prekey == bundle.signed_prekey.public
    assert init.prefix == b(case["prekey_prefix"])


@pytest.mark.parametrize("case", cases("pqxdh", "cases"))
def test_pqxdh_responder(case: Json) -> None:
    bob = BobKeys(case["bob"])
    message = PreKeyMessage.decode(b(case["first_message"]["message"]))
    assert message.encode_prefix() == b(case["prekey_prefix"])
    assert message.identity == b(case["alice"]["public"])
    assert message.ephemeral == b(case["ephemeral_public"])
    assert message.kem_ciphertext == b(case["kem_ciphertext"])
    assert (message.signed_prekey_id, message.kem_kind, message.kem_prekey_id,
            message.one_time_prekey_id) == (bob.spk_id, bob.kem_kind, bob.kem_id, bob.opk_id)
    agreement = pqxdh.respond(bob.identity, message, bob.spk, bob.kem, bob.opk)
    assert [d.hex() for d in agreement.dh] == case["dh"]
    assert agreement.kem_shared_secret == b(case["kem_shared_secret"])
    assert agreement.sk == b(case["sk"])
    assert agreement.ad == b(case["ad"])


@pytest.mark.parametrize("case", cases("pqxdh", "cases"))
def test_pqxdh_first_message(case: Json) -> None:
    alice = identity_from(case["alice"])
    bob = BobKeys(case["bob"])
    bundle = PreKeyBundle.decode(b(case["bundle"]))
    first = case["first_message"]
    encapsulate = recorded_encapsulation(b(case["kem_ciphertext"]), b(case["kem_shared_secret"]),
                                         bundle.kem_prekey.public)
    session = Session.initiate(alice, bundle, Drbg(case["rng"]["alice"]), encapsulate)
    assert session.ratchet.dhs.private == b(first["alice_ratchet_private"])
    assert session.ratchet.dhs.public == b(first["alice_ratchet_public"])
    kind, message = session.encrypt(b(first["plaintext"]))
    assert (int(kind), message) == (first["kind"], b(first["message"]))

    received, plaintext, consumed = Session.respond(bob.identity, message, bob.lookup,
                                                    Drbg(case["rng"]["bob"]))
    assert plaintext == b(first["plaintext"])
    assert received.ratchet.dhs.private == b(first["bob_ratchet_private"])
    assert received.ratchet.dhs.public == b(first["bob_ratchet_public"])
    assert received.base_key == b(case["ephemeral_public"])
    assert (consumed.one_time_prekey_id, consumed.kem_prekey_id) == (
        case["consumed"]["one_time_prekey_id"], case["consumed"]["kem_prekey_id"])


@pytest.mark.parametrize("entry", cases("pqxdh", "failures"))
def test_pqxdh_failures(entry: Json) -> None:
    case = next(c for c in load("pqxdh")["cases"] if c["name"] == entry["case"])
    bob = BobKeys(case["bob"])
    raises(entry["error"], lambda: Session.respond(
        bob.identity, b(entry["message"]), bob.lookup, Drbg(case["rng"]["bob"])))


# ------------------------------------------------------------------ conversation.json


def ratchet_view(r: Ratchet) -> Json:
    return {
        "dhs_private": r.dhs.private.hex(),
        "dhs_public": r.dhs.public.hex(),
        "dhr": None if r.dhr is None else r.dhr.hex(),
        "rk": r.rk.hex(),
        "cks": None if r.cks is None else r.cks.hex(),
        "ckr": None if r.ckr is None else r.ckr.hex(),
        "ns": r.ns,
        "nr": r.nr,
        "pn": r.pn,
        "skipped": [{"dh": dh.hex(), "n": n, "mk": mk.hex()} for (dh, n), mk in r.skipped.items()],
        "retired": [k.hex() for k in r.retired],
    }


def session_view(s: Session) -> Json:
    return {
        "peer_identity": s.peer_identity.hex(),
        "pending_prefix": s.pending_prefix is not None,
        "base_key": None if s.base_key is None else s.base_key.hex(),
        "ratchet": ratchet_view(s.ratchet),
    }


def check_send(s: Session, event: Json, prefix: bytes) -> tuple[MessageKind, bytes]:
    r = s.ratchet
    assert r.cks == b(event["chain_key"])
    next_chain_key, mk = kdf.kdf_ck(b(event["chain_key"]))
    assert (next_chain_key, mk) == (b(event["next_chain_key"]), b(event["message_key"]))
    assert kdf.message_keys(mk) == (b(event["enc_key"]), b(event["auth_key"]), b(event["iv"]))
    padded = padding.pad(b(event["plaintext"]))
    assert padded == b(event["padded"])

    kind, wire = s.encrypt(b(event["plaintext"]))
    assert int(kind) == event["kind"]
    assert wire == b(event["wire"])
    ratchet_message = b(event["ratchet_message"])
    assert wire == (prefix if kind is MessageKind.PREKEY else b"") + ratchet_message

    header = b(event["header"]["encoded"])
    fields = Header(b(event["header"]["dh"]), event["header"]["pn"], event["header"]["n"])
    assert fields.encode() == header == ratchet_message[:HEADER_LEN]
    assert header[1 : HEADER_LEN - 8] == encode_key(TYPE_X25519, r.dhs.public)
    body = b(event["ciphertext"]) + b(event["mac"])
    assert ratchet_message[HEADER_LEN:] == body
    assert len(b(event["ciphertext"])) % padding.BUCKET == 0
    # ENCRYPT with CONCAT(AD, header) = AD || header, reproduced and reversed.
    assert aead.encrypt(mk, padded, r.ad + header) == body
    assert aead.decrypt(mk, body, r.ad + header) == padded
    assert r.cks == next_chain_key
    return kind, wire


@pytest.mark.parametrize("restore", [False, True], ids=["live", "restored-after-every-event"])
def test_conversation(restore: bool) -> None:
    data = load("conversation")
    alice = identity_from(data["alice"])
    bob = BobKeys(data["bob"])
    identities = {"alice": alice, "bob": bob.identity}
    bundle = PreKeyBundle.decode(b(data["bundle"]))
    setup = data["setup"]
    rngs = {name: Drbg(label) for name, label in data["rng"].items()}
    encapsulate = recorded_encapsulation(b(setup["kem_ciphertext"]), b(setup["kem_shared_secret"]),
                                         bundle.kem_prekey.public)

    alice_session = Session.initiate(alice, bundle, rngs["alice"], encapsulate)
    assert session_view(alice_session) == setup["alice_session"]
    assert alice_session.serialize() == b(setup["alice_state"])
    assert alice_session.pending_prefix == b(setup["prekey_prefix"])
    prefix = b(setup["prekey_prefix"])
    sessions: dict[str, Session | None] = {"alice": alice_session, "bob": None}
    if restore:
        sessions["alice"] = Session.deserialize(alice_session.serialize(), rngs["alice"])

    messages: dict[str, tuple[MessageKind, bytes]] = {}
    delivered = []
    for event in data["events"]:
        if event["op"] == "send":
            name = event["from"]
            sender = sessions[name]
            assert sender is not None
            messages[event["id"]] = check_send(sender, event, prefix)
        else:
            name = event["to"]
            kind, wire = messages[event["id"]]
            if "mutation" in event:
                wire = b(event["mutation"]["wire"])
            s = sessions[name]
            before = None if s is None else s.serialize()
            old_dhs = None if s is None else s.ratchet.dhs.public
            result = "ok"
            try:
                if s is None:
                    s, plaintext, consumed = Session.respond(identities[name], wire, bob.lookup,
                                                             rngs[name])
                    sessions[name] = s
                    expected = event["responds"]
                    agreement = pqxdh.respond(bob.identity, PreKeyMessage.decode(wire), bob.spk,
                                              bob.kem, bob.opk)
                    assert (agreement.sk, agreement.ad) == (b(expected["sk"]), b(expected["ad"]))
                    assert (agreement.sk, agreement.ad) == (b(setup["sk"]), b(setup["ad"]))
                    assert [consumed.one_time_prekey_id, consumed.kem_prekey_id] == [
                        expected["consumed"]["one_time_prekey_id"],
                        expected["consumed"]["kem_prekey_id"]]
                else:
                    plaintext = s.decrypt(kind, wire)
            except ProtocolError as exc:
                result = type(exc).__name__
                assert s is not None and s.serialize() == before, "a failure changed the state"
            assert result == event["result"], event["id"]
            assert s is not None
            if result == "ok":
                assert plaintext == b(event["plaintext"])
                delivered.append(event["id"])
            assert (s.ratchet.dhs.public != old_dhs) == event["dh_ratchet_step"]
        acting = sessions[name]
        assert acting is not None
        assert session_view(acting) == event["session"], (event["op"], event["id"])
        assert acting.serialize() == b(event["state"])
        if restore:
            sessions[name] = Session.deserialize(acting.serialize(), rngs[name])
    assert delivered == data["delivery_order"]


def test_conversation_covers_what_it_claims() -> None:
    """At least 12 messages, several DH ratchet steps on both sides, out-of-order
    delivery, skipped keys, and each kind of rejection."""
    events = load("conversation")["events"]
    sends = [e for e in events if e["op"] == "send"]
    delivers = [e for e in events if e["op"] == "deliver"]
    assert len(sends) >= 12
    assert {e["to"] for e in delivers if e["dh_ratchet_step"]} == {"alice", "bob"}
    assert sum(e["dh_ratchet_step"] for e in delivers) >= 4
    assert any(e["session"]["ratchet"]["skipped"] for e in delivers)
    order = [e["id"] for e in delivers if e["result"] == "ok"]
    assert order != sorted(order, key=lambda mid: (mid[0], int(mid[1:])))
    results = {e["result"] for e in delivers}
    assert {"DuplicateMessage", "DecryptionFailed", "TooManySkipped"} <= results


# ------------------------------------------------------------------------- state.json


def test_limits() -> None:
    limits = load("state")["limits"]
    expected = (limits["max_skip"], limits["max_skipped_keys"], limits["max_retired"])
    assert expected == (MAX_SKIP, MAX_SKIPPED_KEYS, MAX_RETIRED)


@pytest.mark.parametrize("entry", cases("state", "states"))
def test_state_layout(entry: Json) -> None:
    state = b(entry["state"])
    fields = [(seg["field"], b(seg["hex"])) for seg in entry["segments"]]
    assert b"".join(data for _, data in fields) == state
    session = Session.deserialize(state)
    assert session.serialize() == state
    r = session.ratchet
    single = {name: data for name, data in fields if not name.startswith("ratchet.skipped.")
              and name != "ratchet.retired.key"}
    assert single["version"] == b"\x01"
    assert single["ratchet.version"] == b"\x01"
    assert single["peer_identity"] == encode_key(TYPE_ED25519, session.peer_identity)
    assert single["pending_prefix"] == (session.pending_prefix or b"")
    assert single["base_key"] == (session.base_key or b"")
    assert int.from_bytes(single["ratchet_state_length"], "big") == len(r.serialize())
    assert single["ratchet.dhs_private"] == r.dhs.private
    assert single["ratchet.rk"] == r.rk
    for name, value in (("dhr", r.dhr), ("cks", r.cks), ("ckr", r.ckr)):
        assert single[f"ratchet.{name}"] == (b"\x00" if value is None else b"\x01" + value)
    for name, number in (("ns", r.ns), ("nr", r.nr), ("pn", r.pn)):
        assert int.from_bytes(single[f"ratchet.{name}"], "big") == number
    assert single["ratchet.ad"] == r.ad
    entries = [data for name, data in fields if name == "ratchet.skipped.entry"]
    assert entries == [dh + n.to_bytes(4, "big") + mk for (dh, n), mk in r.skipped.items()]
    assert [data for name, data in fields if name == "ratchet.retired.key"] == r.retired


@pytest.mark.parametrize("entry", cases("state", "decode_errors"))
def test_state_decode_errors(entry: Json) -> None:
    raises(entry["error"], lambda: Session.deserialize(b(entry["state"])))


# ---------------------------------------------------------------------- messages.json


@pytest.mark.parametrize("entry", cases("messages", "headers"))
def test_header(entry: Json) -> None:
    header = Header(b(entry["dh"]), entry["pn"], entry["n"])
    assert header.encode() == b(entry["encoded"])
    assert len(header.encode()) == HEADER_LEN == 42
    assert Header.decode(b(entry["encoded"])) == header


DECODERS: dict[str, Callable[[bytes], object]] = {
    "header": Header.decode,
    "ratchet_message": RatchetMessage.decode,
    "prekey_message": PreKeyMessage.decode,
}


@pytest.mark.parametrize("entry", cases("messages", "decode_errors"))
def test_message_decode_errors(entry: Json) -> None:
    raises(entry["error"], lambda: DECODERS[entry["layout"]](b(entry["encoded"])))


# ----------------------------------------------------------------------- padding.json


@pytest.mark.parametrize("entry", cases("padding", "valid"))
def test_padding(entry: Json) -> None:
    body, padded = b(entry["body"]), b(entry["padded"])
    assert padding.pad(body) == padded
    assert (len(padded) + 1) % load("padding")["bucket"] == 0
    assert padding.unpad(padded) == body


def test_padding_bodies_come_from_the_drbg() -> None:
    data = load("padding")
    rng = Drbg(data["rng"])
    for entry in data["valid"]:
        if "description" not in entry:
            assert rng(len(entry["body"]) // 2) == b(entry["body"])


@pytest.mark.parametrize("entry", cases("padding", "invalid"))
def test_padding_invalid(entry: Json) -> None:
    raises(entry["error"], lambda: padding.unpad(b(entry["padded"])))


# ---------------------------------------------------------------- safety_numbers.json


def digest_from_spec(identity: bytes, username: str, iterations: int) -> bytes:
    key = encode_key(TYPE_ED25519, identity)
    digest = (0).to_bytes(2, "big") + key + username.encode("ascii")
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    return digest


@pytest.mark.parametrize("entry", cases("safety_numbers", "cases"))
def test_safety_number(entry: Json) -> None:
    data = load("safety_numbers")
    expected = (data["version"], data["iterations"])
    assert expected == (fingerprint.FINGERPRINT_VERSION, fingerprint.ITERATIONS)
    a, ua = b(entry["identity_a"]), entry["username_a"]
    b_, ub = b(entry["identity_b"]), entry["username_b"]
    for key, user, side in ((a, ua, "a"), (b_, ub, "b")):
        digest = digest_from_spec(key, user, data["iterations"])
        assert digest == b(entry[f"digest_{side}"])
        assert fingerprint.fingerprint(key, user) == digest
        assert fingerprint.displayable(digest) == entry[f"digits_{side}"]
    number = entry["safety_number"]
    assert number == "".join(sorted((entry["digits_a"], entry["digits_b"])))
    assert fingerprint.safety_number(a, ua, b_, ub) == number
    assert fingerprint.safety_number(b_, ub, a, ua) == number
    assert fingerprint.format_safety_number(number) == entry["formatted"]
    assert fingerprint.qr_payload(a, ua, b_, ub) == entry["qr_payload"]
    assert fingerprint.qr_payload(b_, ub, a, ua) == entry["qr_payload"]


# ------------------------------------------------------------------------ sealed.json


@pytest.mark.parametrize("entry", cases("sealed", "cases"))
def test_sealed(entry: Json) -> None:
    recipient = identity_from(entry["recipient"])
    content = SealedContent(entry["sender"], MessageKind(entry["kind"]), b(entry["message"]))
    assert content.encode() == b(entry["content"])
    assert SealedContent.decode(b(entry["content"])) == content
    assert len(b(entry["sealed"])) == len(b(entry["content"])) + 48
    assert unseal(recipient, b(entry["sealed"])) == content


def test_sealed_malformed_content() -> None:
    entry = load("sealed")["malformed_box"]
    recipient = IdentityKeyPair.from_seed(b(entry["recipient_seed"]))
    raises(entry["error"], lambda: unseal(recipient, b(entry["sealed"])))


@pytest.mark.parametrize("entry", cases("sealed", "box_failures"))
def test_sealed_box_failures(entry: Json) -> None:
    recipient = IdentityKeyPair.from_seed(b(entry["recipient_seed"]))
    raises(entry["error"], lambda: unseal(recipient, b(entry["sealed"])))


@pytest.mark.parametrize("entry", cases("sealed", "content_errors"))
def test_sealed_content_errors(entry: Json) -> None:
    raises(entry["error"], lambda: SealedContent.decode(b(entry["content"])))


# --------------------------------------------------------------------- usernames.json


@pytest.mark.parametrize("name", load("usernames")["valid"])
def test_username_valid(name: str) -> None:
    assert check_username(name) == name
    assert decode_username(name.encode("ascii")) == name


@pytest.mark.parametrize("entry", cases("usernames", "invalid"))
def test_username_invalid(entry: Json) -> None:
    raises(entry["error"], lambda: check_username(entry["username"]))
    raises(entry["error"], lambda: decode_username(b(entry["utf8"])))


@pytest.mark.parametrize("entry", cases("usernames", "invalid_raw"))
def test_username_invalid_raw(entry: Json) -> None:
    raises(entry["error"], lambda: decode_username(b(entry["raw"])))


# ----------------------------------------------------------------------- content.json


@pytest.mark.parametrize("entry", cases("content", "valid"))
def test_content(entry: Json) -> None:
    encoded = b(entry["encoded"])
    item = content.decode_content(encoded)
    if entry["kind"] == "TEXT":
        expected: content.Content = content.Text(
            b(entry["message_id"]), entry["sent_at_ms"], entry["text"])
    else:
        expected = content.Receipt(content.ReceiptType[entry["receipt_type"]],
                                   tuple(b(m) for m in entry["message_ids"]))
    assert item == expected
    assert expected.encode() == encoded
    assert padding.pad(encoded) == b(entry["padded"])


@pytest.mark.parametrize("entry", cases("content", "invalid"))
def test_content_invalid(entry: Json) -> None:
    raises(entry["error"], lambda: content.decode_content(b(entry["encoded"])))


# ------------------------------------------------------------------------ frames.json


def test_frame_statements() -> None:
    data = load("frames")
    identity = IdentityKeyPair.from_seed(b(data["identity_seed"]))
    challenge = b(data["challenge"])
    assert frames.login_statement(data["server_url"], challenge, "alice") == b(
        data["login_statement"])
    assert frames.register_statement(data["server_url"], challenge, "alice",
                                     identity.public) == b(data["register_statement"])
    for case in data["normalize_url"]:
        assert frames.normalize_url(case["input"]) == case["normalized"]


@pytest.mark.parametrize("entry", cases("frames", "client_frames"))
def test_client_frame(entry: Json) -> None:
    encoded = b(entry["encoded"])
    request_id, frame = frames.decode_client_frame(encoded)
    assert (request_id, frame.TYPE) == (entry["request_id"], entry["type"])
    assert frames.encode_frame(frame, request_id) == encoded


@pytest.mark.parametrize("entry", cases("frames", "server_frames"))
def test_server_frame(entry: Json) -> None:
    encoded = b(entry["encoded"])
    request_id, frame = frames.decode_server_frame(encoded)
    assert (request_id, frame.TYPE) == (entry["request_id"], entry["type"])
    assert frames.encode_frame(frame, request_id) == encoded


def test_frame_signatures_verify() -> None:
    data = load("frames")
    by_name = {e["name"]: e for e in data["client_frames"]}
    _, register = frames.decode_client_frame(b(by_name["REGISTER"]["encoded"]))
    _, login = frames.decode_client_frame(b(by_name["LOGIN"]["encoded"]))
    assert isinstance(register, frames.Register) and isinstance(login, frames.Login)
    verify_signature(register.identity, register.signature, b(data["register_statement"]))
    verify_signature(register.identity, login.signature, b(data["login_statement"]))


@pytest.mark.parametrize("entry", cases("frames", "client_invalid"))
def test_client_frame_invalid(entry: Json) -> None:
    raises(entry["error"], lambda: frames.decode_client_frame(b(entry["encoded"])))
