"""C2SP tlog-checkpoint bodies (https://c2sp.org/tlog-checkpoint; PROTOCOL.md 19.2).

A checkpoint is the signed head of a Merkle log: the text of a signed note made of

    <origin>\\n<tree size in decimal>\\n<base64 root hash>\\n[<extension line>\\n]*

The origin names the log; the log's note key carries the same name, so a checkpoint
signed by some other key cannot pass for this log's head. Parsing is strict: one
text, one value (no leading zeros, canonical base64 of exactly 32 bytes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.merkle import HASH_SIZE
from protocol.wire.kt.note import (
    Note,
    Signer,
    Verifier,
    check_text,
    open_note,
    sign_note,
)

MAX_TREE_SIZE = 2**64 - 1


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def encode(self) -> str:
        """The note text of this checkpoint."""
        if not self.origin or "\n" in self.origin:
            raise LocalProtocolError("an origin is one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise LocalProtocolError("a tree size fits in 64 bits")
        if len(self.root_hash) != HASH_SIZE:
            raise LocalProtocolError("a root hash is 32 bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise LocalProtocolError("an extension is one non-empty line")
        root = base64.b64encode(self.root_hash).decode("ascii")
        text = "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )
        check_text(text)
        return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint body; anything but the one encoding of a checkpoint is refused."""
    if not text.endswith("\n"):
        raise MalformedNote("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedNote("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise MalformedNote("a checkpoint's origin is not empty")
    if (
        not size_text.isascii()
        or not size_text.isdigit()
        or (len(size_text) > 1 and size_text[0] == "0")
    ):
        raise MalformedNote("a tree size is a decimal number without leading zeros")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise MalformedNote("a tree size fits in 64 bits")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedNote("a root hash is standard base64") from None
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise MalformedNote("a root hash is the canonical base64 of 32 bytes")
    if any(not line for line in extensions):
        raise MalformedNote("an extension line is not empty")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, log: Signer) -> bytes:
    """The signed note of a checkpoint; the log's key name must be its origin."""
    if log.name != checkpoint.origin:
        raise LocalProtocolError("the log's key is named after the checkpoint's origin")
    return sign_note(checkpoint.encode(), [log])


def open_checkpoint(
    message: bytes, log: Verifier, cosigners: Sequence[Verifier] = ()
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint: the log's own signature is required, its origin must
    be the log's key name; cosignatures from `cosigners` are verified when present."""
    note = open_note(message, [log, *cosigners])
    if not any(s.name == log.name and s.key_id == log.key_id for s in note.signatures):
        raise NoteSignatureError("the checkpoint is not signed by the log")
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != log.name:
        raise MalformedNote("the checkpoint's origin is not the log's key name")
    return checkpoint, note
