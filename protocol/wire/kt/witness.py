"""C2SP tlog-witness `add-checkpoint`, sans-I/O (https://c2sp.org/tlog-witness;
PROTOCOL.md 19.11): the request body, and the witness's decision on it.

Why here: the rules are the whole point of a witness (it cosigns a head only if it
extends the last head it cosigned for that log, so it never vouches for two
histories), and they are pure functions of the request and the witness's state. The
HTTP server, the state file and the clock live in server/witness.py.

Request body (each line ends in U+000A):

    old <size of the witness's latest head, decimal, no leading zeros>
    <base64 of one consistency-proof hash>      (0 to 63 lines)
    <empty line>
    <the signed checkpoint note>
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from protocol.wire.errors import DecodeError, LocalProtocolError
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.cosignature import note_text
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError, ProofError
from protocol.wire.kt.merkle import HASH_SIZE, verify_consistency
from protocol.wire.kt.note import Verifier

MAX_PROOF_LINES = 63
MAX_BODY = 64 * 1024
"""A request is at most 63 proof lines and one checkpoint note; 64 KiB is plenty."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class Status(IntEnum):
    """The HTTP statuses tlog-witness gives each outcome."""

    OK = 200
    BAD_REQUEST = 400  # malformed body, or old size > checkpoint size
    FORBIDDEN = 403  # no valid signature from the log's key
    NOT_FOUND = 404  # the witness does not witness this origin
    CONFLICT = 409  # old size is not the witness's latest, or same size, other root
    UNPROCESSABLE = 422  # the consistency proof does not verify


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: bytes

    def encode(self) -> bytes:
        if self.old_size < 0:
            raise LocalProtocolError("a tree size is not negative")
        if len(self.proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in self.proof):
            raise LocalProtocolError("a proof is at most 63 hashes of 32 bytes")
        lines = [f"old {self.old_size}\n", *(base64.b64encode(h).decode() + "\n"
                                             for h in self.proof), "\n"]
        return "".join(lines).encode() + self.note


def _decimal(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise DecodeError("a size is a decimal number without leading zeros")
    return int(text)


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Read an add-checkpoint body; anything off the format is a DecodeError (400)."""
    if len(body) > MAX_BODY:
        raise DecodeError("the request is too long")
    proof: list[bytes] = []
    pos = body.find(b"\n")
    if pos < 0 or not body.startswith(b"old "):
        raise DecodeError("the body starts with an old size line")
    try:
        old_size = _decimal(body[4:pos].decode("ascii"))
    except UnicodeDecodeError:
        raise DecodeError("the old size line is ASCII") from None
    while True:
        start = pos + 1
        pos = body.find(b"\n", start)
        if pos < 0:
            raise DecodeError("the proof lines end with an empty line")
        line = body[start:pos]
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise DecodeError("at most 63 consistency proof lines")
        try:
            digest = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError("a proof line is standard base64") from None
        if len(digest) != HASH_SIZE or base64.b64encode(digest) != line:
            raise DecodeError("a proof line is the base64 of 32 bytes")
        proof.append(digest)
    note = body[pos + 1:]
    if not note:
        raise DecodeError("a checkpoint follows the empty line")
    return AddCheckpoint(old_size, tuple(proof), note)


@dataclass(frozen=True)
class Head:
    """The latest head a witness cosigned for one log."""

    size: int
    root: bytes


@dataclass(frozen=True)
class Verdict:
    """The witness's answer. On OK, `checkpoint` is the head to store (before replying)
    and to cosign; on CONFLICT, `latest_size` is the body of the reply."""

    status: Status
    reason: str
    checkpoint: Checkpoint | None = None
    latest_size: int = 0


def origin_of(note: bytes) -> str:
    """A checkpoint note's first line, read before any key is chosen to verify it."""
    return note_text(note).split("\n", 1)[0]


def judge(request: AddCheckpoint, logs: Mapping[str, Verifier],
          heads: Mapping[str, Head]) -> Verdict:
    """tlog-witness's checks, in the spec's order. `logs` maps an origin to the log key
    the witness trusts for it; `heads` is the witness's latest cosigned head per origin.

    The first checkpoint of a log (old 0, nothing stored) is taken on trust, as any
    witness must; from then on every head must be proven to extend the stored one."""
    try:
        origin = origin_of(request.note)
    except MalformedNote as exc:
        return Verdict(Status.BAD_REQUEST, str(exc))
    log = logs.get(origin)
    if log is None:
        return Verdict(Status.NOT_FOUND, "this witness does not witness that log")
    try:
        checkpoint, _ = open_checkpoint(request.note, log)
    except NoteSignatureError:
        return Verdict(Status.FORBIDDEN, "the checkpoint has no valid signature of the log")
    except MalformedNote as exc:
        return Verdict(Status.BAD_REQUEST, str(exc))
    if request.old_size > checkpoint.size:
        return Verdict(Status.BAD_REQUEST, "the old size is larger than the checkpoint")
    head = heads.get(origin)
    latest = head.size if head is not None else 0
    if request.old_size != latest:
        return Verdict(Status.CONFLICT, "the old size is not this witness's latest",
                       latest_size=latest)
    if checkpoint.size == latest:
        if head is not None and not hmac.compare_digest(head.root, checkpoint.root_hash):
            return Verdict(Status.CONFLICT, "same size as the cosigned head, another root",
                           latest_size=latest)
        if request.proof:
            return Verdict(Status.UNPROCESSABLE, "equal sizes need an empty proof")
        return Verdict(Status.OK, "the head this witness already cosigned", checkpoint, latest)
    if head is None or latest == 0:
        if request.proof:
            return Verdict(Status.UNPROCESSABLE, "the proof from size 0 must be empty")
        return Verdict(Status.OK, "the first head of this log", checkpoint, latest)
    try:
        verify_consistency(latest, checkpoint.size, head.root, checkpoint.root_hash,
                           list(request.proof))
    except ProofError as exc:
        return Verdict(Status.UNPROCESSABLE, f"the consistency proof does not verify: {exc}")
    return Verdict(Status.OK, "consistent with the cosigned head", checkpoint, latest)


def parse_size_body(body: bytes) -> int:
    """A 409 body: the witness's latest size in decimal and a newline."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("a size body is ASCII") from None
    if not text.endswith("\n"):
        raise DecodeError("a size body ends with a newline")
    return _decimal(text[:-1])


def parse_cosignature_lines(body: bytes) -> list[str]:
    """A 200 body: one or more note signature lines, each `U+2014 ...` and a newline."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("the cosignatures are UTF-8") from None
    if not text.endswith("\n"):
        raise DecodeError("each cosignature line ends with a newline")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    if any(not line.startswith("\u2014 ") for line in lines):
        raise DecodeError("a cosignature line starts with an em dash and a space")
    return lines
