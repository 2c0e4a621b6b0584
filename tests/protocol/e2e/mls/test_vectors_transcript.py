"""transcript-hashes vectors (suite 1), every entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.mls import transcript
from protocol.e2e.mls.framing import AuthenticatedContent, ContentType
from protocol.wire import tls

ENTRIES = [e for e in json.loads((Path(__file__).parent / "vectors"
                                  / "transcript-hashes.json").read_text())
           if e["cipher_suite"] == 1]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_suite_1_present() -> None:
    assert len(ENTRIES) == 1


@pytest.mark.parametrize("entry", ENTRIES)
def test_transcript_hashes(entry: dict[str, Any]) -> None:
    r = tls.Reader(h(entry["authenticated_content"]))
    content = AuthenticatedContent.read(r)
    r.finish()
    assert content.content.content_type == ContentType.COMMIT
    tag = content.auth.confirmation_tag
    assert tag is not None
    confirmed = transcript.confirmed_transcript_hash(
        h(entry["interim_transcript_hash_before"]), content)
    assert confirmed == h(entry["confirmed_transcript_hash_after"])
    assert transcript.verify_confirmation_tag(h(entry["confirmation_key"]), confirmed, tag)
    assert not transcript.verify_confirmation_tag(h(entry["confirmation_key"]),
                                                  confirmed[::-1], tag)
    assert transcript.interim_transcript_hash(confirmed, tag) == h(
        entry["interim_transcript_hash_after"])
