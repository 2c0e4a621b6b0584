"""blindrelay's protocol core: PQXDH, the Double Ratchet, encodings and frames.

This package contains no networking, no file access and no clock: every
function takes bytes (and, where needed, a random source or the current time)
and returns bytes or plain values. The server and the client are I/O shells
around it. See docs/PROTOCOL.md, which is the byte-exact source of truth.
"""

from protocol.errors import (
    BadSignature,
    DecodeError,
    DecryptionFailed,
    DuplicateMessage,
    InvalidUsername,
    ProtocolError,
    SessionSetupError,
    TooManySkipped,
    UnknownFrameType,
    UnsupportedVersion,
)

__all__ = [
    "BadSignature",
    "DecodeError",
    "DecryptionFailed",
    "DuplicateMessage",
    "InvalidUsername",
    "ProtocolError",
    "SessionSetupError",
    "TooManySkipped",
    "UnknownFrameType",
    "UnsupportedVersion",
]
