"""frames.json: one client-server frame of each type, statements, URL normalisation and
invalid client frames (docs/PROTOCOL.md section 16)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, h
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.wire import frames, tls
from protocol.wire.prekeys import KemKind, PreKeyBundle

CAPABILITY = bytes(range(32))
"""A delivery capability (16.10): any 32 bytes; SET_CAPABILITY carries its SHA-256."""
CAPABILITY_HASH = hashlib.sha256(CAPABILITY).digest()

GROUP_ID = bytes(range(100, 116))
COMMIT = (tls.u16(1) + tls.u16(2) + tls.opaque(GROUP_ID) + tls.u64(7) + tls.u8(3)
          + tls.opaque(b"") + tls.opaque(b"\x05" * 20) + tls.opaque(b"\x06" * 40))
"""The cleartext header of an MLS PrivateMessage carrying a commit for epoch 7 of a
group (RFC 9420 section 6.3), then opaque bytes: what GROUP_SEND carries (21.2)."""
KEY_PACKAGE = tls.u16(1) + tls.u16(5) + b"\x07" * 60
"""An MLSMessage KeyPackage as the relay sees it: version 1, wire format 5, opaque."""

SMALL_ORDER_KEY = b"\x01" + bytes(31)
"""The Ed25519 encoding of the neutral point (y = 1): a key with no X25519 form."""


def build() -> Json:
    rng = Drbg("blindrelay/vectors/v1/frames")
    alice = IdentityKeyPair.generate(rng)
    _, spk = make_signed_prekey(alice, 1, rng)
    _, kem = make_kem_prekey(alice, 2, rng)
    _, opk = make_one_time_prekey(3, rng)
    challenge = rng(32)
    envelope_id = rng(16)
    url = frames.normalize_url("WS://LocalHost:8765/")
    login = frames.login_statement(url, challenge, "alice")
    register = frames.register_statement(url, challenge, "alice", alice.public)
    delete = frames.delete_account_statement(url, challenge, "alice")
    limits = frames.Limits(262144, 65536, 64, 10000, 500, 200, 400, 2592000, 10)
    bundle = PreKeyBundle(alice.public, spk, KemKind.LAST_RESORT, kem, opk)
    client_frames: list[tuple[str, frames.Frame]] = [
        ("REGISTER", frames.Register("alice", alice.public, alice.sign(register))),
        ("LOGIN", frames.Login("alice", alice.sign(login))),
        ("UPLOAD_SIGNED_PREKEYS", frames.UploadSignedPrekeys(spk, kem)),
        ("UPLOAD_ONE_TIME_PREKEYS", frames.UploadOneTimePrekeys((opk,), (kem,))),
        ("FETCH_BUNDLE", frames.FetchBundle("bob")),
        ("LOOKUP_IDENTITY", frames.LookupIdentity("bob")),
        ("PREKEY_COUNT", frames.PrekeyCount()),
        ("SEND", frames.Send((frames.Outgoing("bob", b"\x01" * 3),
                              frames.Outgoing("carol", b"\x02")))),
        ("ACK", frames.Ack((envelope_id,))),
        ("DELETE_ACCOUNT", frames.DeleteAccount(alice.sign(delete))),
        ("SET_CAPABILITY", frames.SetCapability(True, CAPABILITY_HASH)),
        ("SEALED_SEND", frames.SealedSend((
            frames.SealedOutgoing("bob", CAPABILITY, b"\x03" * 5),
            frames.SealedOutgoing("carol", bytes(32), b"\x04")))),
        ("KT_INFO", frames.KtInfo()),
        ("KT_CONSISTENCY", frames.KtConsistency(3, 8)),
        ("KT_LOOKUP", frames.KtLookup("bob")),
        ("KT_ENTRIES", frames.KtEntries(0, 2000)),
        ("KT_OWN", frames.KtOwn()),
        ("GET_CERTIFICATE", frames.GetCertificate()),
        ("CERT_KEY", frames.CertKey()),
        ("UPLOAD_KEY_PACKAGES", frames.UploadKeyPackages(False, (KEY_PACKAGE, KEY_PACKAGE))),
        ("FETCH_KEY_PACKAGE", frames.FetchKeyPackage("bob")),
        ("GROUP_SEND", frames.GroupSend(("bob", "carol"), COMMIT)),
    ]
    server_frames: list[tuple[str, frames.Frame]] = [
        ("HELLO", frames.Hello(challenge, limits)),
        ("OK", frames.Ok()),
        ("BUNDLE", frames.Bundle(bundle.encode())),
        ("IDENTITY", frames.Identity(alice.public)),
        ("PREKEY_COUNTS", frames.PrekeyCounts(7, 3)),
        ("SENT", frames.Sent((envelope_id,))),
        ("DELIVER", frames.Deliver(envelope_id, 1_780_000_000, b"\x09" * 4)),
        ("PREKEYS_LOW", frames.PrekeysLow(2, 0)),
        ("QUEUE_DONE", frames.QueueDone(5)),
        ("ERROR", frames.Error(frames.ErrorCode.QUEUE_FULL, "the queue of 'bob' is full")),
        ("KT_CONSISTENCY_PROOF", frames.KtConsistencyProof(b"\x0a" * 32, (b"\x0b" * 32,))),
        ("KT_ENTRY_RANGE", frames.KtEntryRange(4, (b"\x0c" * 32,), (b"\x0d" * 96,))),
        ("CERT_KEY_ANSWER", frames.CertKeyAnswer(alice.public)),
        ("KEY_PACKAGE", frames.KeyPackageAnswer(KEY_PACKAGE)),
        ("GROUP_DELIVER", frames.GroupDeliver(envelope_id, 1_780_000_000, COMMIT)),
    ]

    def entries(items: list[tuple[str, frames.Frame]], decode: Callable[[bytes], Any],
                first_id: int) -> list[Json]:
        out = []
        for i, (name, frame) in enumerate(items):
            request_id = 0 if name in ("HELLO", "DELIVER", "PREKEYS_LOW", "QUEUE_DONE",
                                       "GROUP_DELIVER") \
                else first_id + i
            encoded = frames.encode_frame(frame, request_id)
            assert decode(encoded) == (request_id, frame)
            out.append({"name": name, "type": frame.TYPE, "request_id": request_id,
                        "encoded": h(encoded)})
        return out

    good = frames.encode_frame(frames.FetchBundle("bob"), 9)
    bad = [
        ("too short", good[:5]),
        ("unknown version", b"\x02" + good[1:]),
        ("unknown type", good[:1] + b"\x7f" + good[2:]),
        ("server frame sent by a client", frames.encode_frame(frames.Ok(), 9)),
        ("trailing byte", good + b"\x00"),
        ("truncated payload", good[:-1]),
        ("invalid username", frames.encode_frame(frames.FetchBundle("bob"), 9)[:-3] + b"B0b"),
        ("SEND with no envelope", good[:1] + b"\x20" + good[2:6] + b"\x00\x00"),
        ("SEALED_SEND with no envelope", good[:1] + b"\x22" + good[2:6] + b"\x00\x00"),
        ("SET_CAPABILITY with an undefined flag bit",
         good[:1] + b"\x15" + good[2:6] + b"\x02" + CAPABILITY_HASH),
        ("GROUP_SEND of something that is not an MLS group message",
         frames.encode_frame(frames.GroupSend(("bob",), COMMIT), 9)[:-len(COMMIT)]
         + KEY_PACKAGE[:len(COMMIT)].ljust(len(COMMIT), b"\x00")),
        ("GROUP_SEND naming a recipient twice",
         good[:1] + b"\x23" + good[2:6] + b"\x00\x02" + b"\x03bob" * 2
         + len(COMMIT).to_bytes(4, "big") + COMMIT),
        ("UPLOAD_KEY_PACKAGES with two last-resort packages",
         good[:1] + b"\x18" + good[2:6] + b"\x01\x00\x02"
         + (len(KEY_PACKAGE).to_bytes(4, "big") + KEY_PACKAGE) * 2),
        # the identity point (order 1) with the universal signature R = identity, S = 0,
        # which verifies for every message under a non-strict Ed25519
        ("REGISTER with a small-order identity key",
         frames.encode_frame(frames.Register("mallory", SMALL_ORDER_KEY,
                                             SMALL_ORDER_KEY + bytes(32)), 9)),
    ]
    invalid = [{"description": d, "encoded": h(e),
                "error": error_name(frames.decode_client_frame, e)} for d, e in bad]
    urls = [(u, frames.normalize_url(u)) for u in
            ("ws://127.0.0.1:8765", "WS://LocalHost:8765/", "wss://relay.example",
             "ws://relay.example", "ws://[::1]:9000/path")]
    return {
        "description": "Client-server frames (docs/PROTOCOL.md section 16): one of each, "
                       "encoded with the request id given, plus the signed statements.",
        "format": FORMAT,
        "identity_seed": h(alice.seed),
        "server_url": url,
        "challenge": h(challenge),
        "login_statement": h(login),
        "register_statement": h(register),
        "delete_account_statement": h(delete),
        "normalize_url": [{"input": i, "normalized": o} for i, o in urls],
        "client_frames": entries(client_frames, frames.decode_client_frame, 1),
        "server_frames": entries(server_frames, frames.decode_server_frame, 100),
        "client_invalid": invalid,
    }
