"""bundle.json: Bob's prekey records, their signatures and bundles, valid and not
(docs/PROTOCOL.md section 4)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, flip, h, identity_json
from conformance.vectors.context import Context
from protocol.e2e.keys import (
    TYPE_ED25519,
    KemKeyPair,
    encode_key,
)
from protocol.wire.prekeys import KemKind, PreKeyBundle


def build(ctx: Context) -> Json:
    bob, alice = ctx.bob, ctx.alice
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
