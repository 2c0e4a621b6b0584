"""sealed.json: sealed-sender boxes (recorded), the envelope size classes and where each
class ends, and boxes and contents that must be rejected (docs/PROTOCOL.md section 10).

The senders' certificates (section 20) are issued with a certificate key drawn from
DRBG("blindrelay/vectors/v1/sealed"): its seed (32 bytes), then one identity seed per
name of CERT_NAMES that is not a conversation party (32 each); alice's and bob's are
their conversation identities. Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import hashlib

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, flip, h, identity_json
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
from protocol.wire.certificates import issue, signer_from_seed

FILL = 0xA5
"""The byte the class-boundary messages are made of (`message_length` times)."""

SHORT, LONG = "abc", "a" * 31 + "z"  # the shortest and the longest usernames
EXPIRES = 1_900_000_000
"""Every certificate here expires then (the vectors check layout, not expiry)."""
CERT_NAMES = ("alice", "bob", SHORT, LONG)


def certificates(ctx: Context) -> tuple[bytes, bytes, dict[str, bytes]]:
    """(the certificate key's seed, its public key, each name's certificate)."""
    rng = Drbg(LABEL + "sealed")
    seed = rng(32)
    sign, public = signer_from_seed(seed)
    identities = ctx.conversation.identities
    certs = {}
    for name in CERT_NAMES:
        identity = identities[name].public if name in identities else \
            signer_from_seed(rng(32))[1]
        certs[name] = issue(sign, name, identity, EXPIRES)
    return seed, public, certs


def _cases(ctx: Context, certs: dict[str, bytes]) -> list[Json]:
    rec, conv = ctx.recorded, ctx.conversation
    bob = conv.identities["bob"]
    alice = conv.identities["alice"]
    contents = [
        ("prekey_message",
         SealedContent(certs["alice"], MessageKind.PREKEY, conv.messages["A0"][1]), bob),
        ("ratchet_message",
         SealedContent(certs["bob"], MessageKind.RATCHET, conv.messages["B0"][1]), alice),
        ("ratchet_message_longest_sender",
         SealedContent(certs[LONG], MessageKind.RATCHET, conv.messages["B0"][1]), alice),
        ("empty_message", SealedContent(certs[SHORT], MessageKind.RATCHET, b""), bob),
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
            "certificate": h(content.certificate),
            "sender": content.sender,
            "kind": int(content.kind),
            "message": h(content.message),
            "content": h(encoded),
            "sealed": h(box),
        })
    return cases


def _boundary(certs: dict[str, bytes], description: str, kind: MessageKind, sender: str,
              length: int, limit: int = size_classes.MAX_ENVELOPE_CLASS) -> Json:
    content = SealedContent(certs[sender], kind, bytes([FILL]) * length)
    entry: Json = {"description": description, "kind": int(kind), "sender": sender,
                   "certificate": h(certs[sender]), "message_length": length}
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


def _boundaries(certs: dict[str, bytes]) -> list[Json]:
    """For each class, the longest ratchet and PreKey messages it holds and one byte
    more; the certificates of 3- and 32-character senders alternate, and land alike."""
    out = []
    prefix = PREKEY_PREFIX_MAX
    for size in ENVELOPE_CLASSES:
        ratchet_max = size - SEAL_OVERHEAD - CONTENT_OVERHEAD_MAX - prefix
        out.append(_boundary(certs, f"ratchet message filling the {size} class",
                             MessageKind.RATCHET, LONG, ratchet_max))
        out.append(_boundary(certs, f"ratchet message one byte over the {size} class",
                             MessageKind.RATCHET, SHORT, ratchet_max + 1))
        out.append(_boundary(certs, f"PreKey message filling the {size} class",
                             MessageKind.PREKEY, SHORT, ratchet_max + prefix))
        out.append(_boundary(certs, f"PreKey message one byte over the {size} class",
                             MessageKind.PREKEY, LONG, ratchet_max + prefix + 1))
    out.append(_boundary(certs, "empty ratchet message", MessageKind.RATCHET, SHORT, 0))
    out.append(_boundary(certs, "PreKey message of 4096-class size under a relay limit of 4096",
                         MessageKind.PREKEY, SHORT, 4096 - 195, limit=4096))
    out.append(_boundary(certs, "PreKey message of 4096-class size under a relay limit of 4095",
                         MessageKind.PREKEY, SHORT, 4096 - 195, limit=4095))
    out.append(_boundary(certs, "ratchet message under a relay limit below the smallest class",
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


def _content_errors(valid: bytes, cert: bytes) -> list[Json]:
    """`valid` is the empty_message content (the certificate `cert` of "abc", RATCHET,
    no message): 2000 bytes."""
    small = ENVELOPE_CLASSES[0] - SEAL_OVERHEAD

    def head(version: int = 3, kind: int = 1, certificate: bytes = cert,
             length: int = 0) -> bytes:
        return (bytes([version, kind]) + len(certificate).to_bytes(2, "big") + certificate
                + length.to_bytes(4, "big"))

    def with_cert(certificate: bytes) -> bytes:
        return _padded(head(certificate=certificate), small)

    good = head()
    assert valid == _padded(good, small)
    name = 4 + 2  # the username in the certificate: after its version and length
    cases = [
        ("version 1 (the unpadded layout of earlier versions)", b"\x01\x01\x03abc"),
        ("version 2 (a var8 username instead of a certificate)",
         _padded(b"\x02\x01\x03abc\x00\x00\x00\x00", small)),
        ("version 2 byte in a version 3 content", b"\x02" + valid[1:]),
        ("unknown content version 4", b"\x04" + valid[1:]),
        ("unknown message kind 3", _padded(head(kind=3), small)),
        ("message kind 0", _padded(head(kind=0), small)),
        ("no certificate", with_cert(b"")),
        ("certificate one byte short", with_cert(cert[:-1])),
        ("certificate with a trailing byte", with_cert(cert + b"\x00")),
        ("certificate version 0x02", with_cert(b"\x02" + cert[1:])),
        ("certificate username with an upper-case letter",
         with_cert(cert[:name] + b"A" + cert[name + 1:])),
        ("message length beyond the end", _padded(head(length=2001), small)),
        ("last padding byte 0x01", valid[:-1] + b"\x01"),
        ("first padding byte 0x80", good + b"\x80" + valid[len(good) + 1:]),
        ("one byte short of the class", valid[:-1]),
        ("one byte over the class", valid + b"\x00"),
        ("padded to the next class", _padded(good, ENVELOPE_CLASSES[1] - SEAL_OVERHEAD)),
        ("padded to a size between classes", _padded(good, 3000)),
        ("no padding at all", good),
        ("empty", b""),
    ]
    return [{"description": description, "content": h(data),
             "error": error_name(SealedContent.decode, data)} for description, data in cases]


def build(ctx: Context) -> Json:
    rec, conv = ctx.recorded, ctx.conversation
    bob = conv.identities["bob"]
    alice = conv.identities["alice"]
    cert_seed, cert_public, certs = certificates(ctx)
    cases = _cases(ctx, certs)
    good = bytes.fromhex(str(cases[3]["sealed"]))
    # a certificate whose username "AB" breaks the username rule; otherwise well-formed
    short = certs[SHORT]
    bad = short[:1] + b"\x02AB" + short[5:]
    malformed = _padded(b"\x03\x01" + len(bad).to_bytes(2, "big") + bad + bytes(4),
                        ENVELOPE_CLASSES[0] - SEAL_OVERHEAD)
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
        "description": "Sealed sender: crypto_box_seal of version (3) || kind || "
        "var16(sender certificate) || var32(message) || zeros to the recipient identity's "
        "X25519 form; the zeros make the box exactly one of envelope_classes, chosen from "
        "len(message) only (a RATCHET message counts prekey_prefix_max more bytes), never "
        "from the certificate or the kind. `sender` is the certificate's username. The "
        "certificates are issued with cert_key and expire at 1900000000. The boxes are "
        "recorded. Boundary messages are message_length bytes of 0xa5.",
        "format": FORMAT,
        "version": sealed.SEALED_VERSION,
        "seal_overhead": SEAL_OVERHEAD,
        "content_overhead_max": CONTENT_OVERHEAD_MAX,
        "prekey_prefix_max": PREKEY_PREFIX_MAX,
        "envelope_classes": list(ENVELOPE_CLASSES),
        "cert_key": {"seed": h(cert_seed), "public": h(cert_public)},
        "cases": cases,
        "boundaries": _boundaries(certs),
        "plaintexts": _plaintexts(),
        "malformed_box": {
            "recipient_seed": h(bob.seed), "content": h(malformed), "sealed": h(malformed_box),
            "error": error_name(sealed.unseal, bob, malformed_box),
        },
        "box_failures": box_failures,
        "content_errors": _content_errors(bytes.fromhex(str(cases[3]["content"])), short),
    }
