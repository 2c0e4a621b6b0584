"""Sender certificates (docs/PROTOCOL.md 20): a logged-in user gets a certificate
that verifies under the key CERT_KEY announces, names the user and the identity key
it registered, and has not expired; GET_CERTIFICATE needs a login, CERT_KEY does not.
"""

from __future__ import annotations

import time

from conformance.relay.probe import CheckFailed
from conformance.relay.registry import Context, check
from protocol.wire.certificates import verify_certificate
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import Certificate, CertKey, CertKeyAnswer, ErrorCode, GetCertificate

CLOCK_SLACK = 300
"""Seconds this machine's clock may be ahead of the relay's: a certificate must still be
valid this long after now (the shortest sane lifetime is far longer)."""


@check("certificates.issued_certificate_verifies")
async def issued_certificate_verifies(ctx: Context) -> None:
    """GET_CERTIFICATE (logged in) answers a certificate that verifies under the key
    CERT_KEY announces, for the caller's name and registered identity key, expiring in
    the future; CERT_KEY gives the same key before and after login."""
    anonymous = await ctx.connect()
    before = await anonymous.request(CertKey(), CertKeyAnswer, "CERT_KEY before login")
    user, probe = await ctx.register()
    key = await probe.request(CertKey(), CertKeyAnswer, "CERT_KEY after login")
    if key.public_key != before.public_key:
        raise CheckFailed("CERT_KEY announced another key after login than before")
    answer = await probe.request(GetCertificate(), Certificate)
    now = time.time()
    try:
        cert = verify_certificate(answer.certificate, key.public_key, now + CLOCK_SLACK)
    except ProtocolError as exc:
        raise CheckFailed(f"CERTIFICATE does not verify under CERT_KEY's key (or expires "
                          f"within {CLOCK_SLACK} s): {type(exc).__name__}: {exc}") from None
    if cert.username != user.name:
        raise CheckFailed(f"CERTIFICATE names {cert.username!r}, not the caller {user.name!r}")
    if cert.identity != user.identity.public:
        raise CheckFailed("CERTIFICATE carries another identity key than the one registered")


@check("certificates.need_login_key_does_not")
async def need_login_key_does_not(ctx: Context) -> None:
    """Before login GET_CERTIFICATE gets NOT_AUTHENTICATED, and CERT_KEY is answered
    (it is public: the key clients pin)."""
    probe = await ctx.connect()
    await probe.expect_error(GetCertificate(), ErrorCode.NOT_AUTHENTICATED,
                             "GET_CERTIFICATE before login")
    key = await probe.request(CertKey(), CertKeyAnswer, "CERT_KEY before login")
    if len(key.public_key) != 32:  # pragma: no cover - the layout already says so
        raise CheckFailed("CERT_KEY_ANSWER is not a 32-byte key")
