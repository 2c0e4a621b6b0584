"""C2SP signed notes with Ed25519 keys (https://c2sp.org/signed-note; PROTOCOL.md 19.2).

Why this format: checkpoints, witness cosignatures and the evidence files of key
transparency are all signed notes, so any tool of the transparency ecosystem (Go's
golang.org/x/mod/sumdb/note, litetlog, sigsum) can read what a blindrelay relay signs.

A note is UTF-8 text ending in a newline, then a blank line, then one line per
signature: an em dash, a space, the key name, a space, and
base64(key ID || signature). A key ID is the first 4 bytes of
SHA-256(name || 0x0A || 0x01 || public key) for an Ed25519 key (type 0x01).
Signatures from keys the reader does not know are kept aside, never trusted.
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
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError

ALG_ED25519 = 0x01
KEY_ID_SIZE = 4
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
"""As golang.org/x/mod/sumdb/note: a note with more signature lines is refused."""
MAX_NOTE_BYTES = 1 << 20
PRIVATE_PREFIX = "PRIVATE+KEY+"


def valid_name(name: str) -> bool:
    """A key name is non-empty and holds neither a Unicode space nor a plus sign."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _control_free(text: str) -> bool:
    return not any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in text)


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    data = name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Standard base64 with padding; anything else is malformed (no input in the error)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedNote("not standard base64") from None


@dataclass(frozen=True)
class Verifier:
    """A public note key: name, key ID, Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def encode(self) -> str:
        """The verifier key string `<name>+<hex key id>+<base64(0x01 || key)>`."""
        blob = bytes([ALG_ED25519]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64(blob)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def verifier_for(name: str, public_key: bytes) -> Verifier:
    if not valid_name(name):
        raise LocalProtocolError("a key name is non-empty, without spaces or '+'")
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise LocalProtocolError("an Ed25519 public key is 32 bytes")
    return Verifier(name, key_id(name, public_key), public_key)


def _split_key(text: str) -> tuple[str, bytes, bytes]:
    """name, key ID and key material of `<name>+<hex id>+<base64>`; the base64 may hold '+'."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise MalformedNote("a note key has the form name+id+key")
    name, hex_id, b64 = parts
    if not valid_name(name):
        raise MalformedNote("a key name is non-empty, without spaces or '+'")
    if len(hex_id) != 2 * KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in hex_id):
        raise MalformedNote("a key ID is 8 lowercase hexadecimal digits")
    blob = _unb64(b64)
    if len(blob) != 1 + PUBLIC_KEY_SIZE or blob[0] != ALG_ED25519:
        raise MalformedNote("only Ed25519 note keys (type 0x01) are supported")
    return name, bytes.fromhex(hex_id), blob[1:]


def parse_verifier_key(text: str) -> Verifier:
    """Read a verifier key string; its key ID must be the one its name and key give."""
    name, kid, public_key = _split_key(text)
    if kid != key_id(name, public_key):
        raise MalformedNote("the verifier key's ID does not match its name and key")
    return Verifier(name, kid, public_key)


class Signer:
    """A private note key. Its seed never appears in a repr or an error message."""

    __slots__ = ("_private", "verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise LocalProtocolError("an Ed25519 seed is 32 bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = verifier_for(name, public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, os.urandom(SEED_SIZE))

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def private_key_string(self) -> str:
        """`PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`: secret, store it as one."""
        seed = self._private.private_bytes_raw()
        blob = bytes([ALG_ED25519]) + seed
        return f"{PRIVATE_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{_b64(blob)}"

    def __repr__(self) -> str:
        return f"Signer({self.verifier.encode()!r})"


def parse_signer_key(text: str) -> Signer:
    """Read a private key string. Every error names the rule, never the key's bytes."""
    if not text.startswith(PRIVATE_PREFIX):
        raise MalformedNote("a signer key starts with PRIVATE+KEY+")
    name, kid, seed = _split_key(text[len(PRIVATE_PREFIX) :])
    signer = Signer(name, seed)
    if not hmac.compare_digest(kid, signer.verifier.key_id):
        raise MalformedNote("the signer key's ID does not match its name and key")
    return signer


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the signatures that verified, the ones from unknown keys."""

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()


def check_text(text: str) -> None:
    if not text.endswith("\n") or not _control_free(text):
        raise LocalProtocolError("note text ends in a newline and holds no control characters")


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """The signed note: text, a blank line, one signature line per signer."""
    check_text(text)
    if not signers:
        raise LocalProtocolError("a signed note needs at least one signer")
    body = text.encode()
    lines = [Signature(s.name, s.verifier.key_id, s.sign(body)).line() for s in signers]
    return body + b"\n" + "".join(lines).encode()


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNote("a signature line starts with an em dash and a space")
    name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or not valid_name(name) or not b64:
        raise MalformedNote("a signature line is: em dash, name, base64")
    blob = _unb64(b64)
    if len(blob) < KEY_ID_SIZE + 1:
        raise MalformedNote("a signature is a key ID and at least one byte")
    return Signature(name, blob[:KEY_ID_SIZE], blob[KEY_ID_SIZE:])


def open_note(message: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a signed note and verify it against the keys we trust.

    Refused (MalformedNote): not UTF-8, control characters, no blank line before the
    signatures, a malformed signature line, more than 100 signatures, the same known key
    twice. Refused (NoteSignatureError): a known key's signature that does not verify,
    or no signature from a known key at all. Signatures by unknown keys are kept in
    `unverified` (duplicates once) and never trusted."""
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if known.setdefault((v.name, v.key_id), v) != v:
            raise LocalProtocolError("two trusted keys share a name and key ID")
    if len(message) > MAX_NOTE_BYTES:
        raise MalformedNote("the note is too long")
    try:
        whole = message.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote("a note is UTF-8") from None
    if not _control_free(whole):
        raise MalformedNote("a note holds no control characters but newlines")
    split = whole.rfind("\n\n")
    if split < 0:
        raise MalformedNote("a note's signatures follow a blank line")
    text, block = whole[: split + 1], whole[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNote("a note ends with signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote("too many signatures")
    verified: list[Signature] = []
    unknown: list[Signature] = []
    seen: set[tuple[str, bytes]] = set()
    for line in lines:
        sig = _parse_signature_line(line)
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unknown:
                unknown.append(sig)
            continue
        if (sig.name, sig.key_id) in seen:
            raise MalformedNote("the same key signed the note twice")
        seen.add((sig.name, sig.key_id))
        if not verifier.verify(text.encode(), sig.signature):
            raise NoteSignatureError(f"the signature of {sig.name} does not verify")
        verified.append(sig)
    if not verified:
        raise NoteSignatureError("the note has no signature from a trusted key")
    return Note(text, tuple(verified), tuple(unknown))
