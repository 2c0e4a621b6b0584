"""Signed notes: parsing rules and limits, unknown keys, duplicates, secret hygiene."""

from __future__ import annotations

import base64

import pytest

from protocol.wire.errors import LocalProtocolError, RemoteProtocolError
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.note import (
    PRIVATE_PREFIX,
    Signer,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

LOG = Signer("relay.example", bytes(range(32)))
WITNESS = Signer("witness.example", bytes(range(1, 33)))
STRANGER = Signer("stranger.example", bytes(range(2, 34)))
TEXT = "relay.example\n5\nAAAA\n"


def test_round_trip_with_two_signers() -> None:
    message = sign_note(TEXT, [LOG, WITNESS])
    note = open_note(message, [LOG.verifier, WITNESS.verifier])
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == ["relay.example", "witness.example"]
    assert note.unverified == ()


def test_unknown_keys_are_kept_aside_once_and_never_trusted() -> None:
    message = sign_note(TEXT, [LOG, STRANGER])
    stranger_line = message.decode().splitlines(keepends=True)[-1].encode()
    note = open_note(message + stranger_line, [LOG.verifier])
    assert [s.name for s in note.signatures] == ["relay.example"]
    assert [s.name for s in note.unverified] == ["stranger.example"]
    with pytest.raises(NoteSignatureError):
        open_note(sign_note(TEXT, [STRANGER]), [LOG.verifier])


def test_a_key_with_the_same_name_but_another_id_is_unknown() -> None:
    impostor = Signer("relay.example", bytes(range(5, 37)))
    with pytest.raises(NoteSignatureError):
        open_note(sign_note(TEXT, [impostor]), [LOG.verifier])


def test_a_duplicate_signature_from_a_known_key_is_refused() -> None:
    message = sign_note(TEXT, [LOG])
    line = message.decode().splitlines(keepends=True)[-1].encode()
    with pytest.raises(MalformedNote):
        open_note(message + line, [LOG.verifier])


def test_a_bad_signature_from_a_known_key_is_refused_even_beside_a_good_one() -> None:
    good = sign_note(TEXT, [LOG, WITNESS]).decode()
    lines = good.splitlines(keepends=True)
    name, b64 = lines[-1][2:].split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 1
    lines[-1] = f"\u2014 {name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(NoteSignatureError):
        open_note("".join(lines).encode(), [LOG.verifier, WITNESS.verifier])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.replace(b"\n\n", b"\n"),  # no blank line
        lambda m: m[:-1],  # no final newline
        lambda m: m.replace("\u2014".encode(), b"-"),  # not an em dash
        lambda m: m.replace(b"relay.example ", b"relay.example  "),  # two spaces
        lambda m: m.replace(b"relay.example ", b"relay+example "),  # '+' in a name
        lambda m: m[:-3] + b"!=\n",  # not base64
        lambda m: m + "\u2014 relay.example AAAA\n".encode(),  # under 5 bytes
        lambda m: m.replace(b"5\n", b"5\r\n", 1),  # a control character
        lambda m: b"\xff" + m,  # not UTF-8
        lambda m: m + b"\n",  # an empty signature line
    ],
)
def test_malformed_notes_are_refused(mutate: object) -> None:
    message = sign_note(TEXT, [LOG])
    assert callable(mutate)
    with pytest.raises(RemoteProtocolError):
        open_note(mutate(message), [LOG.verifier])


def test_more_than_100_signatures_are_refused() -> None:
    message = sign_note(TEXT, [LOG])
    extra = "".join(f"\u2014 k{i} {base64.b64encode(bytes(68)).decode()}\n" for i in range(100))
    with pytest.raises(MalformedNote):
        open_note(message + extra.encode(), [LOG.verifier])
    fine = "".join(f"\u2014 k{i} {base64.b64encode(bytes(68)).decode()}\n" for i in range(99))
    assert len(open_note(message + fine.encode(), [LOG.verifier]).unverified) == 99


def test_signing_refuses_bad_text() -> None:
    for text in ("no newline", "bell\x07\n"):
        with pytest.raises(LocalProtocolError):
            sign_note(text, [LOG])
    with pytest.raises(LocalProtocolError):
        sign_note(TEXT, [])


def test_signer_keys_round_trip_and_never_show_their_bytes() -> None:
    encoded = LOG.private_key_string()
    assert encoded.startswith(PRIVATE_PREFIX + "relay.example+")
    assert parse_signer_key(encoded).verifier == LOG.verifier
    secret_b64 = encoded.rsplit("+", 1)[1]
    assert secret_b64 not in repr(LOG)
    assert bytes(range(32)).hex() not in repr(LOG)
    broken = [
        encoded.replace("PRIVATE+KEY+", "PRIVATE+"),
        encoded[:-4] + "!!!!",
        encoded.replace("relay.example+", "other.example+"),
        encoded[:-2],
    ]
    for text in broken:
        with pytest.raises(MalformedNote) as caught:
            parse_signer_key(text)
        assert secret_b64 not in str(caught.value)
        assert secret_b64[:12] not in str(caught.value)
        assert caught.value.__cause__ is None


def test_verifier_key_rules() -> None:
    good = LOG.verifier.encode()
    assert parse_verifier_key(good) == LOG.verifier
    name, kid, key = good.split("+", 2)
    for bad in (
        f"{name}+{kid.upper()}+{key}",
        f"{name}+{kid[:6]}+{key}",
        f"{name}+{kid}",
        f"+{kid}+{key}",
        f"{name}+{kid}+" + base64.b64encode(b"\x02" + LOG.verifier.public_key).decode(),
        f"{name}+{kid}+" + base64.b64encode(b"\x01" + bytes(31)).decode(),
    ):
        with pytest.raises(MalformedNote):
            parse_verifier_key(bad)


def test_two_trusted_keys_with_one_name_and_id_are_a_local_error() -> None:
    other = parse_verifier_key(LOG.verifier.encode())
    clash = type(other)(other.name, other.key_id, bytes(32))
    with pytest.raises(LocalProtocolError):
        open_note(sign_note(TEXT, [LOG]), [LOG.verifier, clash])
