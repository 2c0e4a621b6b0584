"""Regenerate the JSON test vectors in conformance/vectors/ from the implementation.

    .venv/bin/python -m conformance.vectors.generate            # rewrite the files
    .venv/bin/python -m conformance.vectors.generate --check    # exit 1 if a file would change
    .venv/bin/python -m conformance.vectors.generate --refresh  # also redo recorded values

All randomness is injected from the deterministic generator `Drbg` (docs/PROTOCOL.md,
"Test vectors": rng(n) returns the next n bytes of SHAKE-256(label)), so a run reproduces
every value except two kinds that no injected randomness reaches: ML-KEM-768
encapsulation (`cryptography` draws its own randomness) and libsodium's sealed box
(crypto_box_seal makes its own ephemeral key). Those outputs are *recorded*. A run keeps
each recorded value found in the existing files as long as it is still valid for the
regenerated keys (the ciphertext still decapsulates to the recorded shared secret, the
sealed box still opens to the regenerated content) and makes a fresh one otherwise;
`--refresh` discards them all. So running the script twice gives identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from conformance.drbg import Drbg
from protocol.e2e import content as msg_content
from protocol.e2e import kdf, padding, pqxdh, sealed
from protocol.e2e import safety_numbers as fingerprint
from protocol.e2e.aead import decrypt as aead_decrypt
from protocol.e2e.aead import encrypt as aead_encrypt
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
    kem_encapsulate,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
    x25519,
)
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage, RatchetMessage
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIP, MAX_SKIPPED_KEYS, Ratchet
from protocol.e2e.sealed import MessageKind, SealedContent
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire import frames
from protocol.wire.codec import u32
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind, PreKeyBundle
from protocol.wire.publickeys import X25519_P
from protocol.wire.usernames import check_username, decode_username

HERE = Path(__file__).resolve().parent
FORMAT = 1
LABEL = "blindrelay/vectors/v1/"

Json = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def h(data: bytes) -> str:
    return data.hex()


def oh(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def error_name(call: Callable[..., object], *args: Any) -> str:
    """The exception class name `call(*args)` raises (it must raise a ProtocolError)."""
    try:
        call(*args)
    except ProtocolError as exc:
        return type(exc).__name__
    raise AssertionError("expected a ProtocolError")


class Recorded:
    """Recorded outputs (ML-KEM encapsulations, sealed boxes) from the existing files."""

    def __init__(self, refresh: bool) -> None:
        self.old: dict[str, Json] = {}
        if not refresh:
            for path in HERE.glob("*.json"):
                self.old[path.stem] = json.loads(path.read_text())
        self.fresh = 0
        self.kept = 0

    def lookup(self, file: str, *path: str | int) -> Any:
        node: Any = self.old.get(file)
        for step in path:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return None
                node = node[step]
        return node

    def kem(self, key: KemKeyPair, old: Any) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for `key`: the recorded pair if it still fits."""
        if isinstance(old, dict):
            ct, ss = old.get("kem_ciphertext"), old.get("kem_shared_secret")
            if isinstance(ct, str) and isinstance(ss, str):
                try:
                    if key.decapsulate(bytes.fromhex(ct)) == bytes.fromhex(ss):
                        self.kept += 1
                        return bytes.fromhex(ct), bytes.fromhex(ss)
                except ProtocolError:
                    pass
        self.fresh += 1
        return kem_encapsulate(key.public)

    def seal(self, recipient: IdentityKeyPair, content: bytes, old: Any) -> bytes:
        if isinstance(old, str):
            try:
                opened = sodium.crypto_box_seal_open(
                    bytes.fromhex(old), recipient.dh_public(), recipient.dh_private()
                )
                if bytes(opened) == content:
                    self.kept += 1
                    return bytes.fromhex(old)
            except Exception:  # any failure means: make a new box
                pass
        self.fresh += 1
        return bytes(sodium.crypto_box_seal(content, recipient.dh_public()))


def fixed_encapsulation(ct: bytes, ss: bytes, expected_public: bytes) -> pqxdh.Encapsulate:
    def encapsulate(public: bytes) -> tuple[bytes, bytes]:
        assert public == expected_public, "encapsulating to an unexpected KEM key"
        return ct, ss

    return encapsulate


# ------------------------------------------------------------------ shared key material


def identity(name: str) -> IdentityKeyPair:
    return IdentityKeyPair.generate(Drbg(f"{LABEL}identity/{name}"))


def identity_json(key: IdentityKeyPair) -> Json:
    return {
        "seed": h(key.seed),
        "public": h(key.public),
        "x25519_private": h(key.dh_private()),
        "x25519_public": h(key.dh_public()),
    }


class BobKeys:
    """Bob's prekeys, drawn in this order from DRBG(LABEL + "prekeys/bob"):
    signed prekey (32 bytes), last-resort KEM seed (64), one-time KEM seed (64),
    one-time X25519 prekey (32)."""

    SPK_ID = 1
    KEM_LAST_RESORT_ID = 2
    KEM_ONE_TIME_ID = 101
    OPK_ID = 1001

    def __init__(self) -> None:
        self.identity = identity("bob")
        self.label = f"{LABEL}prekeys/bob"
        rng = Drbg(self.label)
        self.spk, self.spk_pub = make_signed_prekey(self.identity, self.SPK_ID, rng)
        self.kem_lr, self.kem_lr_pub = make_kem_prekey(self.identity, self.KEM_LAST_RESORT_ID, rng)
        self.kem_ot, self.kem_ot_pub = make_kem_prekey(self.identity, self.KEM_ONE_TIME_ID, rng)
        self.opk, self.opk_pub = make_one_time_prekey(self.OPK_ID, rng)

    def bundle(self, one_time_kem: bool, with_opk: bool) -> PreKeyBundle:
        return PreKeyBundle(
            self.identity.public,
            self.spk_pub,
            KemKind.ONE_TIME if one_time_kem else KemKind.LAST_RESORT,
            self.kem_ot_pub if one_time_kem else self.kem_lr_pub,
            self.opk_pub if with_opk else None,
        )

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        assert msg.signed_prekey_id == self.SPK_ID
        kem = {self.KEM_ONE_TIME_ID: self.kem_ot, self.KEM_LAST_RESORT_ID: self.kem_lr}
        opk = None
        if msg.one_time_prekey_id is not None:
            assert msg.one_time_prekey_id == self.OPK_ID
            opk = self.opk
        return PrivatePrekeys(self.spk, kem[msg.kem_prekey_id], opk)

    def private_json(self, bundle: PreKeyBundle) -> Json:
        kem = self.kem_ot if bundle.kem_kind is KemKind.ONE_TIME else self.kem_lr
        return {
            "identity": identity_json(self.identity),
            "signed_prekey_id": self.SPK_ID,
            "signed_prekey_private": h(self.spk.private),
            "kem_prekey_id": bundle.kem_prekey.key_id,
            "kem_kind": int(bundle.kem_kind),
            "kem_prekey_seed": h(kem.seed),
            "one_time_prekey_id": None if bundle.one_time_prekey is None else self.OPK_ID,
            "one_time_prekey_private": None if bundle.one_time_prekey is None
            else h(self.opk.private),
        }


# ------------------------------------------------------------------------- drbg.json


