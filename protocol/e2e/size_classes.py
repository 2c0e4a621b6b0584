"""Envelope size classes: the only thing an envelope's length may say
(docs/PROTOCOL.md section 10.1).

The relay sees every envelope's length. Without care that length names the message
kind (a PreKey message carries a 1165/1169-byte PQXDH prefix) and the length of the
sender's certificate (inside the sealed content; its length follows the username's).
So the sealed content is padded until the whole envelope (the crypto_box_seal output)
is one of a few sizes, chosen by a rule that ignores both: every message is sized *as
if* it were a PreKey message with a one-time prekey id carrying the longest
certificate (a 32-character name). The class then depends only on the ratchet
message's length, i.e. on the plaintext's 160-byte bucket (section 8), and a first
message, a later message, a receipt and a short text from any sender all land in the
same class.

The smallest class, 2048 bytes, is the smallest power of two that holds a PreKey
message carrying a short text with the longest certificate (1598 bytes for "hi");
above it the classes double up to 65536, the relay's default `max_envelope`
(section 16.3).
"""

from __future__ import annotations

from protocol.e2e.aead import MAC_LEN
from protocol.e2e.errors import MessageTooLarge
from protocol.e2e.messages import HEADER_LEN
from protocol.e2e.padding import BUCKET
from protocol.wire.certificates import MAX_CERTIFICATE_LEN
from protocol.wire.publickeys import ENCODED_ED25519_LEN, ENCODED_X25519_LEN, MLKEM768_CT_LEN

SEAL_OVERHEAD = 48
"""crypto_box_seal adds the ephemeral public key (32) and the Poly1305 tag (16)."""

CONTENT_OVERHEAD_MAX = 1 + 1 + 2 + MAX_CERTIFICATE_LEN + 4
"""version, kind, var16(certificate) with the longest certificate (139 bytes, a
32-character name: section 20.1), the var32 length of the message: 147."""

PREKEY_PREFIX_MAX = (1 + ENCODED_ED25519_LEN + ENCODED_X25519_LEN + 4 + 1 + 4 + 1 + 4
                     + MLKEM768_CT_LEN)
"""The PQXDH prefix of a PreKey message naming a one-time prekey (section 6): 1169."""

RATCHET_OVERHEAD = HEADER_LEN + MAC_LEN
"""A ratchet message is its header, the ciphertext and the MAC (section 7.2): 74 + 160k."""

ENVELOPE_CLASSES = (2048, 4096, 8192, 16384, 32768, 65536)
"""Every envelope is exactly one of these sizes, in bytes."""

MAX_ENVELOPE_CLASS = ENVELOPE_CLASSES[-1]


def sizing_length(ratchet_message_len: int) -> int:
    """The length an envelope carrying this ratchet message would have as a PreKey
    message (with a one-time prekey id) carrying the longest certificate, before
    padding."""
    return SEAL_OVERHEAD + CONTENT_OVERHEAD_MAX + PREKEY_PREFIX_MAX + ratchet_message_len


def envelope_class(ratchet_message_len: int, limit: int = MAX_ENVELOPE_CLASS) -> int:
    """The size of the envelope that carries a ratchet message of this length, first or
    later, from any sender. MessageTooLarge if that is above `limit` (a relay's
    announced `max_envelope`) or above the largest class."""
    need = sizing_length(ratchet_message_len)
    for size in ENVELOPE_CLASSES:
        if need <= size:
            if size > limit:
                raise MessageTooLarge(
                    f"the message needs a {size}-byte envelope; the relay accepts at most "
                    f"{limit} bytes")
            return size
    raise MessageTooLarge(f"the message needs {need} bytes; the largest envelope is "
                          f"{MAX_ENVELOPE_CLASS} bytes")


def ratchet_message_len(plaintext_len: int) -> int:
    """The length of the ratchet message that carries a plaintext of this length:
    padding fills k 160-byte buckets (section 8), then header and MAC."""
    buckets = (plaintext_len + 1) // BUCKET + 1
    return RATCHET_OVERHEAD + buckets * BUCKET


def envelope_size(plaintext_len: int, limit: int = MAX_ENVELOPE_CLASS) -> int:
    """The size of the envelope a session plaintext (section 9.1, before padding) of this
    length travels in. A client calls it before encrypting, so that a message the relay
    would refuse is refused locally and leaves the session untouched."""
    return envelope_class(ratchet_message_len(plaintext_len), limit)


def max_plaintext_len(limit: int = MAX_ENVELOPE_CLASS) -> int:
    """The longest session plaintext whose envelope fits in `limit` bytes (-1: none)."""
    fitting = [size for size in ENVELOPE_CLASSES if size <= limit]
    if not fitting:
        return -1
    room = fitting[-1] - sizing_length(RATCHET_OVERHEAD)  # bytes left for the ciphertext
    return (room // BUCKET) * BUCKET - 2
