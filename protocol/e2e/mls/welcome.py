"""Joining a group (RFC 9420 section 12.4.3): the GroupInfo a new member needs, the
GroupSecrets encrypted to its KeyPackage, and the Welcome that carries both."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.key_schedule import PreSharedKeyID
from protocol.e2e.mls.leaf_node import Extension, encode_extensions, read_extensions
from protocol.e2e.mls.proposals import HPKECiphertext, read_psk_id
from protocol.wire import tls


@dataclass(frozen=True)
class GroupInfo:
    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes = field(default=b"", repr=False)

    def tbs(self) -> bytes:
        return (self.group_context.encode() + encode_extensions(self.extensions)
                + tls.opaque(self.confirmation_tag) + tls.u32(self.signer))

    def encode(self) -> bytes:
        return self.tbs() + tls.opaque(self.signature)

    @classmethod
    def read(cls, r: tls.Reader) -> GroupInfo:
        return cls(GroupContext.read(r), read_extensions(r), r.opaque(), r.u32(),
                   r.opaque())

    def verify(self, signer_key: bytes) -> None:
        cs.verify_with_label(signer_key, "GroupInfoTBS", self.tbs(), self.signature)


@dataclass(frozen=True)
class GroupSecrets:
    joiner_secret: bytes = field(repr=False)
    path_secret: bytes | None = field(repr=False)
    psks: tuple[PreSharedKeyID, ...]

    def encode(self) -> bytes:
        path = None if self.path_secret is None else tls.opaque(self.path_secret)
        return (tls.opaque(self.joiner_secret) + tls.optional(path)
                + tls.vector(p.encode() for p in self.psks))

    @classmethod
    def read(cls, r: tls.Reader) -> GroupSecrets:
        return cls(r.opaque(), r.optional(tls.Reader.opaque), tuple(r.vector(read_psk_id)))


@dataclass(frozen=True)
class EncryptedGroupSecrets:
    new_member: bytes
    encrypted_group_secrets: HPKECiphertext

    def encode(self) -> bytes:
        return tls.opaque(self.new_member) + self.encrypted_group_secrets.encode()

    @classmethod
    def read(cls, r: tls.Reader) -> EncryptedGroupSecrets:
        return cls(r.opaque(), HPKECiphertext.read(r))


@dataclass(frozen=True)
class Welcome:
    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self) -> bytes:
        return (tls.u16(self.cipher_suite) + tls.vector(s.encode() for s in self.secrets)
                + tls.opaque(self.encrypted_group_info))

    @classmethod
    def read(cls, r: tls.Reader) -> Welcome:
        return cls(r.u16(), tuple(r.vector(EncryptedGroupSecrets.read)), r.opaque())