def gen_drbg() -> Json:
    cases = []
    for label, sizes in ((f"{LABEL}drbg/example", (32, 32, 64, 1, 7)), ("", (16,))):
        rng = Drbg(label)
        cases.append({
            "label": label,
            "draws": [{"n": n, "output": h(rng(n))} for n in sizes],
        })
    return {
        "description": "The deterministic random source of all vectors: rng(n) returns the "
        "next n bytes of SHAKE-256(ASCII label).",
        "format": FORMAT,
        "cases": cases,
    }


# ------------------------------------------------------------------------- keys.json


RFC8032_TEST1_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_TEST1_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC7748_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
RFC7748_BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
RFC7748_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def gen_keys(rec: Recorded) -> Json:
    ed_label, x_label, kem_label = (f"{LABEL}keys/ed25519", f"{LABEL}keys/x25519",
                                    f"{LABEL}keys/mlkem768")
    ed_rng, x_rng, kem_rng = Drbg(ed_label), Drbg(x_label), Drbg(kem_label)
    message = b"blindrelay"

    ed_seeds = [(f"drbg_{i}", ed_rng(32)) for i in range(3)]
    ed_seeds += [("rfc8032_test1", bytes.fromhex(RFC8032_TEST1_SEED)), ("zero_seed", bytes(32))]
    ed = []
    for name, seed in ed_seeds:
        key = IdentityKeyPair.from_seed(seed)
        if name == "rfc8032_test1":
            assert key.public.hex() == RFC8032_TEST1_PUBLIC
        ed.append({
            "name": name,
            "seed": h(seed),
            "public": h(key.public),
            "encoded": h(key.encoded_public()),
            "x25519_private": h(key.dh_private()),
            "x25519_public": h(key.dh_public()),
            "message": h(message),
            "signature": h(key.sign(message)),
        })

    x_privates = [(f"drbg_{i}", x_rng(32)) for i in range(3)]
    x_privates += [("rfc7748_alice", bytes.fromhex(RFC7748_ALICE)),
                   ("rfc7748_bob", bytes.fromhex(RFC7748_BOB))]
    xs = []
    pairs = {}
    for name, private in x_privates:
        pair = X25519KeyPair.from_private(private)
        pairs[name] = pair
        xs.append({"name": name, "private": h(private), "public": h(pair.public),
                   "encoded": h(pair.encoded_public())})
    shared = pairs["rfc7748_alice"].dh(pairs["rfc7748_bob"].public)
    assert shared.hex() == RFC7748_SHARED
    dh = [
        {"private": h(pairs["rfc7748_alice"].private),
         "peer_public": h(pairs["rfc7748_bob"].public), "shared": h(shared)},
        {"private": h(pairs["drbg_0"].private), "peer_public": h(pairs["drbg_1"].public),
         "shared": h(pairs["drbg_0"].dh(pairs["drbg_1"].public))},
    ]
    for low_order in (bytes(32), (1).to_bytes(32, "little")):
        dh.append({"private": h(pairs["drbg_0"].private), "peer_public": h(low_order),
                   "error": error_name(x25519, pairs["drbg_0"].private, low_order)})

    kems = []
    for i in range(2):
        kem_pair = KemKeyPair.from_seed(kem_rng(64))
        ct, ss = rec.kem(kem_pair, rec.lookup("keys", "mlkem768", i))
        kems.append({
            "name": f"drbg_{i}",
            "seed": h(kem_pair.seed),
            "public": h(kem_pair.public),
            "encoded": h(kem_pair.encoded_public()),
            "kem_ciphertext": h(ct),
            "kem_shared_secret": h(ss),
        })

    some_x = pairs["drbg_0"].public
    some_ed = bytes.fromhex(ed[0]["public"])
    some_kem = bytes.fromhex(kems[0]["public"])
    decode_errors = [
        ("X25519 encoding read as Ed25519", TYPE_ED25519, encode_key(TYPE_X25519, some_x)),
        ("Ed25519 encoding read as X25519", TYPE_X25519, encode_key(TYPE_ED25519, some_ed)),
        ("X25519 encoding read as ML-KEM-768", TYPE_MLKEM768, encode_key(TYPE_X25519, some_x)),
        ("ML-KEM-768 encoding read as X25519", TYPE_X25519, encode_key(TYPE_MLKEM768, some_kem)),
        ("first 33 bytes of an ML-KEM-768 encoding read as X25519", TYPE_X25519,
         encode_key(TYPE_MLKEM768, some_kem)[:33]),
        ("X25519 key one byte short", TYPE_X25519, bytes((TYPE_X25519,)) + some_x[:31]),
        ("X25519 key one byte long", TYPE_X25519, bytes((TYPE_X25519,)) + some_x + b"\x00"),
        ("ML-KEM-768 key one byte short", TYPE_MLKEM768, encode_key(TYPE_MLKEM768, some_kem)[:-1]),
        ("non-canonical X25519 key: u = 2^255 - 19", TYPE_X25519,
         bytes((TYPE_X25519,)) + X25519_P.to_bytes(32, "little")),
        ("non-canonical X25519 key: top bit set", TYPE_X25519,
         bytes((TYPE_X25519,)) + some_x[:31] + bytes((some_x[31] | 0x80,))),
        ("empty", TYPE_ED25519, b""),
        ("type byte only", TYPE_ED25519, bytes((TYPE_ED25519,))),
    ]
    errors = []
    for description, expected, encoded in decode_errors:
        errors.append({
            "description": description,
            "expected_type": expected,
            "encoded": h(encoded),
            "error": error_name(decode_key, expected, encoded),
        })

    conversion_errors = []
    for description, point in (
        ("neutral element (y = 1)", "01" + "00" * 31),
        ("point of order 4 (y = 0)", "00" * 32),
        ("point of order 2 (y = -1)", "ec" + "ff" * 30 + "7f"),
    ):
        conversion_errors.append({
            "description": description,
            "ed25519_public": point,
            "error": error_name(identity_dh_public, bytes.fromhex(point)),
        })

    return {
        "description": "Key encodings Encode(PK) = type byte || raw key, Ed25519 -> X25519 "
        "conversion, X25519, ML-KEM-768 from 64-byte seeds.",
        "format": FORMAT,
        "rng": {"ed25519": ed_label, "x25519": x_label, "mlkem768": kem_label},
        "type_bytes": {"ed25519": TYPE_ED25519, "x25519": TYPE_X25519,
                       "mlkem768": TYPE_MLKEM768},
        "ed25519": ed,
        "x25519": xs,
        "x25519_dh": dh,
        "mlkem768": kems,
        "decode_errors": errors,
        "conversion_errors": conversion_errors,
    }


# ----------------------------------------------------------------------- bundle.json


