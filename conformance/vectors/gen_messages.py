"""messages.json: header encodings and malformed messages (docs/PROTOCOL.md sections 6
and 7), cut from the scripted conversation's messages."""

from __future__ import annotations

from collections.abc import Callable

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, h
from conformance.vectors.context import Context
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage, RatchetMessage


def build(ctx: Context) -> Json:
    conv = ctx.conversation
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
