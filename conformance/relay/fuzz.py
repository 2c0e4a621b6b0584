"""Frame mutations and the rule every answer to an arbitrary frame must follow.

Shared by the conformance suite's seeded fuzz check and the hypothesis tests: a
server answers any binary message with an ERROR of a known code (never
INTERNAL_ERROR), or, only if the frame is well-formed, with the answer its type
calls for.
"""

from __future__ import annotations

import random

from conformance.relay.probe import Received, frame_name
from protocol.wire.connection import ANSWERS
from protocol.wire.errors import BadSignature, DecodeError
from protocol.wire.frames import (
    CLIENT_FRAMES,
    FRAME_HEADER_LEN,
    Bundle,
    Error,
    ErrorCode,
    Frame,
    Send,
    Sent,
    decode_client_frame,
)
from protocol.wire.prekeys import PreKeyBundle

DECODE_CODES = frozenset({
    ErrorCode.MALFORMED_FRAME,
    ErrorCode.UNKNOWN_FRAME_TYPE,
    ErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.USERNAME_INVALID,
    ErrorCode.FRAME_TOO_LARGE,
    ErrorCode.RATE_LIMITED,
})
"""Codes that may answer a frame that does not decode."""

PARSE_ONLY_CODES = frozenset({
    ErrorCode.MALFORMED_FRAME,
    ErrorCode.UNKNOWN_FRAME_TYPE,
    ErrorCode.UNSUPPORTED_VERSION,
})
"""Codes that must not answer a frame that decodes."""

CLIENT_TYPES = sorted(CLIENT_FRAMES)


def parse(data: bytes | str) -> tuple[Frame | None, str]:
    """The frame `data` holds by the reference decoder, or None and why not."""
    if isinstance(data, str):
        return None, "a text message"
    try:
        return decode_client_frame(data)[1], ""
    except DecodeError as exc:
        return None, str(exc) or type(exc).__name__


def judge(sent: bytes | str, answer: Received) -> str | None:
    """None if `answer` is an acceptable answer to `sent`; otherwise what is wrong."""
    parsed, why = parse(sent)
    frame = answer.frame
    if isinstance(frame, Error):
        if frame.code not in ErrorCode._value2member_map_:
            return f"ERROR with unknown code {frame.code}"
        code = ErrorCode(frame.code)
        if code == ErrorCode.INTERNAL_ERROR:
            return f"INTERNAL_ERROR ({frame.message})"
        if parsed is None and code not in DECODE_CODES:
            return f"{code.name} for a frame that does not decode ({why})"
        if parsed is not None and code in PARSE_ONLY_CODES:
            return f"{code.name} for a well-formed {frame_name(parsed)} ({frame.message})"
        return None
    if parsed is None:
        return f"{frame_name(frame)} for a frame that does not decode ({why})"
    want = ANSWERS[type(parsed)]
    if not isinstance(frame, want):
        return f"{frame_name(frame)} answering {frame_name(parsed)}, expected {frame_name(want)}"
    if isinstance(parsed, Send) and isinstance(frame, Sent) and \
            len(frame.envelope_ids) != len(parsed.envelopes):
        return f"SENT lists {len(frame.envelope_ids)} ids for {len(parsed.envelopes)} envelopes"
    if isinstance(frame, Bundle):
        try:
            PreKeyBundle.decode(frame.bundle).verify()
        except DecodeError as exc:
            return f"BUNDLE does not decode: {exc}"
        except BadSignature:
            return "BUNDLE holds a signature that does not verify"
    return None


def answer_expected_by_id(data: bytes | str) -> bool:
    """Whether the answer to `data` must carry its request id (rather than 0): the
    frame is long enough to have one and speaks version 1."""
    return isinstance(data, bytes) and len(data) >= FRAME_HEADER_LEN and data[0] == 1


def nonzero_request_id(data: bytes) -> bytes:
    """Request id 0 is the server's for pushes; a frame long enough to carry an id gets
    id 1 instead of 0, so its answer cannot be mistaken for a push."""
    if len(data) >= FRAME_HEADER_LEN and data[2:6] == bytes(4):
        return data[:5] + b"\x01" + data[6:]
    return data


def mutate(rng: random.Random, base: bytes) -> bytes:
    """One random mutation of a (valid) frame, or the frame unchanged."""
    data = bytearray(base)
    kind = rng.randrange(13)  # 0, 11 and 12 leave the frame as it is
    if kind == 1 and data:  # flip bits
        for _ in range(rng.randint(1, 4)):
            bit = rng.randrange(len(data) * 8)
            data[bit // 8] ^= 1 << (bit % 8)
    elif kind == 2 and data:  # truncate
        del data[rng.randrange(len(data)):]
    elif kind == 3:  # trailing bytes
        data += rng.randbytes(rng.randint(1, 16))
    elif kind == 4 and data:  # overwrite bytes
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 5:  # a valid header with a random payload
        frame_type = rng.choice([*CLIENT_TYPES, rng.randrange(256)])
        data = bytearray((1, frame_type)) + data[2:6] + rng.randbytes(rng.randrange(80))
    elif kind == 6:  # random bytes
        data = bytearray(rng.randbytes(rng.randrange(48)))
    elif kind == 7 and len(data) > 1:  # another frame type, the same payload
        data[1] = rng.choice(CLIENT_TYPES)
    elif kind == 8:  # bytes inserted after the header
        at = rng.randint(min(len(data), FRAME_HEADER_LEN), len(data))
        data[at:at] = rng.randbytes(rng.randint(1, 8))
    elif kind == 9 and len(data) > FRAME_HEADER_LEN:  # a slice removed
        start = rng.randrange(FRAME_HEADER_LEN, len(data))
        del data[start:start + rng.randint(1, 40)]
    elif kind == 10 and len(data) > FRAME_HEADER_LEN:  # a length or count byte bumped
        at = rng.randrange(FRAME_HEADER_LEN, min(len(data), FRAME_HEADER_LEN + 8))
        data[at] = (data[at] + rng.choice((-1, 1, 2, 0x80))) % 256
    return nonzero_request_id(bytes(data))


__all__ = [
    "ANSWERS",
    "DECODE_CODES",
    "answer_expected_by_id",
    "judge",
    "mutate",
    "nonzero_request_id",
    "parse",
]