def gen_bundle(bob: BobKeys, alice: IdentityKeyPair) -> Json:
    spk, kem_lr, kem_ot, opk = bob.spk_pub, bob.kem_lr_pub, bob.kem_ot_pub, bob.opk_pub
    bundles = []
    for name, one_time, with_opk in (
        ("one_time_kem_with_opk", True, True),
        ("one_time_kem_without_opk", True, False),
        ("last_resort_kem_with_opk", False, True),
        ("last_resort_kem_without_opk", False, False),
    ):
        bundle = bob.bundle(one_time, with_opk)
        bundle.verify()
        bundles.append({
            "name": name,
            "kem_kind": int(bundle.kem_kind),
            "kem_prekey_id": bundle.kem_prekey.key_id,
            "one_time_prekey_id": None if bundle.one_time_prekey is None
            else bundle.one_time_prekey.key_id,
            "encoded": h(bundle.encode()),
        })

    base = bob.bundle(True, True)
    encoded = base.encode()
    # Offsets into `encoded` (see the bundle layout in docs/PROTOCOL.md).
    spk_at = 1 + 33
    spk_key_at, spk_sig_at = spk_at + 4 + 1, spk_at + 4 + 33
    kem_at = spk_at + 101 + 1
    kem_key_at, kem_sig_at = kem_at + 4 + 1, kem_at + 4 + 1185
    raw_sig = bob.identity.sign(spk.public)  # over the raw key, without the type byte
    invalid = [
        ("signed prekey signature, first bit flipped", flip(encoded, spk_sig_at)),
        ("signed prekey, one bit of the key flipped", flip(encoded, spk_key_at + 7, 0x10)),
        ("KEM prekey signature, last bit flipped", flip(encoded, kem_sig_at + 63, 0x80)),
        ("KEM prekey, one bit of the key flipped", flip(encoded, kem_key_at + 600)),
        ("signed prekey signature over the raw key instead of Encode(key)",
         encoded[:spk_sig_at] + raw_sig + encoded[spk_sig_at + 64 :]),
        ("KEM prekey signed by another identity",
         encoded[:kem_sig_at] + alice.sign(bob.kem_ot.encoded_public())
         + encoded[kem_sig_at + 64 :]),
        ("identity replaced by another identity",
         encoded[:1] + encode_key(TYPE_ED25519, alice.public) + encoded[34:]),
    ]
    invalid_json = []
    for description, data in invalid:
        decoded = PreKeyBundle.decode(data)
        invalid_json.append({"description": description, "encoded": h(data),
                             "error": error_name(decoded.verify)})

    no_opk = bob.bundle(True, False).encode()
    decode_errors = [
        ("unknown bundle version 2", b"\x02" + encoded[1:]),
        ("identity with the X25519 type byte", encoded[:1] + b"\x05" + encoded[2:]),
        ("signed prekey with the Ed25519 type byte", flip(encoded, spk_at + 4, 0x05 ^ 0x01)),
        ("unknown KEM kind 3", encoded[: kem_at - 1] + b"\x03" + encoded[kem_at:]),
        ("KEM prekey with the X25519 type byte", flip(encoded, kem_at + 4, 0x0A ^ 0x05)),
        ("one-time prekey flag 2", no_opk[:-1] + b"\x02"),
        ("flag says one-time prekey, none follows", no_opk[:-1] + b"\x01"),
        ("flag says no one-time prekey, one follows", no_opk + opk.encode()),
        ("one trailing byte", encoded + b"\x00"),
        ("last byte missing", encoded[:-1]),
        ("empty", b""),
    ]
    decode_json = []
    for description, data in decode_errors:
        decode_json.append({"description": description, "encoded": h(data),
                            "error": error_name(PreKeyBundle.decode, data)})

    def kem_json(pair: KemKeyPair, record: Any, kind: KemKind) -> Json:
        return {"id": record.key_id, "kind": int(kind), "seed": h(pair.seed),
                "public": h(record.public), "signed_message": h(pair.encoded_public()),
                "signature": h(record.signature), "record": h(record.encode())}

    return {
        "description": "Prekey records, their signatures Sig(IK_B, Encode(PK)), and bundles.",
        "format": FORMAT,
        "rng": {"identity": f"{LABEL}identity/bob", "prekeys": bob.label},
        "identity": identity_json(bob.identity),
        "signed_prekey": {"id": spk.key_id, "private": h(bob.spk.private),
                          "public": h(spk.public), "signed_message": h(bob.spk.encoded_public()),
                          "signature": h(spk.signature), "record": h(spk.encode())},
        "kem_prekeys": [kem_json(bob.kem_lr, kem_lr, KemKind.LAST_RESORT),
                        kem_json(bob.kem_ot, kem_ot, KemKind.ONE_TIME)],
        "one_time_prekey": {"id": opk.key_id, "private": h(bob.opk.private),
                            "public": h(opk.public), "record": h(opk.encode())},
        "bundles": bundles,
        "invalid_signatures": invalid_json,
        "decode_errors": decode_json,
    }


# ------------------------------------------------------------------------ pqxdh.json


def gen_pqxdh(rec: Recorded, bob: BobKeys, alice: IdentityKeyPair) -> Json:
    cases = []
    mallory = identity("mallory")
    failures = []
    for index, (name, one_time, with_opk) in enumerate((
        ("one_time_kem_with_opk", True, True),
        ("last_resort_kem_without_opk", False, False),
    )):
        bundle = bob.bundle(one_time, with_opk)
        kem_pair = bob.kem_ot if one_time else bob.kem_lr
        ct, ss = rec.kem(kem_pair, rec.lookup("pqxdh", "cases", index))
        alice_label, bob_label = f"{LABEL}pqxdh/{name}/alice", f"{LABEL}pqxdh/{name}/bob"

        init = pqxdh.initiate(alice, bundle, Drbg(alice_label),
                              fixed_encapsulation(ct, ss, bundle.kem_prekey.public))
        ephemeral = X25519KeyPair.generate(Drbg(alice_label))
        agreement = init.agreement
        ikm = b"\xff" * 32 + b"".join(agreement.dh) + ss
        assert kdf.hkdf(kdf.ZERO_SALT, ikm, kdf.PQXDH_INFO, 32) == agreement.sk

        alice_rng = Drbg(alice_label)
        session = Session.initiate(alice, bundle, alice_rng,
                                   fixed_encapsulation(ct, ss, bundle.kem_prekey.public))
        assert session.pending_prefix == init.prefix
        plaintext = f"first message ({name})".encode()
        kind, message = session.encrypt(plaintext)

        msg = PreKeyMessage.decode(message)
        spk_pair, opk_pair = bob.spk, (bob.opk if with_opk else None)
        response = pqxdh.respond(bob.identity, msg, spk_pair, kem_pair, opk_pair)
        assert response == agreement
        bob_session, received, consumed = Session.respond(bob.identity, message, bob.lookup,
                                                          Drbg(bob_label))
        assert received == plaintext

        cases.append({
            "name": name,
            "rng": {"alice": alice_label, "bob": bob_label},
            "alice": identity_json(alice),
            "bob": bob.private_json(bundle),
            "bundle": h(bundle.encode()),
            "ephemeral_private": h(ephemeral.private),
            "ephemeral_public": h(ephemeral.public),
            "kem_ciphertext": h(ct),
            "kem_shared_secret": h(ss),
            "dh": [h(d) for d in agreement.dh],
            "ikm": h(ikm),
            "sk": h(agreement.sk),
            "ad": h(agreement.ad),
            "prekey_prefix": h(init.prefix),
            "first_message": {
                "alice_ratchet_private": h(session.ratchet.dhs.private),
                "alice_ratchet_public": h(session.ratchet.dhs.public),
                "plaintext": h(plaintext),
                "kind": int(kind),
                "message": h(message),
                "bob_ratchet_private": h(bob_session.ratchet.dhs.private),
                "bob_ratchet_public": h(bob_session.ratchet.dhs.public),
            },
            "consumed": {"one_time_prekey_id": consumed.one_time_prekey_id,
                         "kem_prekey_id": consumed.kem_prekey_id},
        })

        if index == 0:
            prefix_ct_at = len(init.prefix) - 1088
            wrong_identity = (message[:1] + encode_key(TYPE_ED25519, mallory.public)
                              + message[34:])
            for description, data in (
                ("KEM ciphertext with one bit flipped (ML-KEM's implicit rejection yields "
                 "another SS, so the first message fails its MAC)",
                 flip(message, prefix_ct_at + 100)),
                ("IK_A replaced by another identity (DH1 and AD change)", wrong_identity),
                ("EK_A with one bit flipped", flip(message, 1 + 33 + 1 + 5)),
                ("EK_A made non-canonical: its top bit set (u >= 2^255 - 19)",
                 flip(message, 1 + 33 + 1 + 31, 0x80)),
                ("first ratchet message with its MAC's last bit flipped",
                 flip(message, len(message) - 1)),
            ):
                failures.append({
                    "case": name,
                    "description": description,
                    "message": h(data),
                    "error": error_name(Session.respond, bob.identity, data, bob.lookup,
                                        Drbg(bob_label)),
                })

    return {
        "description": "PQXDH (X25519, SHA-256, ML-KEM-768) from both sides; the session "
        "layer's first message.",
        "format": FORMAT,
        "info": kdf.PQXDH_INFO.decode("ascii"),
        "cases": cases,
        "failures": failures,
    }


