"""PQXDH key agreement (Signal's PQXDH specification, revision 3), sans-I/O.

Parameters: curve X25519, hash SHA-256, KEM ML-KEM-768, info = kdf.PQXDH_INFO.
Identity keys are Ed25519 and enter every DH through their X25519 form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.e2e.errors import SessionSetupError
from protocol.e2e.kdf import pqxdh_kdf
from protocol.e2e.keys import (
    TYPE_ED25519,
    IdentityKeyPair,
    KemKeyPair,
    Rng,
    X25519KeyPair,
    default_rng,
    encode_key,
    identity_dh_public,
    kem_encapsulate,
    x25519,
)
from protocol.e2e.messages import PreKeyMessage, encode_prekey_prefix
from protocol.wire.prekeys import PreKeyBundle

Encapsulate = Callable[[bytes], tuple[bytes, bytes]]
"""(KEM public key) -> (ciphertext, shared secret)."""


def associated_data(initiator_identity: bytes, responder_identity: bytes) -> bytes:
    """AD = Encode(IK_A) || Encode(IK_B) (PQXDH section 3.3): 66 bytes."""
    return encode_key(TYPE_ED25519, initiator_identity) + encode_key(
        TYPE_ED25519, responder_identity
    )


@dataclass(frozen=True, slots=True)
class Agreement:
    """The outputs of one side of PQXDH. `dh` and `kem_shared_secret` are kept only
    for test vectors; sessions never store them."""

    sk: bytes
    ad: bytes
    dh: tuple[bytes, ...]
    kem_shared_secret: bytes


@dataclass(frozen=True, slots=True)
class Initiation:
    """Alice's side: the agreement, Bob's signed prekey (her first DHr), and the
    initial-message prefix to put in front of her ratchet messages."""

    agreement: Agreement
    signed_prekey: bytes
    prefix: bytes


def initiate(
    identity: IdentityKeyPair,
    bundle: PreKeyBundle,
    rng: Rng = default_rng,
    encapsulate: Encapsulate = kem_encapsulate,
) -> Initiation:
    """PQXDH section 3.3: verify the bundle, encapsulate, compute DH1..DH4 and SK."""
    bundle.verify()  # raises BadSignature before any key in the bundle is used
    peer_dh = identity_dh_public(bundle.identity)
    ciphertext, ss = encapsulate(bundle.kem_prekey.public)
    ephemeral = X25519KeyPair.generate(rng)
    spk = bundle.signed_prekey.public
    dh = [identity.dh(spk), ephemeral.dh(peer_dh), ephemeral.dh(spk)]
    opk_id = None
    if bundle.one_time_prekey is not None:
        dh.append(ephemeral.dh(bundle.one_time_prekey.public))
        opk_id = bundle.one_time_prekey.key_id
    agreement = Agreement(
        pqxdh_kdf(b"".join(dh) + ss),
        associated_data(identity.public, bundle.identity),
        tuple(dh),
        ss,
    )
    prefix = encode_prekey_prefix(
        identity.public,
        ephemeral.public,
        bundle.signed_prekey.key_id,
        bundle.kem_kind,
        bundle.kem_prekey.key_id,
        opk_id,
        ciphertext,
    )
    return Initiation(agreement, spk, prefix)


def respond(
    identity: IdentityKeyPair,
    message: PreKeyMessage,
    signed_prekey: X25519KeyPair,
    kem_prekey: KemKeyPair,
    one_time_prekey: X25519KeyPair | None,
) -> Agreement:
    """PQXDH section 3.4: Bob recomputes the same SK from the private keys the
    caller looked up by the ids in `message`."""
    if (message.one_time_prekey_id is None) != (one_time_prekey is None):
        raise SessionSetupError("one-time prekey missing or unexpected")
    peer_dh = identity_dh_public(message.identity)
    ss = kem_prekey.decapsulate(message.kem_ciphertext)
    ek = message.ephemeral
    dh = [
        x25519(signed_prekey.private, peer_dh),
        identity.dh(ek),
        signed_prekey.dh(ek),
    ]
    if one_time_prekey is not None:
        dh.append(one_time_prekey.dh(ek))
    return Agreement(
        pqxdh_kdf(b"".join(dh) + ss),
        associated_data(message.identity, identity.public),
        tuple(dh),
        ss,
    )
