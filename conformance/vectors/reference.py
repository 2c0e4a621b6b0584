"""`python -m conformance.vectors.reference`: this implementation behind the vector
contract of conformance/vectors/contract.py, so the kit checks our code exactly as it
checks anyone else's (tests/conformance/test_vector_contract.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from conformance.drbg import Drbg
from protocol.e2e import aead, kdf, padding, safety_numbers, size_classes
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    decode_key,
    identity_dh_public,
    x25519,
)
from protocol.e2e.messages import Header
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.wire.errors import ProtocolError
from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.commitment import commit
from protocol.wire.kt.directory import label_of, verify_answer
from protocol.wire.kt.note import parse_verifier_key
from protocol.wire.usernames import check_username


def _b(value: str) -> bytes:
    return bytes.fromhex(value)


def _kdf_rk(i: dict[str, Any]) -> dict[str, str]:
    root, chain = kdf.kdf_rk(_b(i["root_key"]), _b(i["dh_output"]))
    return {"new_root_key": root.hex(), "chain_key": chain.hex()}


def _kdf_ck(i: dict[str, Any]) -> dict[str, str]:
    next_chain, message = kdf.kdf_ck(_b(i["chain_key"]))
    return {"message_key": message.hex(), "next_chain_key": next_chain.hex()}


def _message_keys(i: dict[str, Any]) -> dict[str, str]:
    enc, auth, iv = kdf.message_keys(_b(i["message_key"]))
    return {"enc_key": enc.hex(), "auth_key": auth.hex(), "iv": iv.hex()}


def _drbg(i: dict[str, Any]) -> dict[str, Any]:
    rng = Drbg(i["label"])
    return {"outputs": [rng(n).hex() for n in i["draws"]]}


def _ed25519(i: dict[str, Any]) -> dict[str, str]:
    key = IdentityKeyPair.from_seed(_b(i["seed"]))
    return {"public": key.public.hex(), "encoded": key.encoded_public().hex(),
            "x25519_private": key.dh_private().hex(), "x25519_public": key.dh_public().hex(),
            "signature": key.sign(_b(i["message"])).hex()}


def _x25519(i: dict[str, Any]) -> dict[str, str]:
    pair = X25519KeyPair.from_private(_b(i["private"]))
    return {"public": pair.public.hex(), "encoded": pair.encoded_public().hex()}


def _mlkem768(i: dict[str, Any]) -> dict[str, str]:
    pair = KemKeyPair.from_seed(_b(i["seed"]))
    return {"public": pair.public.hex(), "encoded": pair.encoded_public().hex(),
            "shared_secret": pair.decapsulate(_b(i["ciphertext"])).hex()}


def _decode_header(i: dict[str, Any]) -> dict[str, Any]:
    header = Header.decode(_b(i["encoded"]))
    return {"dh": header.dh.hex(), "pn": header.pn, "n": header.n}


def _content(i: dict[str, Any]) -> SealedContent:
    return SealedContent(_b(i["certificate"]), MessageKind(i["kind"]), _b(i["message"]))


def _fields(content: SealedContent) -> dict[str, Any]:
    return {"certificate": content.certificate.hex(), "sender": content.sender,
            "kind": int(content.kind),
            "message": content.message.hex()}


def _envelope_size(i: dict[str, Any]) -> dict[str, int]:
    n = i["plaintext_length"]
    envelope = size_classes.envelope_size(n)  # MessageTooLarge first
    return {"ratchet_message_length": size_classes.ratchet_message_len(n),
            "envelope_length": envelope}


def _verify_answer(i: dict[str, Any]) -> dict[str, Any]:
    checkpoint, _ = open_checkpoint(_b(i["checkpoint"]), parse_verifier_key(i["log_verifier"]))
    verified = verify_answer(_b(i["answer"]), i["username"], _b(i["vrf_public"]), checkpoint)
    binding = verified.binding
    return {"found": binding is not None,
            "kind": None if binding is None else binding.kind.name,
            "version": None if binding is None else binding.version,
            "index": verified.index, "label": verified.label.hex(),
            "identity": None if verified.identity is None else verified.identity.hex()}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "kdf_rk": _kdf_rk,
    "kdf_ck": _kdf_ck,
    "message_keys": _message_keys,
    "pqxdh_kdf": lambda i: {"sk": kdf.pqxdh_kdf(_b(i["key_material"])).hex()},
    "encrypt": lambda i: {"output": aead.encrypt(_b(i["message_key"]), _b(i["plaintext"]),
                                                 _b(i["associated_data"])).hex()},
    "decrypt": lambda i: {"plaintext": aead.decrypt(_b(i["message_key"]), _b(i["data"]),
                                                    _b(i["associated_data"])).hex()},
    "pad": lambda i: {"padded": padding.pad(_b(i["body"])).hex()},
    "unpad": lambda i: {"body": padding.unpad(_b(i["padded"])).hex()},
    "safety_number": lambda i: {
        "safety_number": safety_numbers.safety_number(
            _b(i["identity_a"]), i["username_a"], _b(i["identity_b"]), i["username_b"]),
        "qr_payload": safety_numbers.qr_payload(
            _b(i["identity_a"]), i["username_a"], _b(i["identity_b"]), i["username_b"])},
    "username": lambda i: {"username": check_username(i["username"])},
    "drbg": _drbg,
    "ed25519": _ed25519,
    "x25519": _x25519,
    "x25519_dh": lambda i: {"shared": x25519(_b(i["private"]), _b(i["peer_public"])).hex()},
    "ed25519_to_x25519": lambda i: {
        "x25519_public": identity_dh_public(_b(i["ed25519_public"])).hex()},
    "mlkem768": _mlkem768,
    "decode_key": lambda i: {"public": decode_key(i["expected_type"], _b(i["encoded"])).hex()},
    "encode_header": lambda i: {"encoded": Header(_b(i["dh"]), i["pn"], i["n"]).encode().hex()},
    "decode_header": _decode_header,
    "encode_content": lambda i: {"content": _content(i).encode(i["limit"]).hex()},
    "decode_content": lambda i: _fields(SealedContent.decode(_b(i["content"]))),
    "seal": lambda i: {"sealed": seal(_b(i["recipient_public"]), _content(i), i["limit"]).hex()},
    "unseal": lambda i: _fields(unseal(IdentityKeyPair.from_seed(_b(i["recipient_seed"])),
                                       _b(i["sealed"]))),
    "envelope_size": _envelope_size,
    "vrf_label": lambda i: {"label": label_of(_b(i["vrf_public"]), _b(i["vrf_proof"]),
                                              i["username"]).hex()},
    "commitment": lambda i: {"commitment": commit(_b(i["opening"]), _b(i["label"]),
                                                  _b(i["value"])).hex()},
    "verify_answer": _verify_answer,
}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    op = OPS.get(request.get("op", ""))
    if op is None:
        return {"unsupported": True}
    try:
        return {"output": op(request["input"])}
    except ProtocolError as exc:
        return {"error": type(exc).__name__}


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(answer(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