# ----------------------------------------------------------------- conversation.json


def ratchet_view(r: Ratchet) -> Json:
    return {
        "dhs_private": h(r.dhs.private),
        "dhs_public": h(r.dhs.public),
        "dhr": oh(r.dhr),
        "rk": h(r.rk),
        "cks": oh(r.cks),
        "ckr": oh(r.ckr),
        "ns": r.ns,
        "nr": r.nr,
        "pn": r.pn,
        "skipped": [{"dh": h(dh), "n": n, "mk": h(mk)} for (dh, n), mk in r.skipped.items()],
        "retired": [h(k) for k in r.retired],
    }


def session_view(s: Session) -> Json:
    return {
        "peer_identity": h(s.peer_identity),
        "pending_prefix": s.pending_prefix is not None,
        "base_key": oh(s.base_key),
        "ratchet": ratchet_view(s.ratchet),
    }


class Conversation:
    """Runs the scripted conversation and records every event."""

    def __init__(self, rec: Recorded, bob: BobKeys, alice: IdentityKeyPair) -> None:
        self.bob_keys = bob
        self.identities = {"alice": alice, "bob": bob.identity}
        self.labels = {"alice": f"{LABEL}conversation/alice", "bob": f"{LABEL}conversation/bob"}
        self.rngs = {name: Drbg(label) for name, label in self.labels.items()}
        self.bundle = bob.bundle(True, True)
        self.kem_ct, self.kem_ss = rec.kem(bob.kem_ot, rec.lookup("conversation", "setup"))
        encapsulate = fixed_encapsulation(self.kem_ct, self.kem_ss, self.bundle.kem_prekey.public)
        alice_session = Session.initiate(alice, self.bundle, self.rngs["alice"], encapsulate)
        self.sessions: dict[str, Session | None] = {"alice": alice_session, "bob": None}
        self.messages: dict[str, tuple[MessageKind, bytes]] = {}
        self.events: list[Json] = []
        self.delivered: list[str] = []
        self.agreement = pqxdh.initiate(alice, self.bundle, Drbg(self.labels["alice"]),
                                        encapsulate).agreement
        ephemeral = X25519KeyPair.generate(Drbg(self.labels["alice"]))
        self.alice_initial_state = alice_session.serialize()
        self.setup: Json = {
            "kem_ciphertext": h(self.kem_ct),
            "kem_shared_secret": h(self.kem_ss),
            "ephemeral_private": h(ephemeral.private),
            "ephemeral_public": h(ephemeral.public),
            "dh": [h(d) for d in self.agreement.dh],
            "sk": h(self.agreement.sk),
            "ad": h(self.agreement.ad),
            "prekey_prefix": h(alice_session.pending_prefix or b""),
            "alice_session": session_view(alice_session),
            "alice_state": h(self.alice_initial_state),
        }

    def session(self, name: str) -> Session:
        s = self.sessions[name]
        assert s is not None
        return s

    def send(self, sender: str, mid: str, plaintext: bytes) -> None:
        s = self.session(sender)
        r = s.ratchet
        assert r.cks is not None
        chain_key = r.cks
        next_chain_key, mk = kdf.kdf_ck(chain_key)
        enc_key, auth_key, iv = kdf.message_keys(mk)
        prefix = s.pending_prefix or b""
        kind, wire = s.encrypt(plaintext)
        ratchet_message = wire[len(prefix):]
        header = Header.decode(ratchet_message[:HEADER_LEN])
        body = ratchet_message[HEADER_LEN:]
        assert r.cks == next_chain_key
        self.messages[mid] = (kind, wire)
        self.events.append({
            "op": "send",
            "from": sender,
            "id": mid,
            "plaintext": h(plaintext),
            "padded": h(padding.pad(plaintext)),
            "kind": int(kind),
            "header": {"dh": h(header.dh), "pn": header.pn, "n": header.n,
                       "encoded": h(ratchet_message[:HEADER_LEN])},
            "chain_key": h(chain_key),
            "message_key": h(mk),
            "next_chain_key": h(next_chain_key),
            "enc_key": h(enc_key),
            "auth_key": h(auth_key),
            "iv": h(iv),
            "ciphertext": h(body[:-32]),
            "mac": h(body[-32:]),
            "ratchet_message": h(ratchet_message),
            "wire": h(wire),
            "session": session_view(s),
            "state": h(s.serialize()),
        })

    def deliver(self, receiver: str, mid: str, expect: str = "ok",
                mutation: tuple[str, bytes] | None = None) -> None:
        kind, wire = self.messages[mid]
        if mutation is not None:
            wire = mutation[1]
        s = self.sessions[receiver]
        before = s.serialize() if s is not None else None
        old_dhs = s.ratchet.dhs.public if s is not None else None
        event: Json = {"op": "deliver", "to": receiver, "id": mid}
        if mutation is not None:
            event["mutation"] = {"description": mutation[0], "wire": h(wire)}
        try:
            if s is None:
                assert kind is MessageKind.PREKEY
                keys = self.bob_keys
                s, plaintext, consumed = Session.respond(
                    self.identities[receiver], wire, keys.lookup, self.rngs[receiver])
                self.sessions[receiver] = s
                msg = PreKeyMessage.decode(wire)
                agreement = pqxdh.respond(keys.identity, msg, keys.spk, keys.kem_ot, keys.opk)
                assert agreement == self.agreement
                event["responds"] = {
                    "sk": h(agreement.sk),
                    "ad": h(agreement.ad),
                    "consumed": {"one_time_prekey_id": consumed.one_time_prekey_id,
                                 "kem_prekey_id": consumed.kem_prekey_id},
                }
            else:
                plaintext = s.decrypt(kind, wire)
            result = "ok"
        except ProtocolError as exc:
            result = type(exc).__name__
            assert s is not None and s.serialize() == before, "a failure changed the state"
        assert result == expect, (mid, result, expect)
        assert s is not None
        event["result"] = result
        if result == "ok":
            event["plaintext"] = h(plaintext)
            self.delivered.append(mid)
        event["dh_ratchet_step"] = s.ratchet.dhs.public != old_dhs
        event["session"] = session_view(s)
        event["state"] = h(s.serialize())
        self.events.append(event)

    def run(self) -> None:
        text = "Hello Bob! This is Alice, writing before you were even online."
        long = ("A message longer than one padding bucket: " + "0123456789" * 16).encode()
        self.send("alice", "A0", text.encode())
        self.send("alice", "A1", b"")
        self.send("alice", "A2", long)
        self.deliver("bob", "A1")                        # sets Bob's session up; A0 skipped
        self.deliver("bob", "A0")                        # an initial message, from MKSKIPPED
        self.deliver("bob", "A2")
        self.deliver("bob", "A2", "DuplicateMessage")    # replay in the current chain
        self.send("bob", "B0", b"Hi Alice, got your three messages.")
        self.send("bob", "B1", b"\x00\x80 binary body ending in 0x80 then 0x00\x80\x00")
        self.send("bob", "B2", b"B2")
        self.deliver("alice", "B0")                      # Alice's first DH step; no more prefix
        self.send("alice", "A3", b"A3: now plain ratchet messages")
        self.send("alice", "A4", "A4: caf\u00e9 \u2615".encode())
        self.deliver("alice", "B2")                      # B1 skipped
        self.deliver("bob", "A4")                        # Bob's DH step; A3 skipped
        self.send("bob", "B3", b"B3: a new chain")
        self.deliver("alice", "B3")                      # Alice's DH step
        _, b1 = self.messages["B1"]
        self.deliver("alice", "B1", "DecryptionFailed",
                     ("B1 with the last bit of its MAC flipped", flip(b1, len(b1) - 1)))
        self.deliver("alice", "B1")                      # from MKSKIPPED, old chain
        self.deliver("bob", "A3")                        # from MKSKIPPED, old chain
        self.send("alice", "A5", b"A5")
        self.send("alice", "A6", b"A6")
        self.send("alice", "A7", b"A7 arrives first")
        self.deliver("bob", "A7")                        # Bob's DH step; A5, A6 skipped
        self.deliver("bob", "A5")
        _, a7 = self.messages["A7"]
        bob_ratchet = self.session("bob").ratchet
        header = Header.decode(a7[:HEADER_LEN])
        for skip, expect in ((MAX_SKIP + 1, "TooManySkipped"), (MAX_SKIP, "DecryptionFailed")):
            forged = Header(header.dh, header.pn, bob_ratchet.nr + skip).encode() + a7[HEADER_LEN:]
            self.deliver("bob", "A7", expect,
                         (f"A7 with N = Nr + {skip} (the MAC no longer matches)", forged))
        self.deliver("bob", "A6")
        self.send("bob", "B4", b"B4")
        self.send("bob", "B5", b"B5 overtakes B4")
        self.send("alice", "A8", b"A8 is lost and never delivered")
        self.deliver("alice", "B5")                      # Alice's DH step; B4 skipped
        self.deliver("alice", "B4")
        self.send("alice", "A9", b"A9 after a lost message")
        self.deliver("bob", "A9")                        # Bob's DH step; A8's key stays stored
        self.send("bob", "B6", b"Bye!")
        self.deliver("alice", "B6")                      # Alice's DH step
        self.deliver("bob", "A0", "DuplicateMessage")    # replay from a retired chain
        self.deliver("alice", "B0", "DuplicateMessage")  # replay from a retired chain
        self.deliver("bob", "A5", "DuplicateMessage")    # key used, chain retired

    def json(self, alice: IdentityKeyPair) -> Json:
        bob = self.bob_keys
        return {
            "description": "A conversation of 17 messages over 8 DH ratchet steps with "
            "out-of-order, skipped, lost, replayed and forged messages.",
            "format": FORMAT,
            "rng": self.labels,
            "alice": identity_json(alice),
            "bob": bob.private_json(self.bundle),
            "bundle": h(self.bundle.encode()),
            "setup": self.setup,
            "delivery_order": self.delivered,
            "events": self.events,
        }


