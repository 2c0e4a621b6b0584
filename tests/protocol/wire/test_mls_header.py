"""The relay's view of a group message: for every message of the official `messages`
vectors, the header the wire layer reads equals what the full MLS decoding says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.e2e.mls.framing import MLSMessage, PrivateMessage, PublicMessage
from protocol.wire import tls
from protocol.wire.errors import DecodeError
from protocol.wire.mls_header import GroupHeader, WireFormat, parse_group_header

VECTORS = Path(__file__).resolve().parents[1] / "e2e" / "mls" / "vectors" / "messages.json"
ENTRIES: list[dict[str, str]] = json.loads(VECTORS.read_text())[:50]
FIELDS = ["public_message_application", "public_message_proposal", "public_message_commit",
          "private_message", "mls_welcome"]


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_header_matches_the_full_decoding(index: int) -> None:
    for name in FIELDS:
        data = bytes.fromhex(ENTRIES[index][name])
        header = parse_group_header(data)
        message = MLSMessage.read(tls.Reader(data)).message
        if isinstance(message, PublicMessage):
            c = message.content
            assert header == GroupHeader(WireFormat.PUBLIC_MESSAGE, c.group_id, c.epoch,
                                         c.content_type)
        elif isinstance(message, PrivateMessage):
            assert header == GroupHeader(WireFormat.PRIVATE_MESSAGE, message.group_id,
                                         message.epoch, message.content_type)
        else:
            assert header == GroupHeader(WireFormat.WELCOME)


@pytest.mark.parametrize("data", ["0002", "00010004", "00010005", "000200020000",
                                  "0001000200" + "0000000000000000" + "03",
                                  "000100020101" + "0000000000000001" + "07"])
def test_what_is_not_a_group_message_is_refused(data: str) -> None:
    with pytest.raises(DecodeError):
        parse_group_header(bytes.fromhex(data))
