"""keys.json: key encodings, Ed25519 -> X25519 conversion, X25519 and ML-KEM-768 keys
(docs/PROTOCOL.md section 3); the ML-KEM encapsulations are recorded."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, h
from conformance.vectors.context import Context
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
    x25519,
)
from protocol.wire.publickeys import X25519_P

RFC8032_TEST1_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_TEST1_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC7748_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
RFC7748_BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
RFC7748_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def build(ctx: Context) -> Json:
    rec = ctx.recorded
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