# ---------------------------------------------------------------------- state.json


def segments_session(s: Session) -> list[Json]:
    """The serialised session state cut into its named fields."""
    r = s.ratchet
    ratchet = r.serialize()
    out: list[tuple[str, bytes]] = [
        ("version", b"\x01"),
        ("peer_identity", encode_key(TYPE_ED25519, s.peer_identity)),
        ("has_pending_prefix", b"\x01" if s.pending_prefix is not None else b"\x00"),
        ("pending_prefix_length", len(s.pending_prefix or b"").to_bytes(2, "big")),
        ("pending_prefix", s.pending_prefix or b""),
        ("has_base_key", b"\x01" if s.base_key is not None else b"\x00"),
        ("base_key", s.base_key or b""),
        ("ratchet_state_length", u32(len(ratchet))),
        ("ratchet.version", b"\x01"),
        ("ratchet.dhs_private", r.dhs.private),
        ("ratchet.dhr", b"\x00" if r.dhr is None else b"\x01" + r.dhr),
        ("ratchet.rk", r.rk),
        ("ratchet.cks", b"\x00" if r.cks is None else b"\x01" + r.cks),
        ("ratchet.ckr", b"\x00" if r.ckr is None else b"\x01" + r.ckr),
        ("ratchet.ns", u32(r.ns)),
        ("ratchet.nr", u32(r.nr)),
        ("ratchet.pn", u32(r.pn)),
        ("ratchet.ad_length", len(r.ad).to_bytes(2, "big")),
        ("ratchet.ad", r.ad),
        ("ratchet.skipped_count", u32(len(r.skipped))),
    ]
    for (dh, n), mk in r.skipped.items():
        out.append(("ratchet.skipped.entry", dh + u32(n) + mk))
    out.append(("ratchet.retired_count", bytes((len(r.retired),))))
    out += [("ratchet.retired.key", key) for key in r.retired]
    joined = b"".join(data for _, data in out)
    assert joined == s.serialize(), "state segments do not add up"
    return [{"field": name, "hex": h(data)} for name, data in out]


def gen_state(conv: Conversation) -> Json:
    alice, bob = conv.session("alice"), conv.session("bob")
    states = {"alice_final": alice.serialize(), "bob_final": bob.serialize()}
    initial = conv.alice_initial_state
    base = states["bob_final"]
    ratchet_len = int.from_bytes(base[1 + 33 + 1 + 2 + 1 + 32 : 1 + 33 + 1 + 2 + 1 + 32 + 4], "big")
    ratchet_at = len(base) - ratchet_len
    r = bob.ratchet
    skipped_count_at = ratchet_at + 1 + 32 + 33 + 32 + 33 + 33 + 12 + 2 + len(r.ad)
    errors = [
        ("unknown session state version 2", b"\x02" + base[1:]),
        ("one trailing byte", base + b"\x00"),
        ("last byte missing", base[:-1]),
        ("pending-prefix flag 2", base[:34] + b"\x02" + base[35:]),
        ("unknown ratchet state version 2", base[:ratchet_at] + b"\x02" + base[ratchet_at + 1 :]),
        ("ratchet DHr flag 2", base[: ratchet_at + 33] + b"\x02" + base[ratchet_at + 34 :]),
        ("skipped-key count above MAX_SKIPPED_KEYS", base[:skipped_count_at]
         + u32(MAX_SKIPPED_KEYS + 1) + base[skipped_count_at + 4 :]),
        ("retired count above MAX_RETIRED", base[:-1 - 32 * len(r.retired)]
         + bytes((MAX_RETIRED + 1,)) + base[-32 * len(r.retired) :]),
        ("prefix bytes without the pending-prefix flag",
         base[:35] + b"\x00\x01\xaa" + base[37:]),
    ]
    assert r.retired, "the retired-count case needs retired keys"
    for _, data in errors:
        assert data != base
    return {
        "description": "Serialised session and ratchet state, cut into named fields; "
        "invalid states.",
        "format": FORMAT,
        "limits": {"max_skip": MAX_SKIP, "max_skipped_keys": MAX_SKIPPED_KEYS,
                   "max_retired": MAX_RETIRED},
        "states": [
            {"name": "alice_after_initiate", "state": h(initial),
             "segments": segments_session(Session.deserialize(initial))},
            {"name": "alice_final", "state": h(states["alice_final"]),
             "segments": segments_session(alice)},
            {"name": "bob_final", "state": h(states["bob_final"]),
             "segments": segments_session(bob)},
        ],
        "decode_errors": [
            {"description": description, "state": h(data),
             "error": error_name(Session.deserialize, data)}
            for description, data in errors
        ],
    }


