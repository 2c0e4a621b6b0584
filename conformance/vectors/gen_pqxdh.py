"""pqxdh.json: PQXDH from both sides and the session layer's first message
(docs/PROTOCOL.md sections 5, 6 and 9)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import (
    LABEL,
    error_name,
    fixed_encapsulation,
    flip,
    h,
    identity,
    identity_json,
)
from conformance.vectors.context import Context
from protocol.e2e import kdf, pqxdh
from protocol.e2e.keys import (
    TYPE_ED25519,
    X25519KeyPair,
    encode_key,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.session import Session


def build(ctx: Context) -> Json:
    rec, bob, alice = ctx.recorded, ctx.bob, ctx.alice
    cases = []
    mallory = identity("mallory")
    failures = []
    for index, (name, one_time, with_opk) in enumerate((
        ("one_time_kem_with_opk", True, True),
        ("last_resort_kem_without_opk", False, False),
    )):
        bundle = bob.bundle(one_time, with_opk)
        kem_pair = bob.kem_ot if one_time else bob.kem_lr
        ct, ss = rec.kem(kem_pair, rec.lookup("pqxdh", "cases", index))
        alice_label, bob_label = f"{LABEL}pqxdh/{name}/alice", f"{LABEL}pqxdh/{name}/bob"

        init = pqxdh.initiate(alice, bundle, Drbg(alice_label),
                              fixed_encapsulation(ct, ss, bundle.kem_prekey.public))
        ephemeral = X25519KeyPair.generate(Drbg(alice_label))
        agreement = init.agreement
        ikm = b"\xff" * 32 + b"".join(agreement.dh) + ss
        assert kdf.hkdf(kdf.ZERO_SALT, ikm, kdf.PQXDH_INFO, 32) == agreement.sk

        alice_rng = Drbg(alice_label)
        session = Session.initiate(alice, bundle, alice_rng,
                                   fixed_encapsulation(ct, ss, bundle.kem_prekey.public))
        assert session.pending_prefix == init.prefix
        plaintext = f"first message ({name})".encode()
        kind, message = session.encrypt(plaintext)

        msg = PreKeyMessage.decode(message)
        spk_pair, opk_pair = bob.spk, (bob.opk if with_opk else None)
        response = pqxdh.respond(bob.identity, msg, spk_pair, kem_pair, opk_pair)
        assert response == agreement
        bob_session, received, consumed = Session.respond(bob.identity, message, bob.lookup,
                                                          Drbg(bob_label))
        assert received == plaintext

        cases.append({
            "name": name,
            "rng": {"alice": alice_label, "bob": bob_label},
            "alice": identity_json(alice),
            "bob": bob.private_json(bundle),
            "bundle": h(bundle.encode()),
            "ephemeral_private": h(ephemeral.private),
            "ephemeral_public": h(ephemeral.public),
            "kem_ciphertext": h(ct),
            "kem_shared_secret": h(ss),
            "dh": [h(d) for d in agreement.dh],
            "ikm": h(ikm),
            "sk": h(agreement.sk),
            "ad": h(agreement.ad),
            "prekey_prefix": h(init.prefix),
            "first_message": {
                "alice_ratchet_private": h(session.ratchet.dhs.private),
                "alice_ratchet_public": h(session.ratchet.dhs.public),
                "plaintext": h(plaintext),
                "kind": int(kind),
                "message": h(message),
                "bob_ratchet_private": h(bob_session.ratchet.dhs.private),
                "bob_ratchet_public": h(bob_session.ratchet.dhs.public),
            },
            "consumed": {"one_time_prekey_id": consumed.one_time_prekey_id,
                         "kem_prekey_id": consumed.kem_prekey_id},
        })

        if index == 0:
            prefix_ct_at = len(init.prefix) - 1088
            wrong_identity = (message[:1] + encode_key(TYPE_ED25519, mallory.public)
                              + message[34:])
            for description, data in (
                ("KEM ciphertext with one bit flipped (ML-KEM's implicit rejection yields "
                 "another SS, so the first message fails its MAC)",
                 flip(message, prefix_ct_at + 100)),
                ("IK_A replaced by another identity (DH1 and AD change)", wrong_identity),
                ("EK_A with one bit flipped", flip(message, 1 + 33 + 1 + 5)),
                ("EK_A made non-canonical: its top bit set (u >= 2^255 - 19)",
                 flip(message, 1 + 33 + 1 + 31, 0x80)),
                ("first ratchet message with its MAC's last bit flipped",
                 flip(message, len(message) - 1)),
            ):
                failures.append({
                    "case": name,
                    "description": description,
                    "message": h(data),
                    "error": error_name(Session.respond, bob.identity, data, bob.lookup,
                                        Drbg(bob_label)),
                })

    return {
        "description": "PQXDH (X25519, SHA-256, ML-KEM-768) from both sides; the session "
        "layer's first message.",
        "format": FORMAT,
        "info": kdf.PQXDH_INFO.decode("ascii"),
        "cases": cases,
        "failures": failures,
    }
