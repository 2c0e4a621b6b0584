"""Cosignatures made and checked here (protocol.wire.kt.cosignature, PROTOCOL.md 19.11)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from protocol.wire.kt.cosignature import (
    Cosigner,
    add_cosignatures,
    cosign,
    parse_cosigner_key,
    parse_cosigner_private_key,
    require_cosignature,
    signed_message,
    verify_cosignatures,
)
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.note import Signer, open_note, verifier_for

LOG = Signer("log.example", bytes(range(32)))
WITNESS = Cosigner("witness.example/w1", bytes(range(32, 64)))
NOTE = sign_checkpoint(Checkpoint("log.example", 7, bytes(32)), LOG)
TEXT = "log.example\n7\n" + base64.b64encode(bytes(32)).decode() + "\n"


def test_the_signed_message_is_header_time_and_the_checkpoint_text() -> None:
    assert signed_message(TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + TEXT.encode())
    with pytest.raises(LocalProtocolError):
        signed_message(TEXT, 2**63)
    with pytest.raises(MalformedNote):  # a witness vouches only for checkpoints
        signed_message("hello\n", 1)


def test_the_line_is_key_id_timestamp_and_an_ed25519_signature() -> None:
    line = cosign(NOTE, WITNESS, 1679315147)
    name, b64 = line.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    assert name == "witness.example/w1"
    blob = base64.b64decode(b64)
    pk = WITNESS.verifier.public_key
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x04" + pk).digest()[:4]
    assert blob[4:12] == (1679315147).to_bytes(8, "big")
    Ed25519PublicKey.from_public_bytes(pk).verify(
        blob[12:], signed_message(TEXT, 1679315147))


def test_a_cosigned_note_verifies_for_the_witness_and_the_log() -> None:
    cosigned = add_cosignatures(NOTE, [cosign(NOTE, WITNESS, 100)])
    found = require_cosignature(cosigned, [WITNESS.verifier])
    assert [(c.name, c.timestamp) for c in found] == [(WITNESS.name, 100)]
    checkpoint, _ = open_checkpoint(cosigned, LOG.verifier, [WITNESS.verifier])
    assert checkpoint.size == 7
    # the log's key still opens it; the cosignature is kept aside as unknown
    assert len(open_note(cosigned, [LOG.verifier]).unverified) == 1


def test_no_cosignature_or_another_witness_is_refused() -> None:
    other = Cosigner("witness.example/w2", bytes(32))
    cosigned = add_cosignatures(NOTE, [cosign(NOTE, WITNESS, 100)])
    with pytest.raises(NoteSignatureError):
        require_cosignature(NOTE, [WITNESS.verifier])
    with pytest.raises(NoteSignatureError):
        require_cosignature(cosigned, [other.verifier])
    assert verify_cosignatures(cosigned, [other.verifier]) == ()
    # the same name with another key: a different key ID, so not the configured witness
    impostor = Cosigner(WITNESS.name, bytes(32))
    with pytest.raises(NoteSignatureError):
        require_cosignature(add_cosignatures(NOTE, [cosign(NOTE, impostor, 1)]),
                            [WITNESS.verifier])


def test_a_tampered_checkpoint_or_timestamp_is_refused() -> None:
    line = cosign(NOTE, WITNESS, 100)
    other = sign_checkpoint(Checkpoint("log.example", 8, bytes(32)), LOG)
    with pytest.raises(NoteSignatureError):
        require_cosignature(add_cosignatures(other, [line]), [WITNESS.verifier])
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # the timestamp is signed too
    moved = f"\u2014 {WITNESS.name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(NoteSignatureError):
        require_cosignature(add_cosignatures(NOTE, [moved]), [WITNESS.verifier])


def test_a_cosignature_key_is_not_a_note_key() -> None:
    """Type 0x04 and type 0x01 keys of the same name and key have different IDs, and
    neither signature passes for the other."""
    same_key = verifier_for(WITNESS.name, WITNESS.verifier.public_key)
    assert same_key.key_id != WITNESS.verifier.key_id
    cosigned = add_cosignatures(NOTE, [cosign(NOTE, WITNESS, 1)])
    with pytest.raises(NoteSignatureError):
        open_note(cosigned, [same_key])
    with pytest.raises(MalformedNote):
        parse_cosigner_key(LOG.verifier.encode())


def test_keys_round_trip_and_hide_the_seed() -> None:
    text = WITNESS.verifier.encode()
    assert text.startswith("witness.example/w1+")
    assert base64.b64decode(text.split("+")[2])[0] == 0x04
    assert parse_cosigner_key(text) == WITNESS.verifier
    private = WITNESS.private_key_string()
    assert parse_cosigner_private_key(private).verifier == WITNESS.verifier
    assert private.split("+")[-1] not in repr(WITNESS)
    bad = private[:-8] + ("A" if private[-8] != "A" else "B") + private[-7:]
    with pytest.raises(MalformedNote):
        parse_cosigner_private_key(bad)


def test_add_cosignatures_appends_once_and_checks_the_lines() -> None:
    line = cosign(NOTE, WITNESS, 5)
    once = add_cosignatures(NOTE, [line, line])
    assert once == NOTE + line.encode()
    assert add_cosignatures(once, [line]) == once
    with pytest.raises(MalformedNote):
        add_cosignatures(NOTE, ["not a signature\n"])
    with pytest.raises(MalformedNote):  # a plain 0x01 signature is not a cosignature
        add_cosignatures(NOTE, [NOTE.decode().split("\n\n")[1]])


def test_require_checks_its_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        require_cosignature(NOTE, [])
    with pytest.raises(LocalProtocolError):
        require_cosignature(NOTE, [WITNESS.verifier], quorum=2)
    w2 = Cosigner("w2", bytes(32))
    one = add_cosignatures(NOTE, [cosign(NOTE, WITNESS, 1)])
    with pytest.raises(NoteSignatureError):
        require_cosignature(one, [WITNESS.verifier, w2.verifier], quorum=2)
    both = add_cosignatures(one, [cosign(NOTE, w2, 2)])
    assert len(require_cosignature(both, [WITNESS.verifier, w2.verifier], quorum=2)) == 2
