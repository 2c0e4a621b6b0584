"""Length hiding before encryption, as Signal pads message bodies.

body || 0x80 || 0x00... up to k*160 - 1 bytes for the smallest k that fits, so that
PKCS#7 then adds exactly one byte and every ciphertext body is a multiple of 160
bytes: a message's length leaks only its 160-byte bucket.
"""

from __future__ import annotations

from protocol.wire.errors import DecodeError

BUCKET = 160


def pad(body: bytes) -> bytes:
    k = (len(body) + 1) // BUCKET + 1
    return body + b"\x80" + bytes(k * BUCKET - 2 - len(body))


def unpad(padded: bytes) -> bytes:
    """Strict: the length must be k*160 - 1 and the tail exactly 0x80 then zeros."""
    if (len(padded) + 1) % BUCKET:
        raise DecodeError("padded length is not a bucket size")
    end = padded.rstrip(b"\x00")
    if not end or end[-1] != 0x80:
        raise DecodeError("padding marker missing")
    body = end[:-1]
    if len(padded) != ((len(body) + 1) // BUCKET + 1) * BUCKET - 1:
        raise DecodeError("padding is longer than one bucket")
    return body
