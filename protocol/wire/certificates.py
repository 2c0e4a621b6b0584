"""Sender certificates (docs/PROTOCOL.md section 20), sans-I/O and public data.

A relay issues a logged-in user a short-lived certificate binding the user's name to
their registered identity key, signed by the relay's certificate key:

    certificate = version u8 (0x01) || var8 username || Encode(IK) (33)
                  || expires u64 (Unix seconds) || signature (64)
    signature   = Ed25519(cert key, certificate_statement(username, IK, expires))

A sender puts it inside sealed content so the recipient learns who wrote without
asking the relay (LOOKUP_IDENTITY would tell it who contacted whom). Verification
is strict: the layout (no trailing bytes), the signature, then the expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.wire import codec
from protocol.wire.errors import CertificateExpired, DecodeError
from protocol.wire.publickeys import (
    ED25519_LEN,
    ENCODED_ED25519_LEN,
    SIGNATURE_LEN,
    TYPE_ED25519,
    check_identity_key,
    decode_key,
    encode_key,
    verify_signature,
)
from protocol.wire.usernames import check_username, decode_username

CERT_VERSION = 0x01
CERT_PURPOSE = b"blindrelay-sender-cert-v1\x00"
CERT_SEED_LEN = 32
DEFAULT_LIFETIME = 24 * 3600
"""Seconds a relay's certificate is valid by default (`serve --certificate-lifetime`)."""
MAX_CERTIFICATE_LEN = 1 + 1 + 32 + ENCODED_ED25519_LEN + 8 + SIGNATURE_LEN
"""The longest certificate (a 32-character username): 139 bytes."""

Sign = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class SenderCertificate:
    """What a certificate vouches for: `identity` is the raw Ed25519 key (32 bytes)."""

    username: str
    identity: bytes
    expires: int


def certificate_statement(username: str, identity: bytes, expires: int) -> bytes:
    """What the relay signs: purpose || var8 username || Encode(IK) || u64 expires."""
    return (CERT_PURPOSE + codec.var8(username.encode("ascii"))
            + encode_key(TYPE_ED25519, identity) + codec.u64(expires))


def encode(cert: SenderCertificate, signature: bytes) -> bytes:
    """The certificate's bytes (section 20.1)."""
    if len(signature) != SIGNATURE_LEN:
        raise ValueError("a signature is 64 bytes")
    return (codec.u8(CERT_VERSION) + codec.var8(cert.username.encode("ascii"))
            + encode_key(TYPE_ED25519, cert.identity) + codec.u64(cert.expires)
            + signature)


def decode(data: bytes) -> tuple[SenderCertificate, bytes]:
    """(certificate, signature), checking the layout only: version 0x01, a username
    of section 12, a valid encoded Ed25519 key, no trailing bytes. Raises DecodeError
    (InvalidUsername for the name)."""
    r = codec.Reader(data)
    version = r.u8()
    if version != CERT_VERSION:
        raise DecodeError(f"sender certificate version {version:#04x} (this side speaks "
                          f"{CERT_VERSION:#04x})")
    username = decode_username(r.var8())
    identity = decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN))
    expires = r.u64()
    signature = r.take(SIGNATURE_LEN)
    r.finish()
    return SenderCertificate(username, identity, expires), signature


def signer_from_seed(seed: bytes) -> tuple[Sign, bytes]:
    """(sign, raw public key) of a 32-byte Ed25519 seed: the relay's cert.key."""
    if len(seed) != CERT_SEED_LEN:
        raise ValueError("a certificate key seed is 32 bytes")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key.sign, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def issue(signer: bytes | Sign, username: str, identity: bytes, expires: int) -> bytes:
    """A certificate for `username` and its raw identity key, valid until `expires`
    (Unix seconds), signed with `signer`: a 32-byte seed or a signing callable."""
    check_username(username)
    if len(identity) != ED25519_LEN:
        raise ValueError("an identity key is 32 bytes")
    check_identity_key(identity)
    if not 0 <= expires < 2**64:
        raise ValueError("expires must fit in a u64")
    sign = signer_from_seed(signer)[0] if isinstance(signer, bytes) else signer
    cert = SenderCertificate(username, identity, expires)
    return encode(cert, sign(certificate_statement(username, identity, expires)))


def verify_certificate(data: bytes, cert_public_key: bytes,
                       now: float) -> SenderCertificate:
    """The certificate in `data` if it parses, its signature verifies under the relay's
    certificate key (raw, 32 bytes) and it has not expired (`now < expires`). Raises
    DecodeError, BadSignature or CertificateExpired, in that order of checking."""
    cert, signature = decode(data)
    verify_signature(cert_public_key, signature,
                     certificate_statement(cert.username, cert.identity, cert.expires))
    if now >= cert.expires:
        raise CertificateExpired(f"the certificate for {cert.username} expired at "
                                 f"{cert.expires} (now {int(now)})")
    return cert