# --------------------------------------------------------------------- messages.json


def gen_messages(conv: Conversation) -> Json:
    headers = []
    dh = bytes.fromhex(conv.events[0]["header"]["dh"])
    for pn, n in ((0, 0), (3, 1), (7, 0x01020304), (0xFFFFFFFF, 0xFFFFFFFF)):
        headers.append({"dh": h(dh), "pn": pn, "n": n, "encoded": h(Header(dh, pn, n).encode())})

    _, prekey = conv.messages["A0"]
    _, ratchet = conv.messages["B0"]
    header = ratchet[:HEADER_LEN]
    body = ratchet[HEADER_LEN:]
    prefix_len = len(conv.setup["prekey_prefix"]) // 2
    ct_at = prefix_len - 1088
    cases: list[tuple[str, str, bytes]] = [
        ("header", "unknown message version 2", b"\x02" + header[1:]),
        ("header", "ratchet key with the ML-KEM type byte", header[:1] + b"\x0a" + header[2:]),
        ("header", "41 bytes", header[:-1]),
        ("header", "43 bytes", header + b"\x00"),
        ("ratchet_message", "header only", header),
        ("ratchet_message", "body of 47 bytes", header + body[:47]),
        ("ratchet_message", "ciphertext not a multiple of 16 bytes", ratchet + b"\x00"),
        ("ratchet_message", "body one block short of the minimum", header + body[:32]),
        ("prekey_message", "unknown version 2", b"\x02" + prekey[1:]),
        ("prekey_message", "IK_A with the X25519 type byte", prekey[:1] + b"\x05" + prekey[2:]),
        ("prekey_message", "EK_A with the Ed25519 type byte",
         prekey[:34] + b"\x01" + prekey[35:]),
        ("prekey_message", "unknown KEM kind 0", prekey[:71] + b"\x00" + prekey[72:]),
        ("prekey_message", "one-time prekey flag 2", prekey[:76] + b"\x02" + prekey[77:]),
        ("prekey_message", "KEM ciphertext cut short", prekey[: ct_at + 1000]),
        ("prekey_message", "no ratchet message", prekey[:prefix_len]),
    ]
    decoders: dict[str, Callable[[bytes], object]] = {
        "header": Header.decode,
        "ratchet_message": RatchetMessage.decode,
        "prekey_message": PreKeyMessage.decode,
    }
    errors = [
        {"layout": layout, "description": description, "encoded": h(data),
         "error": error_name(decoders[layout], data)}
        for layout, description, data in cases
    ]
    return {
        "description": "Message header encodings and malformed messages that must be rejected.",
        "format": FORMAT,
        "headers": headers,
        "decode_errors": errors,
    }


# ---------------------------------------------------------------------------- kdf.json


def gen_kdf() -> Json:
    label = f"{LABEL}kdf"
    rng = Drbg(label)
    rk, dh_out, ck, mk = rng(32), rng(32), rng(32), rng(32)
    new_rk, new_ck = kdf.kdf_rk(rk, dh_out)
    next_ck, msg_key = kdf.kdf_ck(ck)
    enc, auth, iv = kdf.message_keys(mk)
    km = rng(32 * 4 + 32)
    aead_cases = []
    ad = rng(66) + rng(42)
    for n in (0, 1, 15, 16, 159):
        plaintext = rng(n)
        aead_cases.append({"message_key": h(mk), "plaintext": h(plaintext),
                           "associated_data": h(ad),
                           "output": h(aead_encrypt(mk, plaintext, ad))})
    good = bytes.fromhex(aead_cases[1]["output"])
    failures = []
    for description, data, assoc in (
        ("first ciphertext bit flipped", flip(good, 0), ad),
        ("last MAC bit flipped", flip(good, len(good) - 1, 0x80), ad),
        ("associated data changed", good, flip(ad, 65)),
        ("MAC truncated to 31 bytes", good[:-1], ad),
        ("no ciphertext block", good[16:], ad),
    ):
        failures.append({"description": description, "message_key": h(mk),
                         "data": h(data), "associated_data": h(assoc),
                         "error": error_name(aead_decrypt, mk, data, assoc)})
    return {
        "description": "The KDFs and ENCRYPT of Double Ratchet section 5.2 and PQXDH's KDF.",
        "format": FORMAT,
        "rng": label,
        "info": {
            "pqxdh": kdf.PQXDH_INFO.decode("ascii"),
            "root_chain": kdf.ROOT_INFO.decode("ascii"),
            "message_keys": kdf.MESSAGE_KEYS_INFO.decode("ascii"),
        },
        "kdf_rk": [{"root_key": h(rk), "dh_output": h(dh_out), "new_root_key": h(new_rk),
                    "chain_key": h(new_ck)}],
        "kdf_ck": [{"chain_key": h(ck), "message_key": h(msg_key),
                    "next_chain_key": h(next_ck)}],
        "message_keys": [{"message_key": h(mk), "enc_key": h(enc), "auth_key": h(auth),
                          "iv": h(iv)}],
        "pqxdh_kdf": [{"key_material": h(km), "sk": h(kdf.pqxdh_kdf(km))}],
        "aead": aead_cases,
        "aead_failures": failures,
    }


# ------------------------------------------------------------------------ padding.json


def gen_padding() -> Json:
    label = f"{LABEL}padding"
    rng = Drbg(label)
    valid = []
    for n in (0, 1, 15, 16, 157, 158, 159, 160, 200, 317, 318, 319, 320, 478, 479, 480):
        body = rng(n)
        valid.append({"body": h(body), "padded": h(padding.pad(body))})
    for name, body in (("ends with 0x80", b"abc\x80"), ("ends with 0x00", b"abc\x00\x00"),
                       ("only 0x80 bytes", b"\x80" * 158), ("only zero bytes", bytes(159))):
        valid.append({"description": name, "body": h(body), "padded": h(padding.pad(body))})
    for entry in valid:
        assert padding.unpad(bytes.fromhex(entry["padded"])) == bytes.fromhex(entry["body"])

    ten = b"0123456789"
    invalid_cases = [
        ("empty", b""),
        ("158 bytes: not k*160 - 1", ten + b"\x80" + bytes(147)),
        ("160 bytes: not k*160 - 1", ten + b"\x80" + bytes(149)),
        ("no 0x80 marker: 159 zero bytes", bytes(159)),
        ("0x01 where the marker belongs", ten + b"\x01" + bytes(148)),
        ("a non-zero byte after the marker", ten + b"\x80" + bytes(147) + b"\x01"),
        ("10-byte body padded to 319 bytes", ten + b"\x80" + bytes(308)),
        ("158-byte body padded to 319 bytes", bytes(range(158)) + b"\x80" + bytes(160)),
    ]
    invalid = []
    for description, data in invalid_cases:
        invalid.append({"description": description, "padded": h(data),
                        "error": error_name(padding.unpad, data)})
    return {
        "description": "Signal-style padding: body || 0x80 || zeros to k*160 - 1 bytes; "
        "strict unpadding.",
        "format": FORMAT,
        "rng": label,
        "bucket": padding.BUCKET,
        "valid": valid,
        "invalid": invalid,
    }


