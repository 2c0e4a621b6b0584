"""The `messages` vectors: every struct of every entry decodes strictly and encodes
back to the same bytes (test-vectors.md, "Messages"). Suite-independent: all 300
entries are checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls.framing import MLSMessage, WireFormat
from protocol.e2e.mls.proposals import Commit, ProposalType, read_body
from protocol.e2e.mls.ratchet_tree import encode_tree, read_tree
from protocol.e2e.mls.welcome import GroupSecrets
from protocol.wire import tls
from protocol.wire.errors import DecodeError

ENTRIES: list[dict[str, str]] = json.loads(
    (Path(__file__).parent / "vectors" / "messages.json").read_text())


def _roundtrip(data: bytes, read: Callable[[tls.Reader], Any],
               encode: Callable[[Any], bytes]) -> Any:
    r = tls.Reader(data)
    value = read(r)
    r.finish()
    assert encode(value) == data
    return value


def _proposal(kind: ProposalType) -> Callable[[tls.Reader], Any]:
    return lambda r: read_body(kind, r)


def _encode(value: Any) -> bytes:
    out = value.encode()
    assert isinstance(out, bytes)
    return out


MLS_MESSAGES = {
    "mls_welcome": WireFormat.WELCOME,
    "mls_group_info": WireFormat.GROUP_INFO,
    "mls_key_package": WireFormat.KEY_PACKAGE,
    "public_message_application": WireFormat.PUBLIC_MESSAGE,
    "public_message_proposal": WireFormat.PUBLIC_MESSAGE,
    "public_message_commit": WireFormat.PUBLIC_MESSAGE,
    "private_message": WireFormat.PRIVATE_MESSAGE,
}

STRUCTS: dict[str, Callable[[tls.Reader], Any]] = {
    "group_secrets": GroupSecrets.read,
    "add_proposal": _proposal(ProposalType.ADD),
    "update_proposal": _proposal(ProposalType.UPDATE),
    "remove_proposal": _proposal(ProposalType.REMOVE),
    "pre_shared_key_proposal": _proposal(ProposalType.PSK),
    "re_init_proposal": _proposal(ProposalType.REINIT),
    "external_init_proposal": _proposal(ProposalType.EXTERNAL_INIT),
    "group_context_extensions_proposal": _proposal(ProposalType.GROUP_CONTEXT_EXTENSIONS),
    "commit": Commit.read,
}


def test_every_field_of_the_file_is_checked() -> None:
    assert len(ENTRIES) == 300
    for entry in ENTRIES:
        assert set(entry) == set(MLS_MESSAGES) | set(STRUCTS) | {"ratchet_tree"}


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_messages(index: int) -> None:
    entry = ENTRIES[index]
    for name, wire_format in MLS_MESSAGES.items():
        message = _roundtrip(bytes.fromhex(entry[name]), MLSMessage.read, _encode)
        assert message.wire_format == wire_format, name
    for name, read in STRUCTS.items():
        _roundtrip(bytes.fromhex(entry[name]), read, _encode)
    _roundtrip(bytes.fromhex(entry["ratchet_tree"]), read_tree, encode_tree)


def test_structs_are_strict() -> None:
    entry = ENTRIES[0]
    data = bytes.fromhex(entry["commit"])
    with pytest.raises(DecodeError):
        r = tls.Reader(data + b"\x00")
        Commit.read(r)
        r.finish()
    with pytest.raises(DecodeError):
        Commit.read(tls.Reader(data[:-1]))

