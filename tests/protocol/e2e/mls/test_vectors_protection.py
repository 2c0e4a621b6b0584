"""message-protection vectors (suite 1), every entry: each PublicMessage and
PrivateMessage opens to the given content with a valid signature, and what we protect
opens again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import protection
from protocol.e2e.mls.framing import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
    SenderType,
    WireFormat,
    encode_body,
    read_body,
)
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.secret_tree import SecretTree
from protocol.wire import tls

ENTRIES = [e for e in json.loads((Path(__file__).parent / "vectors"
                                  / "message-protection.json").read_text())
           if e["cipher_suite"] == 1]
N_LEAVES = 2  # test-vectors.md: the sender is leaf 1 of a two-member group
SENDER = 1


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def _message(data: str) -> Any:
    r = tls.Reader(h(data))
    message = MLSMessage.read(r)
    r.finish()
    assert message.encode() == h(data)
    return message.message


def _open(entry: dict[str, Any], message: Any, context: bytes) -> AuthenticatedContent:
    if isinstance(message, PublicMessage):
        return protection.unprotect_public(message, h(entry["membership_key"]), context)
    assert isinstance(message, PrivateMessage)
    tree = SecretTree(h(entry["encryption_secret"]), N_LEAVES)
    return protection.unprotect_private(message, tree, h(entry["sender_data_secret"]))


def test_suite_1_present() -> None:
    assert len(ENTRIES) == 1


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", ["proposal", "commit", "application"])
def test_message_protection(entry: dict[str, Any], kind: str) -> None:
    context = GroupContext(h(entry["group_id"]), entry["epoch"], h(entry["tree_hash"]),
                           h(entry["confirmed_transcript_hash"])).encode()
    expected = h(entry[kind])
    forms = ["priv"] + (["pub"] if kind != "application" else [])
    for form in forms:
        authenticated = _open(entry, _message(entry[f"{kind}_{form}"]), context)
        assert encode_body(authenticated.content.body) == (
            tls.opaque(expected) if kind == "application" else expected)
        assert authenticated.content.sender == Sender(SenderType.MEMBER, SENDER)
        protection.verify_content(h(entry["signature_pub"]), authenticated, context)

    # what we protect opens again, in both forms, and a flipped bit does not
    r = tls.Reader(expected if kind != "application" else tls.opaque(expected))
    body = read_body({"proposal": 2, "commit": 3, "application": 1}[kind], r)
    content = FramedContent(h(entry["group_id"]), entry["epoch"],
                            Sender(SenderType.MEMBER, SENDER), b"", body)
    for wire_format in (WireFormat.PRIVATE_MESSAGE, WireFormat.PUBLIC_MESSAGE):
        if kind == "application" and wire_format == WireFormat.PUBLIC_MESSAGE:
            continue
        signature = protection.sign_content(h(entry["signature_priv"]), wire_format,
                                            content, context)
        auth = FramedContentAuthData(signature, bytes(32) if kind == "commit" else None)
        if wire_format == WireFormat.PUBLIC_MESSAGE:
            message: Any = protection.protect_public(content, auth, h(entry["membership_key"]),
                                                     context)
        else:
            message = protection.protect_private(
                content, auth, SecretTree(h(entry["encryption_secret"]), N_LEAVES),
                h(entry["sender_data_secret"]))
        opened = _open(entry, message, context)
        assert opened.content == content
        protection.verify_content(h(entry["signature_pub"]), opened, context)
        if isinstance(message, PrivateMessage):
            bad = PrivateMessage(message.group_id, message.epoch, message.content_type,
                                 message.authenticated_data, message.encrypted_sender_data,
                                 message.ciphertext[:-1] + bytes([message.ciphertext[-1] ^ 1]))
            with pytest.raises(DecryptionFailed):
                _open(entry, bad, context)
        else:
            with pytest.raises(DecryptionFailed):
                protection.unprotect_public(message, bytes(32), context)
        with pytest.raises(cs.BadSignature):
            protection.verify_content(h(entry["signature_pub"]), opened, context[:-1] + b"\x01")
