"""Signing, tagging and encrypting framed content (RFC 9420 sections 6.1-6.3).

- Every FramedContent is signed by its sender over FramedContentTBS, which binds the
  wire format and (for members) the whole group context (6.1).
- A PublicMessage from a member also carries membership_tag = MAC(membership_key,
  AuthenticatedContentTBM), so non-members cannot inject handshake messages (6.2).
- A PrivateMessage encrypts the content and its auth data with a key from the secret
  tree, and the sender's leaf index and generation with the sender data key (6.3);
  the 4-byte reuse guard is XORed into the nonce.

Failures are `DecryptionFailed` (or `BadSignature`, a subclass) without detail.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.framing import (
    PROTOCOL_VERSION_MLS10,
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PublicMessage,
    Sender,
    SenderType,
    WireFormat,
    encode_body,
    read_body,
)
from protocol.e2e.mls.secret_tree import SecretTree, sender_data_key_nonce
from protocol.wire import tls
from protocol.wire.errors import DecodeError

PADDING_BLOCK = 32
"""PrivateMessageContent is padded with zeros to a multiple of this (section 6.3.1
leaves the amount to the sender; a block hides lengths within it)."""


def content_tbs(wire_format: int, content: FramedContent, group_context: bytes) -> bytes:
    """FramedContentTBS (6.1): the context is included for member and new-member-
    commit senders only."""
    out = tls.u16(PROTOCOL_VERSION_MLS10) + tls.u16(wire_format) + content.encode()
    if content.sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT):
        out += group_context
    return out


def sign_content(signature_private: bytes, wire_format: int, content: FramedContent,
                 group_context: bytes) -> bytes:
    return cs.sign_with_label(signature_private, "FramedContentTBS",
                              content_tbs(wire_format, content, group_context))


def verify_content(signature_public: bytes, authenticated: AuthenticatedContent,
                   group_context: bytes) -> None:
    cs.verify_with_label(signature_public, "FramedContentTBS",
                         content_tbs(authenticated.wire_format, authenticated.content,
                                     group_context),
                         authenticated.auth.signature)


def membership_tag(membership_key: bytes, content: FramedContent,
                   auth: FramedContentAuthData, group_context: bytes) -> bytes:
    tbm = content_tbs(WireFormat.PUBLIC_MESSAGE, content, group_context) + auth.encode()
    return cs.mac(membership_key, tbm)


# -- PublicMessage (6.2)

def protect_public(content: FramedContent, auth: FramedContentAuthData,
                   membership_key: bytes, group_context: bytes) -> PublicMessage:
    tag = None
    if content.sender.sender_type == SenderType.MEMBER:
        tag = membership_tag(membership_key, content, auth, group_context)
    return PublicMessage(content, auth, tag)


def unprotect_public(message: PublicMessage, membership_key: bytes, group_context: bytes
                     ) -> AuthenticatedContent:
    """Checks the membership tag (members' messages); the signature is the caller's,
    who knows the sender's key."""
    if message.content.sender.sender_type == SenderType.MEMBER:
        expected = membership_tag(membership_key, message.content, message.auth,
                                  group_context)
        if message.membership_tag is None or not hmac.compare_digest(
                expected, message.membership_tag):
            raise DecryptionFailed("membership tag does not verify")
    return AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, message.content, message.auth)


# -- PrivateMessage (6.3)

@dataclass(frozen=True)
class SenderData:
    leaf_index: int
    generation: int
    reuse_guard: bytes

    def encode(self) -> bytes:
        return tls.u32(self.leaf_index) + tls.u32(self.generation) + self.reuse_guard

    @classmethod
    def decode(cls, data: bytes) -> SenderData:
        r = tls.Reader(data)
        out = cls(r.u32(), r.u32(), r.take(4))
        r.finish()
        return out


def _sender_data_aad(group_id: bytes, epoch: int, content_type: int) -> bytes:
    return tls.opaque(group_id) + tls.u64(epoch) + tls.u8(content_type)


def _content_aad(group_id: bytes, epoch: int, content_type: int, aad: bytes) -> bytes:
    return _sender_data_aad(group_id, epoch, content_type) + tls.opaque(aad)


def _ratchet_kind(content_type: int) -> str:
    return "application" if content_type == ContentType.APPLICATION else "handshake"


def _guarded(nonce: bytes, reuse_guard: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(reuse_guard, nonce[:4], strict=True)) + nonce[4:]


def protect_private(content: FramedContent, auth: FramedContentAuthData,
                    tree: SecretTree, sender_data_secret: bytes,
                    padding_block: int = PADDING_BLOCK) -> PrivateMessage:
    """Encrypts a member's content (6.3.1), using the next generation of its ratchet."""
    if content.sender.sender_type != SenderType.MEMBER:
        raise ValueError("only members send PrivateMessages")
    leaf, kind = content.sender.index, content.content_type
    ratchet = tree.ratchet(leaf, _ratchet_kind(kind))
    key_nonce = ratchet.get(ratchet.generation)
    reuse_guard = os.urandom(4)
    plain = encode_body(content.body) + auth.encode()
    if padding_block > 1:
        plain += bytes(-len(plain) % padding_block)
    ciphertext = cs.aead_seal(key_nonce.key, _guarded(key_nonce.nonce, reuse_guard),
                              _content_aad(content.group_id, content.epoch, kind,
                                           content.authenticated_data), plain)
    sd_key, sd_nonce = sender_data_key_nonce(sender_data_secret, ciphertext)
    encrypted_sender_data = cs.aead_seal(
        sd_key, sd_nonce, _sender_data_aad(content.group_id, content.epoch, kind),
        SenderData(leaf, key_nonce.generation, reuse_guard).encode())
    return PrivateMessage(content.group_id, content.epoch, kind, content.authenticated_data,
                          encrypted_sender_data, ciphertext)


def unprotect_private(message: PrivateMessage, tree: SecretTree, sender_data_secret: bytes
                      ) -> AuthenticatedContent:
    """Decrypts (6.3.2); the signature is the caller's to check (it needs the sender's
    leaf). DecryptionFailed for anything that does not open or parse."""
    sd_key, sd_nonce = sender_data_key_nonce(sender_data_secret, message.ciphertext)
    try:
        sender_data = SenderData.decode(cs.aead_open(
            sd_key, sd_nonce,
            _sender_data_aad(message.group_id, message.epoch, message.content_type),
            message.encrypted_sender_data))
        ratchet = tree.ratchet(sender_data.leaf_index, _ratchet_kind(message.content_type))
        key_nonce = ratchet.get(sender_data.generation)
    except (DecodeError, ValueError) as exc:
        raise DecryptionFailed("sender data does not open") from exc
    plain = cs.aead_open(key_nonce.key, _guarded(key_nonce.nonce, sender_data.reuse_guard),
                         _content_aad(message.group_id, message.epoch, message.content_type,
                                      message.authenticated_data), message.ciphertext)
    try:
        r = tls.Reader(plain)
        body = read_body(message.content_type, r)
        auth = FramedContentAuthData.read(r, message.content_type)
        if any(r.take(r.remaining)):
            raise DecodeError("padding is not all zeros")
    except DecodeError as exc:
        raise DecryptionFailed("private message content is malformed") from exc
    content = FramedContent(message.group_id, message.epoch,
                            Sender(SenderType.MEMBER, sender_data.leaf_index),
                            message.authenticated_data, body)
    return AuthenticatedContent(WireFormat.PRIVATE_MESSAGE, content, auth)
