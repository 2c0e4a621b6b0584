"""Commitments to directory values (docs/PROTOCOL.md section 19.4).

The prefix tree (section 19.5) stores, under each label, a commitment to the value
rather than the value: a proof handed to one client shows the commitments of its
neighbours, and a commitment says nothing about the value it binds without its
16-byte opening, which the relay only reveals to a client looking that label up.

The construction is draft-ietf-keytrans-protocol's, with its fixed key and layout:

    commitment = HMAC-SHA256(Kc, opening || var8(label) || var32(value))

with Kc the public 16-byte constant d821f8790d97709796b4d7903357c3f5. Why a fixed
public key and not the opening as the HMAC key: HMAC treats keys shorter than a block
as zero-padded, so the keys k and k || 0x00 give the same output, and a commitment
keyed by a caller-chosen opening is binding only as long as every length check holds.
With one fixed key, HMAC is a fixed function of an uniquely parseable message, so
binding rests on SHA-256's collision resistance and hiding on the 128-bit random
opening (the draft models it as a random oracle).
"""

from __future__ import annotations

import hashlib
import hmac

from protocol.wire.codec import var8, var32
from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.errors import ProofError

COMMITMENT_KEY = bytes.fromhex("d821f8790d97709796b4d7903357c3f5")
"""Kc of draft-ietf-keytrans-protocol: public, the same for every commitment."""
OPENING_LEN = 16
"""Nc: the opening is 16 bytes from the OS's random source, chosen by the caller."""
COMMITMENT_LEN = 32
MAX_LABEL_LEN = 0xFF
MAX_VALUE_LEN = 0xFFFFFFFF


def commitment_value(opening: bytes, label: bytes, value: bytes) -> bytes:
    """The HMAC message: opening (16) || var8(label) || var32(value)."""
    if len(opening) != OPENING_LEN:
        raise LocalProtocolError("a commitment opening is 16 bytes")
    if len(label) > MAX_LABEL_LEN:
        raise LocalProtocolError("a committed label is at most 255 bytes")
    if len(value) > MAX_VALUE_LEN:
        raise LocalProtocolError("a committed value is under 4 GiB")
    return opening + var8(label) + var32(value)


def commit(opening: bytes, label: bytes, value: bytes) -> bytes:
    """The 32-byte commitment to `value` under `label`; `opening` must be fresh random
    bytes (os.urandom(16)), given here so that the function stays deterministic."""
    message = commitment_value(opening, label, value)
    return hmac.new(COMMITMENT_KEY, message, hashlib.sha256).digest()


def verify_commitment(commitment: bytes, opening: bytes, label: bytes, value: bytes) -> None:
    """Check a revealed (opening, value) against a commitment from a proof.

    The commitment and opening come from the relay, so any mismatch, including a wrong
    length, is the relay's fault: ProofError."""
    if len(commitment) != COMMITMENT_LEN:
        raise ProofError("a commitment is 32 bytes")
    if len(opening) != OPENING_LEN:
        raise ProofError("a commitment opening is 16 bytes")
    if len(label) > MAX_LABEL_LEN or len(value) > MAX_VALUE_LEN:
        raise ProofError("the label or value is too long to have been committed to")
    expected = commit(opening, label, value)
    if not hmac.compare_digest(expected, commitment):
        raise ProofError("the opening and value do not match the commitment")
