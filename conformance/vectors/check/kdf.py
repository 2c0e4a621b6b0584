"""kdf.json: the KDFs and ENCRYPT of the Double Ratchet and PQXDH's KDF
(docs/PROTOCOL.md sections 5 and 7)."""

from __future__ import annotations

from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import aead, kdf

NAME = "kdf"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(
        [whole(NAME, doc, "info", "info")],
        listed(NAME, doc, "kdf_rk"),
        listed(NAME, doc, "kdf_ck"),
        listed(NAME, doc, "message_keys"),
        listed(NAME, doc, "pqxdh_kdf"),
        listed(NAME, doc, "aead"),
        listed(NAME, doc, "aead_failures"),
        [whole(NAME, doc, "inputs from rng", "rng", "kdf_rk", "kdf_ck", "message_keys",
               "pqxdh_kdf", "aead")],
    )


def check_info(at: At, data: Any) -> None:
    info = data["info"]
    at.eq("info.pqxdh", info["pqxdh"].encode("ascii"), kdf.PQXDH_INFO)
    at.eq("info.root_chain", info["root_chain"].encode("ascii"), kdf.ROOT_INFO)
    at.eq("info.message_keys", info["message_keys"].encode("ascii"), kdf.MESSAGE_KEYS_INFO)


def check_kdf_rk(at: At, e: Any) -> None:
    new_rk, ck = kdf.kdf_rk(b(e["root_key"]), b(e["dh_output"]))
    at.eq("new_root_key", b(e["new_root_key"]), new_rk)
    at.eq("chain_key", b(e["chain_key"]), ck)


def check_kdf_ck(at: At, e: Any) -> None:
    next_ck, mk = kdf.kdf_ck(b(e["chain_key"]))
    at.eq("next_chain_key", b(e["next_chain_key"]), next_ck)
    at.eq("message_key", b(e["message_key"]), mk)


def check_message_keys(at: At, e: Any) -> None:
    enc, auth, iv = kdf.message_keys(b(e["message_key"]))
    at.eq("enc_key", b(e["enc_key"]), enc)
    at.eq("auth_key", b(e["auth_key"]), auth)
    at.eq("iv", b(e["iv"]), iv)


def check_pqxdh_kdf(at: At, e: Any) -> None:
    at.eq("sk", b(e["sk"]), kdf.pqxdh_kdf(b(e["key_material"])))


def check_aead(at: At, e: Any) -> None:
    mk, plaintext, ad = b(e["message_key"]), b(e["plaintext"]), b(e["associated_data"])
    at.eq("output", b(e["output"]), aead.encrypt(mk, plaintext, ad))
    at.eq("plaintext", plaintext, aead.decrypt(mk, b(e["output"]), ad))


def check_aead_failure(at: At, e: Any) -> None:
    at.raises("error", e["error"], lambda: aead.decrypt(
        b(e["message_key"]), b(e["data"]), b(e["associated_data"])))


def check_inputs(at: At, data: Any) -> None:
    """The inputs are consecutive draws from DRBG(rng), in the order section 17.3 gives."""
    rng = Drbg(data["rng"])
    at.eq("kdf_rk[0].root_key", b(data["kdf_rk"][0]["root_key"]), rng(32))
    at.eq("kdf_rk[0].dh_output", b(data["kdf_rk"][0]["dh_output"]), rng(32))
    at.eq("kdf_ck[0].chain_key", b(data["kdf_ck"][0]["chain_key"]), rng(32))
    mk = rng(32)
    at.eq("message_keys[0].message_key", b(data["message_keys"][0]["message_key"]), mk)
    at.eq("pqxdh_kdf[0].key_material", b(data["pqxdh_kdf"][0]["key_material"]), rng(160))
    ad = rng(66) + rng(42)
    for index, e in enumerate(data["aead"]):
        at.eq(f"aead[{index}].message_key", b(e["message_key"]), mk)
        at.eq(f"aead[{index}].associated_data", b(e["associated_data"]), ad)
        at.eq(f"aead[{index}].plaintext", b(e["plaintext"]), rng(len(e["plaintext"]) // 2))


check = dispatch({
    "info": check_info,
    "kdf_rk": check_kdf_rk,
    "kdf_ck": check_kdf_ck,
    "message_keys": check_message_keys,
    "pqxdh_kdf": check_pqxdh_kdf,
    "aead": check_aead,
    "aead_failures": check_aead_failure,
    "inputs from rng": check_inputs,
})
