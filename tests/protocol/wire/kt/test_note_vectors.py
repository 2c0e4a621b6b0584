"""The C2SP signed-note examples (vectors/kt-known-answers.json, key "c2sp_signed_note")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.note import (
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

DOC = json.loads((Path(__file__).parent / "vectors" / "kt-known-answers.json").read_text())
ENTRIES: list[dict[str, Any]] = DOC["c2sp_signed_note"]


def _id(entry: dict[str, Any]) -> str:
    return str(entry["vkey"].split("+")[0])


def test_the_file_holds_the_two_examples() -> None:
    assert len(ENTRIES) == 2
    assert sum("skey" in e for e in ENTRIES) == 1


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_verifier_key_and_its_id(entry: dict[str, Any]) -> None:
    v = parse_verifier_key(entry["vkey"])
    assert v.key_id.hex() == entry["vkey"].split("+")[1]
    assert key_id(v.name, v.public_key) == v.key_id
    assert v.encode() == entry["vkey"]


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_the_note_verifies_and_its_tampered_copies_do_not(entry: dict[str, Any]) -> None:
    v = parse_verifier_key(entry["vkey"])
    message = entry["note"].encode()
    note = open_note(message, [v])
    assert [s.name for s in note.signatures] == [v.name]
    assert note.signatures[0].key_id == v.key_id
    assert message.startswith(note.text.encode() + b"\n")
    tampered = message.replace(b".", b"!", 1)
    with pytest.raises(NoteSignatureError):
        open_note(tampered, [v])
    with pytest.raises(NoteSignatureError):  # nobody we trust signed it
        open_note(message, [])


def test_signer_key_reproduces_the_signature() -> None:
    entry = next(e for e in ENTRIES if "skey" in e)
    signer = parse_signer_key(entry["skey"])
    assert signer.verifier == parse_verifier_key(entry["vkey"])
    assert signer.private_key_string() == entry["skey"]
    text = entry["note"].split("\n\n\u2014")[0] + "\n"
    assert sign_note(text, [signer]) == entry["note"].encode()


def test_a_verifier_key_with_the_wrong_id_is_refused() -> None:
    name, kid, key = ENTRIES[0]["vkey"].split("+", 2)
    wrong = f"{name}+{int(kid, 16) ^ 1:08x}+{key}"
    with pytest.raises(MalformedNote):
        parse_verifier_key(wrong)
    with pytest.raises(MalformedNote):
        parse_verifier_key(f"Other+{kid}+{key}")
