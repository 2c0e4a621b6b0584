"""`python -m conformance.vectors.reference`: this implementation behind the vector
contract of conformance/vectors/contract.py, so the kit checks our code exactly as it
checks anyone else's (tests/conformance/test_vector_contract.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from protocol.e2e import aead, kdf, padding, safety_numbers
from protocol.wire.errors import ProtocolError
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


OPS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
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
