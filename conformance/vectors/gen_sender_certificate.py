"""sender_certificate.json: sender certificates a relay issues and the ones a
recipient must refuse (docs/PROTOCOL.md section 20).

Drawn, in this order, from DRBG("blindrelay/vectors/v1/sender_certificate"): the
relay's certificate key seed (32 bytes), then one identity key seed per user of USERS
(32 each). Ed25519 signatures are deterministic, so every byte reproduces.
"""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, flip, h
from protocol.wire.certificates import (
    CERT_PURPOSE,
    certificate_statement,
    issue,
    signer_from_seed,
    verify_certificate,
)
from protocol.wire.publickeys import TYPE_X25519

USERS = (("alice", 1_900_000_000), ("bob", 1_900_086_400), ("a" * 32, 2**64 - 1),
         ("x.y-z_0", 1))
"""(username, expires): the shortest-looking, the longest name, the largest expiry."""


def build() -> Json:
    rng = Drbg(LABEL + "sender_certificate")
    cert_seed = rng(32)
    sign, cert_public = signer_from_seed(cert_seed)
    other_public = signer_from_seed(rng(32))[1]
    valid: list[Json] = []
    for username, expires in USERS:
        identity_seed = rng(32)
        identity = signer_from_seed(identity_seed)[1]
        certificate = issue(sign, username, identity, expires)
        now = expires - 1
        verify_certificate(certificate, cert_public, now)
        valid.append({"username": username, "identity_seed": h(identity_seed),
                      "identity": h(identity), "expires": expires, "now": now,
                      "statement": h(certificate_statement(username, identity, expires)),
                      "certificate": h(certificate)})
    alice = bytes.fromhex(valid[0]["certificate"])
    expires = valid[0]["expires"]
    now = expires - 3600
    cases = [
        ("a flipped signature bit", flip(alice, len(alice) - 1), now, cert_public),
        ("a flipped bit in the name", flip(alice, 2), now, cert_public),
        ("a flipped bit in the expiry", flip(alice, 47), now, cert_public),
        ("signed by another relay's key", alice, now, other_public),
        ("expired: now equals expires", alice, expires, cert_public),
        ("expired: a day later", alice, expires + 86400, cert_public),
        ("a trailing byte", alice + b"\x00", now, cert_public),
        ("one byte short", alice[:-1], now, cert_public),
        ("wrong version 0x02", b"\x02" + alice[1:], now, cert_public),
        ("wrong version 0x00", b"\x00" + alice[1:], now, cert_public),
        ("an upper-case name", alice[:2] + b"A" + alice[3:], now, cert_public),
        ("an X25519 key type", alice[:7] + bytes((TYPE_X25519,)) + alice[8:], now,
         cert_public),
        ("a small-order identity key", alice[:8] + bytes(32) + alice[40:], now, cert_public),
        ("empty", b"", now, cert_public),
    ]
    invalid = [{"description": what, "certificate": h(data), "now": when,
                "cert_public": h(key), "error": error_name(verify_certificate, data, key, when)}
               for what, data, when, key in cases]
    return {
        "description": "Sender certificates (section 20): version 0x01 || var8 username || "
                       "Encode(IK) || u64 expires || Ed25519 signature by the relay's "
                       "certificate key over purpose || var8 username || Encode(IK) || "
                       "u64 expires; valid until now >= expires.",
        "format": FORMAT,
        "purpose": h(CERT_PURPOSE),
        "cert_key": {"seed": h(cert_seed), "public": h(cert_public)},
        "valid": valid,
        "invalid": invalid,
    }
