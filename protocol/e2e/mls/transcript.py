"""Transcript hashes and the confirmation tag (RFC 9420 sections 8.2 and 6.1).

    confirmed[n] = Hash(interim[n-1] || ConfirmedTranscriptHashInput[n])
    interim[n]   = Hash(confirmed[n] || InterimTranscriptHashInput[n])
    confirmation_tag = MAC(confirmation_key, confirmed[n])

The confirmed hash covers every commit's signed content, so members who processed
different commits hold different group contexts and derive different keys; the tag
proves the committer derived the same epoch secrets as the receiver.
"""

from __future__ import annotations

import hmac

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.framing import AuthenticatedContent
from protocol.wire import tls


def confirmed_transcript_hash(interim_before: bytes, commit: AuthenticatedContent) -> bytes:
    return cs.hash_(interim_before + commit.confirmed_transcript_input())


def interim_transcript_hash(confirmed: bytes, confirmation_tag: bytes) -> bytes:
    return cs.hash_(confirmed + tls.opaque(confirmation_tag))


def confirmation_tag(confirmation_key: bytes, confirmed: bytes) -> bytes:
    return cs.mac(confirmation_key, confirmed)


def verify_confirmation_tag(confirmation_key: bytes, confirmed: bytes, tag: bytes) -> bool:
    """Constant-time comparison (section 6.1)."""
    return hmac.compare_digest(confirmation_tag(confirmation_key, confirmed), tag)
