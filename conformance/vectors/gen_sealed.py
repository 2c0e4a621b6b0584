"""sealed.json: sealed-sender boxes (recorded), the envelope size classes and where each
class ends, and boxes and contents that must be rejected (docs/PROTOCOL.md section 10)."""

from __future__ import annotations

import hashlib

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, flip, h, identity_json
from conformance.vectors.context import Context
from protocol.e2e import sealed, size_classes
from protocol.e2e.errors import MessageTooLarge
from protocol.e2e.sealed import MessageKind, SealedContent
from protocol.e2e.size_classes import (
    CONTENT_OVERHEAD_MAX,
    ENVELOPE_CLASSES,
    PREKEY_PREFIX_MAX,
    SEAL_OVERHEAD,
)

FILL = 0xA5
"""The byte the class-boundary messages are made of (`message_length` times)."""

SHORT, LONG = "abc", "a" * 31 + "z"  # the shortest and the longest usernames


def _cases(ctx: Context) -> list[Json]:
    rec, conv = ctx.recorded, ctx.conversation
    bob = conv.identities["bob"]
    alice = conv.identities["alice"]
    contents = [
        ("prekey_message", SealedContent("alice", MessageKind.PREKEY, conv.messages["A0"][1]),
         bob),
        ("ratchet_message", SealedContent("bob", MessageKind.RATCHET, conv.messages["B0"][1]),
         alice),
        ("ratchet_message_longest_sender",
         SealedContent(LONG, MessageKind.RATCHET, conv.messages["B0"][1]), alice),
        ("empty_message", SealedContent(SHORT, MessageKind.RATCHET, b""), bob),
    ]
    cases = []
    for index, (name, content, recipient) in enumerate(contents):
        encoded = content.encode()
        box = rec.seal(recipient, encoded, rec.lookup("sealed", "cases", index, "sealed"))
        assert sealed.unseal(recipient, box) == content
        assert len(box) in ENVELOPE_CLASSES
        cases.append({
            "name": name,
            "recipient": identity_json(recipient),
            "sender": content.sender,
            "kind": int(content.kind),
            "message": h(content.message),
            "content": h(encoded),
            "sealed": h(box),
        })
    return cases


def _boundary(description: str, kind: MessageKind, sender: str, length: int,
              limit: int = size_classes.MAX_ENVELOPE_CLASS) -> Json:
    content = SealedContent(sender, kind, bytes([FILL]) * length)
    entry: Json = {"description": description, "kind": int(kind), "sender": sender,
                   "message_length": length}
    if limit != size_classes.MAX_ENVELOPE_CLASS:
        entry["limit"] = limit
    try:
        encoded = content.encode(limit)
    except MessageTooLarge:
        entry["error"] = error_name(content.encode, limit)
        return entry
    assert SealedContent.decode(encoded) == content
    entry.update({"content_length": len(encoded), "envelope_length": len(encoded) + SEAL_OVERHEAD,
                  "content_sha256": h(hashlib.sha256(encoded).digest())})
    return entry


def _boundaries() -> list[Json]:
    """For each class, the longest ratchet and PreKey messages it holds and one byte
    more; 3- and 32-character senders alternate, and land alike."""
    out = []
    prefix = PREKEY_PREFIX_MAX
    for size in ENVELOPE_CLASSES:
        ratchet_max = size - SEAL_OVERHEAD - CONTENT_OVERHEAD_MAX - prefix
        out.append(_boundary(f"ratchet message filling the {size} class", MessageKind.RATCHET,
                             LONG, ratchet_max))
        out.append(_boundary(f"ratchet message one byte over the {size} class",
                             MessageKind.RATCHET, SHORT, ratchet_max + 1))
        out.append(_boundary(f"PreKey message filling the {size} class", MessageKind.PREKEY,
                             SHORT, ratchet_max + prefix))
        out.append(_boundary(f"PreKey message one byte over the {size} class",
                             MessageKind.PREKEY, LONG, ratchet_max + prefix + 1))
    out.append(_boundary("empty ratchet message", MessageKind.RATCHET, SHORT, 0))
    out.append(_boundary("PreKey message of 4096-class size under a relay limit of 4096",
                         MessageKind.PREKEY, SHORT, 4096 - 87, limit=4096))
    out.append(_boundary("PreKey message of 4096-class size under a relay limit of 4095",
                         MessageKind.PREKEY, SHORT, 4096 - 87, limit=4095))
    out.append(_boundary("ratchet message under a relay limit below the smallest class",
                         MessageKind.RATCHET, SHORT, 0, limit=2047))
    return out


