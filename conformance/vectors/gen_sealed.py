"""sealed.json: sealed-sender boxes (recorded), and boxes and contents that must be
rejected (docs/PROTOCOL.md section 10)."""

from __future__ import annotations

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, flip, h, identity_json
from conformance.vectors.context import Context
from protocol.e2e import sealed
from protocol.e2e.sealed import MessageKind, SealedContent


def build(ctx: Context) -> Json:
    rec, conv = ctx.recorded, ctx.conversation
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
