"""C2SP tlog-cosignature known answers (vectors/c2sp-cosignature.json, PROTOCOL.md 19.11):
a production witness's cosignature must verify byte for byte under our construction."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.cosignature import (
    Cosignature,
    cosigner_key_id,
    parse_cosigner_key,
    require_cosignature,
    verify_cosignatures,
)
from protocol.wire.kt.errors import NoteSignatureError
from protocol.wire.kt.note import Signature, parse_verifier_key

DOC = json.loads((Path(__file__).parent / "vectors" / "c2sp-cosignature.json").read_text())
COSIGNED: list[dict[str, Any]] = DOC["cosigned_checkpoints"]
TIMESTAMPS: list[dict[str, Any]] = DOC["cosignature_timestamps"]


def test_the_file_holds_what_the_readme_says() -> None:
    assert len(COSIGNED) == 1
    assert len(TIMESTAMPS) == 2


@pytest.mark.parametrize("entry", COSIGNED)
def test_the_witness_key_and_its_type_0x04_id(entry: dict[str, Any]) -> None:
    w = parse_cosigner_key(entry["witness_vkey"])
    assert w.encode() == entry["witness_vkey"]
    assert cosigner_key_id(w.name, w.public_key).hex() == entry["witness_vkey"].split("+")[1]
    blob = base64.b64decode(entry["witness_vkey"].split("+")[2])
    assert blob[0] == 0x04


@pytest.mark.parametrize("entry", COSIGNED)
def test_a_real_cosignature_verifies(entry: dict[str, Any]) -> None:
    note = entry["note"].encode()
    w = parse_cosigner_key(entry["witness_vkey"])
    log = parse_verifier_key(entry["log_vkey"])
    found = verify_cosignatures(note, [w])
    assert [c.name for c in found] == [w.name]
    assert require_cosignature(note, [w]) == found
    checkpoint, opened = open_checkpoint(note, log, [w])
    assert checkpoint.origin == log.name
    assert {s.name for s in opened.signatures} == {log.name, w.name}
    # the cosignature's line is reproduced exactly from its parts
    line = found[0].line()
    assert line in entry["note"]


@pytest.mark.parametrize("entry", COSIGNED)
def test_a_changed_checkpoint_breaks_the_real_cosignature(entry: dict[str, Any]) -> None:
    w = parse_cosigner_key(entry["witness_vkey"])
    lines = entry["note"].split("\n")
    bigger = "\n".join([lines[0], str(int(lines[1]) + 1), *lines[2:]]).encode()
    with pytest.raises(NoteSignatureError):
        verify_cosignatures(bigger, [w])
    root = base64.b64decode(lines[2])
    other_root = base64.b64encode(bytes([root[0] ^ 1]) + root[1:]).decode()
    forked = "\n".join([lines[0], lines[1], other_root, *lines[3:]]).encode()
    with pytest.raises(NoteSignatureError):
        require_cosignature(forked, [w])


@pytest.mark.parametrize("entry", TIMESTAMPS, ids=lambda e: str(e["timestamp"]))
def test_the_timestamp_is_8_big_endian_bytes_after_the_key_id(entry: dict[str, Any]) -> None:
    blob = base64.b64decode(entry["signature"])
    cosig = Cosignature.from_signature(Signature("w", blob[:4], blob[4:]))
    assert cosig.timestamp == entry["timestamp"]
    assert cosig.line() == f"\u2014 w {entry['signature']}\n"
