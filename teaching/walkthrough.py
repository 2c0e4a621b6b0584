"""A terminal walk-through of the protocol core, with no server: Alice and Bob set up
a PQXDH session and talk; beside each message, the bytes a relay would hold."""

from __future__ import annotations

import hashlib
import os
import time

from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.safety_numbers import format_safety_number, safety_number
from protocol.e2e.sealed import SealedContent, seal, unseal
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.certificates import DEFAULT_LIFETIME, issue
from protocol.wire.prekeys import KemKind, PreKeyBundle


def run(count: int) -> int:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    # the relay's certificate key vouches for each name's identity key (PROTOCOL.md 20)
    cert_key, expires = os.urandom(32), int(time.time()) + DEFAULT_LIFETIME
    certificates = {"alice": issue(cert_key, "alice", alice.public, expires),
                    "bob": issue(cert_key, "bob", bob.public, expires)}
    spk, spk_pub = make_signed_prekey(bob, 1)
    kem, kem_pub = make_kem_prekey(bob, 17)
    opk, opk_pub = make_one_time_prekey(42)
    bundle = PreKeyBundle(bob.public, spk_pub, KemKind.ONE_TIME, kem_pub, opk_pub)
    print("Bob published a bundle: signed prekey 1, ML-KEM-768 one-time prekey 17, "
          "one-time prekey 42.")
    a_session = Session.initiate(alice, bundle)
    print("Alice verified both signatures and ran PQXDH.\n")
    b_session: Session | None = None
    speakers = [("alice", alice, bob, "Bob"), ("bob", bob, alice, "Alice")]
    for i in range(count):
        name, _me, peer, peer_name = speakers[i % 2]
        text = f"message {i + 1} from {name}"
        session = a_session if name == "alice" else b_session
        assert session is not None
        kind, message = session.encrypt(text.encode())
        envelope = seal(peer.public, SealedContent(certificates[name], kind, message))
        digest = hashlib.sha256(envelope).hexdigest()[:16]
        print(f"{name:>5} typed : {text}")
        print(f"relay holds : to={peer_name.lower()} {len(envelope)} bytes "
              f"sha256={digest}... {envelope[:12].hex()}...")
        content = unseal(peer, envelope)
        if name == "alice" and b_session is None:
            b_session, plaintext, used = Session.respond(
                bob, content.message, lambda _m: PrivatePrekeys(spk, kem, opk))
            print(f"  Bob set up the session and deletes one-time prekeys {used}")
        else:
            receiver = b_session if name == "alice" else a_session
            assert receiver is not None
            plaintext = receiver.decrypt(content.kind, content.message)
        print(f"{peer_name:>5} reads : {plaintext.decode()}\n")
    number = safety_number(alice.public, "alice", bob.public, "bob")
    print("Safety number both sides see:\n" + format_safety_number(number))
    return 0
