"""C2SP tlog-cosignature, Ed25519 `cosignature/v1` (https://c2sp.org/tlog-cosignature;
PROTOCOL.md 19.11).

Why: a relay could show Alice one directory and Bob another, each head correctly
signed. A witness (server/witness.py) cosigns a checkpoint only if it extends the
last one it cosigned for that log, so a client that requires a witness's cosignature
can only be shown the one history the witness saw. A school or a friend runs the
witness; the relay cannot make one up.

A cosignature is an ordinary signed-note signature line (19.2) on the checkpoint:

    U+2014 U+0020 <witness name> U+0020 base64(key ID || timestamp || signature) U+000A

- key ID = SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]
  (signature type 0x04, so the same key can never pass for a plain 0x01 note key);
- timestamp = 8 bytes, big-endian, POSIX seconds, at most 2^63 - 1;
- signature = Ed25519 over "cosignature/v1\\n" + "time <timestamp, decimal>\\n" +
  the checkpoint's note text (origin, size, root, extension lines, final newline;
  no signature lines).

Its verifier key is `<name>+<hex key ID>+base64(0x04 || public key)`. A
`CosignatureVerifier` is a note `Verifier` whose `verify` checks that construction, so
`open_note` / `open_checkpoint` take witness keys next to the log's key, as
golang.org/x/mod/sumdb/note's VerifierList does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.checkpoint import parse_checkpoint
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.note import (
    KEY_ID_SIZE,
    MAX_SIGNATURES,
    PRIVATE_PREFIX,
    PUBLIC_KEY_SIZE,
    SEED_SIZE,
    SIGNATURE_PREFIX,
    SIGNATURE_SIZE,
    Signature,
    Verifier,
    open_note,
    valid_name,
)

ALG_COSIGNATURE_V1 = 0x04
TIMESTAMP_SIZE = 8
COSIGNATURE_SIZE = TIMESTAMP_SIZE + SIGNATURE_SIZE
MAX_TIMESTAMP = 2**63 - 1
HEADER = "cosignature/v1\n"


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    data = name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


def signed_message(text: str, timestamp: int) -> bytes:
    """What a cosigner signs: the header line, the time line, the checkpoint's text.

    The text must be a checkpoint body (origin, size, root hash, extension lines): a
    witness states something about a log's head, never about arbitrary text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise LocalProtocolError("a cosignature's timestamp is 0 .. 2^63 - 1 seconds")
    parse_checkpoint(text)
    return f"{HEADER}time {timestamp}\n{text}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedNote("not standard base64") from None


@dataclass(frozen=True)
class CosignatureVerifier(Verifier):
    """A witness's public key (type 0x04). `verify` takes the note text and the bytes
    after the key ID (timestamp || signature) and checks the cosignature/v1 message."""

    def encode(self) -> str:
        blob = bytes([ALG_COSIGNATURE_V1]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64(blob)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != COSIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        try:
            signed = signed_message(message.decode("utf-8"), timestamp)
        except (UnicodeDecodeError, MalformedNote):
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[TIMESTAMP_SIZE:], signed)
        except (InvalidSignature, ValueError):
            return False
        return True


def cosigner_verifier(name: str, public_key: bytes) -> CosignatureVerifier:
    if not valid_name(name):
        raise LocalProtocolError("a key name is non-empty, without spaces or '+'")
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise LocalProtocolError("an Ed25519 public key is 32 bytes")
    return CosignatureVerifier(name, cosigner_key_id(name, public_key), public_key)


def _split_key(text: str) -> tuple[str, bytes, bytes]:
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise MalformedNote("a note key has the form name+id+key")
    name, hex_id, b64 = parts
    if not valid_name(name):
        raise MalformedNote("a key name is non-empty, without spaces or '+'")
    if len(hex_id) != 2 * KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in hex_id):
        raise MalformedNote("a key ID is 8 lowercase hexadecimal digits")
    blob = _unb64(b64)
    if len(blob) != 1 + PUBLIC_KEY_SIZE or blob[0] != ALG_COSIGNATURE_V1:
        raise MalformedNote("a witness key is an Ed25519 cosignature/v1 key (type 0x04)")
    return name, bytes.fromhex(hex_id), blob[1:]


def parse_cosigner_key(text: str) -> CosignatureVerifier:
    """Read a witness's verifier key; its key ID must be the one its name and key give."""
    name, kid, public_key = _split_key(text)
    if kid != cosigner_key_id(name, public_key):
        raise MalformedNote("the witness key's ID does not match its name and key")
    return CosignatureVerifier(name, kid, public_key)