def _plaintexts() -> list[Json]:
    """Which class a session plaintext (section 9.1, before padding) travels in."""
    out = []
    for size in ENVELOPE_CLASSES:
        longest = size_classes.max_plaintext_len(size)
        for n in (longest, longest + 1):
            entry: Json = {"plaintext_length": n}
            try:
                entry["envelope_length"] = size_classes.envelope_size(n)
                entry["ratchet_message_length"] = size_classes.ratchet_message_len(n)
            except MessageTooLarge:
                entry["error"] = error_name(size_classes.envelope_size, n)
            out.append(entry)
    return [{"plaintext_length": 0, "ratchet_message_length": size_classes.ratchet_message_len(0),
             "envelope_length": size_classes.envelope_size(0)}, *out]


def _padded(head: bytes, total: int) -> bytes:
    return head + bytes(total - len(head))


def _content_errors(valid: bytes) -> list[Json]:
    """`valid` is the empty_message content ("abc", RATCHET, no message): 2000 bytes."""
    small = ENVELOPE_CLASSES[0] - SEAL_OVERHEAD
    head = b"\x02\x01\x03abc\x00\x00\x00\x00"
    assert valid == _padded(head, small)
    cases = [
        ("version 1 (the unpadded layout of earlier versions)", b"\x01\x01\x03abc"),
        ("version 1 byte in a padded content", b"\x01" + valid[1:]),
        ("unknown content version 3", b"\x03" + valid[1:]),
        ("unknown message kind 3", _padded(b"\x02\x03\x03abc\x00\x00\x00\x00", small)),
        ("message kind 0", _padded(b"\x02\x00\x03abc\x00\x00\x00\x00", small)),
        ("username too short", _padded(b"\x02\x01\x02ab\x00\x00\x00\x00", small)),
        ("username with an upper-case letter", _padded(b"\x02\x01\x03Abc\x00\x00\x00\x00", small)),
        ("username not ASCII", _padded(b"\x02\x01\x04a\xc3\xb6b\x00\x00\x00\x00", small)),
        ("username of 33 characters",
         _padded(b"\x02\x01\x21" + b"a" * 33 + b"\x00\x00\x00\x00", small)),
        ("message length beyond the end", _padded(b"\x02\x01\x03abc\x00\x00\x07\xd1", small)),
        ("last padding byte 0x01", valid[:-1] + b"\x01"),
        ("first padding byte 0x80", head + b"\x80" + valid[len(head) + 1:]),
        ("one byte short of the class", valid[:-1]),
        ("one byte over the class", valid + b"\x00"),
        ("padded to the next class", _padded(head, ENVELOPE_CLASSES[1] - SEAL_OVERHEAD)),
        ("padded to a size between classes", _padded(head, 3000)),
        ("no padding at all", head),
        ("empty", b""),
    ]
    return [{"description": description, "content": h(data),
             "error": error_name(SealedContent.decode, data)} for description, data in cases]


def build(ctx: Context) -> Json:
    rec, conv = ctx.recorded, ctx.conversation
    bob = conv.identities["bob"]
    alice = conv.identities["alice"]
    cases = _cases(ctx)
    good = bytes.fromhex(str(cases[3]["sealed"]))
    # username "AB" breaks the username rule; otherwise a well-formed content
    malformed = _padded(b"\x02\x01\x02AB\x00\x00\x00\x00", ENVELOPE_CLASSES[0] - SEAL_OVERHEAD)
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
    return {
        "description": "Sealed sender: crypto_box_seal of version (2) || kind || var8(sender) "
        "|| var32(message) || zeros to the recipient identity's X25519 form; the zeros make "
        "the box exactly one of envelope_classes, chosen from len(message) only (a RATCHET "
        "message counts prekey_prefix_max more bytes), never from the sender or the kind. "
        "The boxes are recorded. Boundary messages are message_length bytes of 0xa5.",
        "format": FORMAT,
        "version": sealed.SEALED_VERSION,
        "seal_overhead": SEAL_OVERHEAD,
        "content_overhead_max": CONTENT_OVERHEAD_MAX,
        "prekey_prefix_max": PREKEY_PREFIX_MAX,
        "envelope_classes": list(ENVELOPE_CLASSES),
        "cases": cases,
        "boundaries": _boundaries(),
        "plaintexts": _plaintexts(),
        "malformed_box": {
            "recipient_seed": h(bob.seed), "content": h(malformed), "sealed": h(malformed_box),
            "error": error_name(sealed.unseal, bob, malformed_box),
        },
        "box_failures": box_failures,
        "content_errors": _content_errors(bytes.fromhex(str(cases[3]["content"]))),
    }