# ------------------------------------------------------------------ safety_numbers.json


def gen_safety() -> Json:
    alice, bob, carol = identity("alice"), identity("bob"), identity("carol")
    cases = []
    for (a, ua), (b, ub) in (
        ((alice, "alice"), (bob, "bob")),
        ((alice, "alice"), (carol, "carol.c-d_e")),
        ((bob, "bob"), (bob, "bobby")),  # same key, different usernames
    ):
        half_a = fingerprint.fingerprint(a.public, ua)
        half_b = fingerprint.fingerprint(b.public, ub)
        number = fingerprint.safety_number(a.public, ua, b.public, ub)
        assert number == fingerprint.safety_number(b.public, ub, a.public, ua)
        cases.append({
            "identity_a": h(a.public), "username_a": ua,
            "identity_b": h(b.public), "username_b": ub,
            "digest_a": h(half_a), "digest_b": h(half_b),
            "digits_a": fingerprint.displayable(half_a),
            "digits_b": fingerprint.displayable(half_b),
            "safety_number": number,
            "formatted": fingerprint.format_safety_number(number),
            "qr_payload": fingerprint.qr_payload(a.public, ua, b.public, ub),
        })
    return {
        "description": "Safety numbers: Signal's numeric fingerprint version 0 over "
        "Encode(IK) and the username, 5200 iterations of SHA-512.",
        "format": FORMAT,
        "version": fingerprint.FINGERPRINT_VERSION,
        "iterations": fingerprint.ITERATIONS,
        "cases": cases,
    }


# ----------------------------------------------------------------------- sealed.json


def gen_sealed(rec: Recorded, conv: Conversation) -> Json:
    bob = conv.identities["bob"]
    alice = conv.identities["alice"]
    contents = [
        ("prekey_message", SealedContent("alice", MessageKind.PREKEY, conv.messages["A0"][1]),
         bob),
        ("ratchet_message", SealedContent("bob", MessageKind.RATCHET, conv.messages["B0"][1]),
         alice),
        ("empty_message", SealedContent("abc", MessageKind.RATCHET, b""), bob),
    ]
    cases = []
    for index, (name, content, recipient) in enumerate(contents):
        encoded = content.encode()
        box = rec.seal(recipient, encoded, rec.lookup("sealed", "cases", index, "sealed"))
        opened = sealed.unseal(recipient, box)
        assert opened == content
        cases.append({
            "name": name,
            "recipient": identity_json(recipient),
            "sender": content.sender,
            "kind": int(content.kind),
            "message": h(content.message),
            "content": h(encoded),
            "sealed": h(box),
        })
    good = bytes.fromhex(str(cases[2]["sealed"]))
    malformed = b"\x01\x01\x02AB"  # username "AB" breaks the username rule
    malformed_box = rec.seal(bob, malformed, rec.lookup("sealed", "malformed_box", "sealed"))
    box_failures = []
    for description, data, recipient in (
        ("ciphertext bit flipped", flip(good, 40), bob),
        ("ephemeral key bit flipped", flip(good, 0), bob),
        ("47 bytes", good[:47], bob),
        ("opened by someone else", good, alice),
    ):
        box_failures.append({
            "description": description, "recipient_seed": h(recipient.seed), "sealed": h(data),
            "error": error_name(sealed.unseal, recipient, data),
        })
    content_errors = []
    for description, data in (
        ("unknown content version 2", b"\x02\x01\x03bob"),
        ("unknown message kind 3", b"\x01\x03\x03bob"),
        ("username too short", b"\x01\x01\x02bo"),
        ("username with an upper-case letter", b"\x01\x01\x03Bob"),
        ("username not ASCII", b"\x01\x01\x04b\xc3\xb6b"),
        ("username length beyond the end", b"\x01\x01\x09bob"),
        ("empty", b""),
    ):
        content_errors.append({"description": description, "content": h(data),
                               "error": error_name(SealedContent.decode, data)})
    return {
        "description": "Sealed sender: crypto_box_seal of version || kind || var8(sender) || "
        "message to the recipient identity's X25519 form. The boxes are recorded.",
        "format": FORMAT,
        "cases": cases,
        "malformed_box": {
            "recipient_seed": h(bob.seed), "content": h(malformed), "sealed": h(malformed_box),
            "error": error_name(sealed.unseal, bob, malformed_box),
        },
        "box_failures": box_failures,
        "content_errors": content_errors,
    }


# --------------------------------------------------------------------- usernames.json


def gen_usernames() -> Json:
    valid = ["abc", "alice", "bob", "a1_", "x.y-z_0", "a" * 32, "z9" + "-" * 30]
    invalid = ["", "ab", "a" * 33, "1abc", "_abc", "-abc", ".abc", "Abc", "abC", "ab c",
               "abc\n", "ab\u00e7", "a\u0131b"]
    for name in valid:
        check_username(name)
    checked = []
    for name in invalid:
        checked.append({"username": name, "utf8": h(name.encode()),
                        "error": error_name(check_username, name)})
    raw_errors = [{"raw": h(raw), "error": error_name(decode_username, raw)}
                  for raw in (b"ab\xffc", b"b\xc3\xb6b")]
    return {
        "description": "Usernames: [a-z][a-z0-9_.-]{2,31}, ASCII.",
        "format": FORMAT,
        "pattern": "[a-z][a-z0-9_.-]{2,31}",
        "valid": valid,
        "invalid": checked,
        "invalid_raw": raw_errors,
    }


# ------------------------------------------------------------------ content.json


def gen_content() -> Json:
    rng = Drbg("blindrelay/vectors/v1/content")
    text_id, read_a, read_b = rng(16), rng(16), rng(16)
    items = [
        ("text", msg_content.Text(text_id, 1_780_000_000_123, "hello, Bob \u2603")),
        ("empty text", msg_content.Text(rng(16), 0, "")),
        ("delivered receipt", msg_content.Receipt(msg_content.ReceiptType.DELIVERED, (text_id,))),
        ("read receipt", msg_content.Receipt(msg_content.ReceiptType.READ, (read_a, read_b))),
    ]
    valid = []
    for name, item in items:
        encoded = item.encode()
        assert msg_content.decode_content(encoded) == item
        entry: Json = {"description": name, "encoded": h(encoded),
                       "padded": h(padding.pad(encoded))}
        if isinstance(item, msg_content.Text):
            entry |= {"kind": "TEXT", "message_id": h(item.message_id),
                      "sent_at_ms": item.sent_at_ms, "text": item.text}
        else:
            entry |= {"kind": "RECEIPT", "receipt_type": item.receipt_type.name,
                      "message_ids": [h(m) for m in item.message_ids]}
        valid.append(entry)
    good = items[0][1].encode()
    bad = [
        ("unknown version", b"\x02" + good[1:]),
        ("unknown kind", good[:1] + b"\x03" + good[2:]),
        ("trailing byte", good + b"\x00"),
        ("truncated", good[:-1]),
        ("text not UTF-8", msg_content.Text(text_id, 1, "a").encode()[:-1] + b"\xff"),
        ("receipt with no ids", b"\x01\x02\x01\x00\x00"),
        ("unknown receipt type", b"\x01\x02\x03\x00\x01" + text_id),
    ]
    invalid = [{"description": d, "encoded": h(e),
                "error": error_name(msg_content.decode_content, e)} for d, e in bad]
    return {
        "description": "Message content inside the encryption (protocol/msg_content.py), before "
                       "padding.",
        "format": FORMAT,
        "valid": valid,
        "invalid": invalid,
    }


