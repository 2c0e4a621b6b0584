"""kdf.json: the KDFs and ENCRYPT of the Double Ratchet and PQXDH's KDF
(docs/PROTOCOL.md sections 5 and 7)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, flip, h
from protocol.e2e import kdf
from protocol.e2e.aead import decrypt as aead_decrypt
from protocol.e2e.aead import encrypt as aead_encrypt


def build() -> Json:
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
