"""keys.json: key encodings, Ed25519 -> X25519 conversion, X25519, ML-KEM-768
(docs/PROTOCOL.md section 3)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import (
    TYPE_ED25519,
    TYPE_MLKEM768,
    TYPE_X25519,
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    decode_key,
    identity_dh_public,
    verify_signature,
    x25519,
)

NAME = "keys"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(
        [whole(NAME, doc, "type_bytes", "type_bytes")],
        listed(NAME, doc, "ed25519"),
        [whole(NAME, doc, "ed25519 seeds from rng.ed25519", "rng", "ed25519")],
        listed(NAME, doc, "x25519"),
        [whole(NAME, doc, "x25519 privates from rng.x25519", "rng", "x25519")],
        listed(NAME, doc, "x25519_dh"),
        listed(NAME, doc, "mlkem768"),
        [whole(NAME, doc, "mlkem768 seeds from rng.mlkem768", "rng", "mlkem768")],
        listed(NAME, doc, "decode_errors"),
        listed(NAME, doc, "conversion_errors"),
    )


def check_type_bytes(at: At, data: Any) -> None:
    types = data["type_bytes"]
    at.eq("type_bytes.ed25519", types["ed25519"], TYPE_ED25519)
    at.eq("type_bytes.x25519", types["x25519"], TYPE_X25519)
    at.eq("type_bytes.mlkem768", types["mlkem768"], TYPE_MLKEM768)
    at.true("type_bytes", len({TYPE_ED25519, TYPE_X25519, TYPE_MLKEM768}) == 3, "distinct")


def check_ed25519(at: At, entry: Any) -> None:
    key = IdentityKeyPair.from_seed(b(entry["seed"]))
    at.eq("public", b(entry["public"]), key.public)
    at.eq("encoded", b(entry["encoded"]), key.encoded_public())
    at.eq("encoded", bytes((TYPE_ED25519,)) + key.public, b(entry["encoded"]))
    at.eq("encoded", key.public, decode_key(TYPE_ED25519, b(entry["encoded"])))
    at.eq("x25519_private", b(entry["x25519_private"]), key.dh_private())
    at.eq("x25519_public", b(entry["x25519_public"]), key.dh_public())
    at.eq("x25519_public", b(entry["x25519_public"]), identity_dh_public(key.public))
    # The converted private key belongs to the converted public key.
    at.eq("x25519_private", key.dh_public(),
          X25519KeyPair.from_private(key.dh_private()).public)
    at.eq("signature", b(entry["signature"]), key.sign(b(entry["message"])))
    verify_signature(key.public, b(entry["signature"]), b(entry["message"]))


def check_ed25519_rng(at: At, data: Any) -> None:
    rng = Drbg(data["rng"]["ed25519"])
    for index, entry in enumerate(data["ed25519"]):
        if entry["name"].startswith("drbg_"):
            at.eq(f"ed25519[{index}].seed", b(entry["seed"]), rng(32))


def check_x25519(at: At, entry: Any) -> None:
    pair = X25519KeyPair.from_private(b(entry["private"]))
    at.eq("public", b(entry["public"]), pair.public)
    at.eq("encoded", b(entry["encoded"]), pair.encoded_public())
    at.eq("encoded", bytes((TYPE_X25519,)) + pair.public, b(entry["encoded"]))
    at.eq("encoded", pair.public, decode_key(TYPE_X25519, b(entry["encoded"])))


def check_x25519_rng(at: At, data: Any) -> None:
    rng = Drbg(data["rng"]["x25519"])
    for index, entry in enumerate(data["x25519"]):
        if entry["name"].startswith("drbg_"):
            at.eq(f"x25519[{index}].private", b(entry["private"]),
                  X25519KeyPair.generate(rng).private)


def check_x25519_dh(at: At, entry: Any) -> None:
    private, peer = b(entry["private"]), b(entry["peer_public"])
    if "error" in entry:
        at.raises("error", entry["error"], lambda: x25519(private, peer))
    else:
        at.eq("shared", b(entry["shared"]), x25519(private, peer))


def check_mlkem768(at: At, entry: Any) -> None:
    pair = KemKeyPair.from_seed(b(entry["seed"]))
    at.eq("public", b(entry["public"]), pair.public)
    at.eq("encoded", b(entry["encoded"]), pair.encoded_public())
    at.eq("encoded", bytes((TYPE_MLKEM768,)) + pair.public, b(entry["encoded"]))
    at.eq("encoded", pair.public, decode_key(TYPE_MLKEM768, b(entry["encoded"])))
    at.eq("kem_shared_secret", b(entry["kem_shared_secret"]),
          pair.decapsulate(b(entry["kem_ciphertext"])))


def check_mlkem768_rng(at: At, data: Any) -> None:
    rng = Drbg(data["rng"]["mlkem768"])
    for index, entry in enumerate(data["mlkem768"]):
        at.eq(f"mlkem768[{index}].seed", b(entry["seed"]), KemKeyPair.generate(rng).seed)


def check_decode_error(at: At, entry: Any) -> None:
    at.raises("error", entry["error"],
              lambda: decode_key(entry["expected_type"], b(entry["encoded"])))


def check_conversion_error(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: identity_dh_public(b(entry["ed25519_public"])))


check = dispatch({
    "type_bytes": check_type_bytes,
    "ed25519": check_ed25519,
    "ed25519 seeds from rng.ed25519": check_ed25519_rng,
    "x25519": check_x25519,
    "x25519 privates from rng.x25519": check_x25519_rng,
    "x25519_dh": check_x25519_dh,
    "mlkem768": check_mlkem768,
    "mlkem768 seeds from rng.mlkem768": check_mlkem768_rng,
    "decode_errors": check_decode_error,
    "conversion_errors": check_conversion_error,
})