# ------------------------------------------------------------------- frames.json


def gen_frames() -> Json:
    rng = Drbg("blindrelay/vectors/v1/frames")
    alice = IdentityKeyPair.generate(rng)
    _, spk = make_signed_prekey(alice, 1, rng)
    _, kem = make_kem_prekey(alice, 2, rng)
    _, opk = make_one_time_prekey(3, rng)
    challenge = rng(32)
    envelope_id = rng(16)
    url = frames.normalize_url("WS://LocalHost:8765/")
    login = frames.login_statement(url, challenge, "alice")
    register = frames.register_statement(url, challenge, "alice", alice.public)
    limits = frames.Limits(262144, 65536, 64, 10000, 500, 200, 400, 2592000, 10)
    bundle = PreKeyBundle(alice.public, spk, KemKind.LAST_RESORT, kem, opk)
    client_frames: list[tuple[str, frames.Frame]] = [
        ("REGISTER", frames.Register("alice", alice.public, alice.sign(register))),
        ("LOGIN", frames.Login("alice", alice.sign(login))),
        ("UPLOAD_SIGNED_PREKEYS", frames.UploadSignedPrekeys(spk, kem)),
        ("UPLOAD_ONE_TIME_PREKEYS", frames.UploadOneTimePrekeys((opk,), (kem,))),
        ("FETCH_BUNDLE", frames.FetchBundle("bob")),
        ("LOOKUP_IDENTITY", frames.LookupIdentity("bob")),
        ("PREKEY_COUNT", frames.PrekeyCount()),
        ("SEND", frames.Send((frames.Outgoing("bob", b"\x01" * 3),
                              frames.Outgoing("carol", b"\x02")))),
        ("ACK", frames.Ack((envelope_id,))),
    ]
    server_frames: list[tuple[str, frames.Frame]] = [
        ("HELLO", frames.Hello(challenge, limits)),
        ("OK", frames.Ok()),
        ("BUNDLE", frames.Bundle(bundle.encode())),
        ("IDENTITY", frames.Identity(alice.public)),
        ("PREKEY_COUNTS", frames.PrekeyCounts(7, 3)),
        ("SENT", frames.Sent((envelope_id,))),
        ("DELIVER", frames.Deliver(envelope_id, 1_780_000_000, b"\x09" * 4)),
        ("PREKEYS_LOW", frames.PrekeysLow(2, 0)),
        ("QUEUE_DONE", frames.QueueDone(5)),
        ("ERROR", frames.Error(frames.ErrorCode.QUEUE_FULL, "the queue of 'bob' is full")),
    ]

    def entries(items: list[tuple[str, frames.Frame]], decode: Callable[[bytes], Any],
                first_id: int) -> list[Json]:
        out = []
        for i, (name, frame) in enumerate(items):
            request_id = 0 if name in ("HELLO", "DELIVER", "PREKEYS_LOW", "QUEUE_DONE") \
                else first_id + i
            encoded = frames.encode_frame(frame, request_id)
            assert decode(encoded) == (request_id, frame)
            out.append({"name": name, "type": frame.TYPE, "request_id": request_id,
                        "encoded": h(encoded)})
        return out

    good = frames.encode_frame(frames.FetchBundle("bob"), 9)
    bad = [
        ("too short", good[:5]),
        ("unknown version", b"\x02" + good[1:]),
        ("unknown type", good[:1] + b"\x7f" + good[2:]),
        ("server frame sent by a client", frames.encode_frame(frames.Ok(), 9)),
        ("trailing byte", good + b"\x00"),
        ("truncated payload", good[:-1]),
        ("invalid username", frames.encode_frame(frames.FetchBundle("bob"), 9)[:-3] + b"B0b"),
        ("SEND with no envelope", good[:1] + b"\x20" + good[2:6] + b"\x00\x00"),
    ]
    invalid = [{"description": d, "encoded": h(e),
                "error": error_name(frames.decode_client_frame, e)} for d, e in bad]
    urls = [(u, frames.normalize_url(u)) for u in
            ("ws://127.0.0.1:8765", "WS://LocalHost:8765/", "wss://relay.example",
             "ws://relay.example", "ws://[::1]:9000/path")]
    return {
        "description": "Client-server frames (docs/PROTOCOL.md section 16): one of each, "
                       "encoded with the request id given, plus login statements.",
        "format": FORMAT,
        "identity_seed": h(alice.seed),
        "server_url": url,
        "challenge": h(challenge),
        "login_statement": h(login),
        "register_statement": h(register),
        "normalize_url": [{"input": i, "normalized": o} for i, o in urls],
        "client_frames": entries(client_frames, frames.decode_client_frame, 1),
        "server_frames": entries(server_frames, frames.decode_server_frame, 100),
        "client_invalid": invalid,
    }


# ------------------------------------------------------------------------------ main


def generate(rec: Recorded) -> dict[str, Json]:
    alice = identity("alice")
    bob = BobKeys()
    out: dict[str, Json] = {"drbg": gen_drbg(), "keys": gen_keys(rec), "kdf": gen_kdf()}
    out["bundle"] = gen_bundle(bob, alice)
    out["pqxdh"] = gen_pqxdh(rec, bob, alice)
    conv = Conversation(rec, bob, alice)
    conv.run()
    out["conversation"] = conv.json(alice)
    out["state"] = gen_state(conv)
    out["messages"] = gen_messages(conv)
    out["padding"] = gen_padding()
    out["safety_numbers"] = gen_safety()
    out["sealed"] = gen_sealed(rec, conv)
    out["usernames"] = gen_usernames()
    out["content"] = gen_content()
    out["frames"] = gen_frames()
    return out


def render(data: Json) -> str:
    return json.dumps(data, indent=1, ensure_ascii=True) + "\n"


def iter_files(files: dict[str, Json]) -> Iterator[tuple[Path, str]]:
    for name, data in files.items():
        yield HERE / f"{name}.json", render(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--refresh", action="store_true",
                        help="discard recorded ML-KEM and sealed-box outputs and make new ones")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any file would change")
    args = parser.parse_args(argv)
    rec = Recorded(refresh=args.refresh)
    files = generate(rec)
    changed = []
    for path, text in iter_files(files):
        if not path.exists() or path.read_text() != text:
            changed.append(path.name)
            if not args.check:
                path.write_text(text)
    verb = "would change" if args.check else "written"
    print(f"{len(files)} vector files; {verb}: {', '.join(changed) or 'none'}; "
          f"recorded values kept {rec.kept}, made {rec.fresh}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