@dataclass(frozen=True)
class Cosignature:
    """One cosignature: who, when (POSIX seconds), and the Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id + self.timestamp.to_bytes(TIMESTAMP_SIZE, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(blob)}\n"

    @classmethod
    def from_signature(cls, sig: Signature) -> Cosignature:
        if len(sig.signature) != COSIGNATURE_SIZE:
            raise MalformedNote("a cosignature is a key ID, 8 timestamp bytes, 64 bytes")
        return cls(sig.name, sig.key_id, int.from_bytes(sig.signature[:TIMESTAMP_SIZE], "big"),
                   sig.signature[TIMESTAMP_SIZE:])


class Cosigner:
    """A witness's private key. Its seed never appears in a repr or an error message."""

    __slots__ = ("_private", "verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise LocalProtocolError("an Ed25519 seed is 32 bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = cosigner_verifier(name, public)

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls(name, os.urandom(SEED_SIZE))

    @property
    def name(self) -> str:
        return self.verifier.name

    def cosign_text(self, text: str, timestamp: int) -> Cosignature:
        signature = self._private.sign(signed_message(text, timestamp))
        return Cosignature(self.name, self.verifier.key_id, timestamp, signature)

    def private_key_string(self) -> str:
        """`PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || seed)>`: secret, store it as one."""
        blob = bytes([ALG_COSIGNATURE_V1]) + self._private.private_bytes_raw()
        return f"{PRIVATE_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{_b64(blob)}"

    def __repr__(self) -> str:
        return f"Cosigner({self.verifier.encode()!r})"


def parse_cosigner_private_key(text: str) -> Cosigner:
    """Read a witness's private key string; errors name the rule, never the key's bytes."""
    if not text.startswith(PRIVATE_PREFIX):
        raise MalformedNote("a signer key starts with PRIVATE+KEY+")
    name, kid, seed = _split_key(text[len(PRIVATE_PREFIX):])
    cosigner = Cosigner(name, seed)
    if not hmac.compare_digest(kid, cosigner.verifier.key_id):
        raise MalformedNote("the signer key's ID does not match its name and key")
    return cosigner


def note_text(note: bytes) -> str:
    """The text of a signed note (up to and including the newline before the blank
    line), without checking any signature: what a cosignature covers."""
    try:
        whole = note.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote("a note is UTF-8") from None
    split = whole.rfind("\n\n")
    if split < 0:
        raise MalformedNote("a note's signatures follow a blank line")
    return whole[: split + 1]


def cosign(note: bytes, cosigner: Cosigner, timestamp: int) -> str:
    """The cosignature line of `cosigner` on a checkpoint note, at `timestamp`.

    Checks nothing about the log's signature or consistency: that is the witness's
    job before it calls this (server/witness.py, section 19.11)."""
    return cosigner.cosign_text(note_text(note), timestamp).line()


def verify_cosignatures(
    note: bytes, witnesses: Sequence[CosignatureVerifier]
) -> tuple[Cosignature, ...]:
    """The valid cosignatures on `note` from `witnesses` (possibly none).

    Lines from other keys are ignored (the log's own signature among them). A line from
    a configured witness that does not verify raises NoteSignatureError; a malformed
    note raises MalformedNote."""
    try:
        opened = open_note(note, list(witnesses))
    except NoteSignatureError:
        if _signed_by_any(note, witnesses):
            raise  # a configured witness's line that does not verify
        return ()
    return tuple(Cosignature.from_signature(s) for s in opened.signatures)


def _signed_by_any(note: bytes, witnesses: Sequence[CosignatureVerifier]) -> bool:
    """Whether a signature line names one of `witnesses` (name and key ID)."""
    keys = {(w.name, w.key_id) for w in witnesses}
    block = note.decode("utf-8")[len(note_text(note)) + 1:]
    for line in block.splitlines():
        name, _, b64 = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        try:
            blob = _unb64(b64)
        except MalformedNote:
            continue
        if (name, blob[:KEY_ID_SIZE]) in keys:
            return True
    return False


def require_cosignature(
    note: bytes, witnesses: Sequence[CosignatureVerifier], quorum: int = 1
) -> tuple[Cosignature, ...]:
    """What a client configured with witnesses calls on every checkpoint it accepts:
    at least `quorum` configured witnesses must have cosigned this very text.

    Raises NoteSignatureError otherwise (no cosignature, too few, or a bad one). Does not
    check the log's own signature: the caller does that (open_checkpoint)."""
    if not witnesses:
        raise LocalProtocolError("requiring a cosignature needs at least one witness key")
    if not 1 <= quorum <= len(witnesses):
        raise LocalProtocolError("the quorum is between 1 and the number of witnesses")
    found = verify_cosignatures(note, witnesses)
    if len(found) < quorum:
        raise NoteSignatureError(
            f"the checkpoint has {len(found)} witness cosignature(s), {quorum} required")
    return found


def add_cosignatures(note: bytes, lines: Sequence[str]) -> bytes:
    """The note with cosignature lines appended (a line already there is not repeated).

    Each line must be a well-formed signature line; verification is the reader's job."""
    text = note_text(note)
    whole = note.decode("utf-8")
    existing = whole[len(text) + 1:].splitlines(keepends=True)
    out = list(existing)
    for line in lines:
        if not line.endswith("\n"):
            line += "\n"
        if not line.startswith(SIGNATURE_PREFIX) or line.count("\n") != 1:
            raise MalformedNote("a cosignature is one signature line")
        name, sep, b64 = line[len(SIGNATURE_PREFIX):-1].partition(" ")
        if not sep or not valid_name(name) or len(_unb64(b64)) != KEY_ID_SIZE + COSIGNATURE_SIZE:
            raise MalformedNote("a cosignature line is: em dash, name, base64 of 76 bytes")
        if line not in out:
            out.append(line)
    if len(out) > MAX_SIGNATURES:
        raise MalformedNote("too many signatures")
    return (text + "\n" + "".join(out)).encode()
