"""The add-checkpoint body and the witness's rules, sans I/O (protocol.wire.kt.witness,
PROTOCOL.md 19.11); the HTTP witness is tested in tests/server/test_witness.py."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.wire.errors import DecodeError
from protocol.wire.kt.directory import Directory
from protocol.wire.kt.note import Signer
from protocol.wire.kt.witness import (
    AddCheckpoint,
    Head,
    Status,
    judge,
    parse_add_checkpoint,
    parse_cosignature_lines,
    parse_size_body,
)

H = bytes(range(32))


def grow(d: Directory, n: int) -> None:
    """n more registrations in the directory's log."""
    for _ in range(n):
        name = f"user{d.size}"
        identity = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        d.append(name, d.next_binding(name, identity), os.urandom(16))


def test_the_body_is_old_size_proof_lines_blank_line_note() -> None:
    note = b"log\n2\n" + base64.b64encode(H) + b"\n\n\xe2\x80\x94 log AAAA\n"
    body = AddCheckpoint(20852014, (H, H), note).encode()
    b64 = base64.b64encode(H)
    assert body == b"old 20852014\n" + b64 + b"\n" + b64 + b"\n\n" + note
    assert parse_add_checkpoint(body) == AddCheckpoint(20852014, (H, H), note)
    assert parse_add_checkpoint(b"old 0\n\n" + note) == AddCheckpoint(0, (), note)


@pytest.mark.parametrize("body", [
    b"", b"old 01\n\nx", b"old -1\n\nx", b"old 1\n", b"old 1\n\n", b"new 1\n\nx",
    b"old 1\nAAAA\n\nx", b"old 1\n" + base64.b64encode(H)[:-2] + b"9=\n\nx",
    b"old 1\n" + (base64.b64encode(H) + b"\n") * 64 + b"\nx", b"old \xff\n\nx",
])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_add_checkpoint(body)


def test_answer_bodies() -> None:
    assert parse_size_body(b"42\n") == 42
    for bad in (b"42", b"042\n", b"x\n"):
        with pytest.raises(DecodeError):
            parse_size_body(bad)
    assert parse_cosignature_lines("\u2014 w AAAA\n\u2014 v BBBB\n".encode()) == [
        "\u2014 w AAAA\n", "\u2014 v BBBB\n"]
    with pytest.raises(DecodeError):
        parse_cosignature_lines(b"w AAAA\n")


def test_judge_follows_the_spec_order() -> None:
    d = Directory(Signer.generate("log.example"), bytes(32))
    grow(d, 3)
    note3 = d.checkpoint()
    logs = {"log.example": d.signer.verifier}
    first = judge(AddCheckpoint(0, (), note3), logs, {})
    assert first.status is Status.OK and first.checkpoint is not None
    heads = {"log.example": Head(3, first.checkpoint.root_hash)}
    grow(d, 2)
    note5 = d.checkpoint()
    proof = tuple(d.consistency(3, 5))
    assert judge(AddCheckpoint(3, proof, note5), logs, heads).status is Status.OK
    assert judge(AddCheckpoint(0, (), note5), logs, heads).latest_size == 3
    assert judge(AddCheckpoint(0, (), note5), logs, heads).status is Status.CONFLICT
    assert judge(AddCheckpoint(6, (), note5), logs, heads).status is Status.BAD_REQUEST
    assert judge(AddCheckpoint(3, proof[1:], note5), logs, heads).status is Status.UNPROCESSABLE
    assert judge(AddCheckpoint(3, (), note3), logs, heads).status is Status.OK
    assert judge(AddCheckpoint(3, (H,), note3), logs, heads).status is Status.UNPROCESSABLE
    assert judge(AddCheckpoint(0, (), note3), {}, {}).status is Status.NOT_FOUND
    stranger = {"log.example": Signer.generate("log.example").verifier}
    assert judge(AddCheckpoint(0, (), note3), stranger, {}).status is Status.FORBIDDEN
