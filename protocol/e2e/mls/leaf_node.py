"""Credentials, capabilities, extensions and the LeafNode (RFC 9420 sections 5.3, 7.2,
13): what a member puts in its leaf of the ratchet tree.

Each struct encodes to its TLS presentation (section 2.1) and reads back strictly;
`encode(read(x)) == x` for every accepted `x`, which the official `messages` vectors
check for every struct they carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

from protocol.e2e.mls import cipher_suite as cs
from protocol.wire import tls
from protocol.wire.errors import DecodeError


class CredentialType(IntEnum):
    BASIC = 1
    X509 = 2


class ExtensionType(IntEnum):
    APPLICATION_ID = 1
    RATCHET_TREE = 2
    REQUIRED_CAPABILITIES = 3
    EXTERNAL_PUB = 4
    EXTERNAL_SENDERS = 5


class LeafNodeSource(IntEnum):
    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


@dataclass(frozen=True)
class Credential:
    """Section 5.3: a basic credential's identity, or an X.509 chain (kept as bytes)."""

    credential_type: int
    identity: bytes = b""
    certificates: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        if self.credential_type == CredentialType.BASIC:
            body = tls.opaque(self.identity)
        else:
            body = tls.vector(tls.opaque(c) for c in self.certificates)
        return tls.u16(self.credential_type) + body

    @classmethod
    def read(cls, r: tls.Reader) -> Credential:
        kind = r.u16()
        if kind == CredentialType.BASIC:
            return cls(kind, identity=r.opaque())
        if kind == CredentialType.X509:
            return cls(kind, certificates=tuple(r.vector(tls.Reader.opaque)))
        raise DecodeError(f"unknown credential type {kind}")


@dataclass(frozen=True)
class Extension:
    extension_type: int
    extension_data: bytes

    def encode(self) -> bytes:
        return tls.u16(self.extension_type) + tls.opaque(self.extension_data)

    @classmethod
    def read(cls, r: tls.Reader) -> Extension:
        return cls(r.u16(), r.opaque())


def encode_extensions(extensions: tuple[Extension, ...]) -> bytes:
    return tls.vector(e.encode() for e in extensions)


def read_extensions(r: tls.Reader) -> tuple[Extension, ...]:
    return tuple(r.vector(Extension.read))


def _u16s(values: tuple[int, ...]) -> bytes:
    return tls.vector(tls.u16(v) for v in values)


def _read_u16s(r: tls.Reader) -> tuple[int, ...]:
    return tuple(r.vector(tls.Reader.u16))


@dataclass(frozen=True)
class Capabilities:
    """Section 7.2: what a client supports beyond the defaults."""

    versions: tuple[int, ...] = (1,)
    cipher_suites: tuple[int, ...] = (cs.CIPHER_SUITE,)
    extensions: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    credentials: tuple[int, ...] = (CredentialType.BASIC,)

    def encode(self) -> bytes:
        return (_u16s(self.versions) + _u16s(self.cipher_suites) + _u16s(self.extensions)
                + _u16s(self.proposals) + _u16s(self.credentials))

    @classmethod
    def read(cls, r: tls.Reader) -> Capabilities:
        return cls(_read_u16s(r), _read_u16s(r), _read_u16s(r), _read_u16s(r),
                   _read_u16s(r))


@dataclass(frozen=True)
class Lifetime:
    not_before: int
    not_after: int

    def encode(self) -> bytes:
        return tls.u64(self.not_before) + tls.u64(self.not_after)

    @classmethod
    def read(cls, r: tls.Reader) -> Lifetime:
        return cls(r.u64(), r.u64())


@dataclass(frozen=True)
class LeafNode:
    """Section 7.2. `lifetime` is present for a KeyPackage's leaf, `parent_hash` for a
    commit's; an update's has neither."""

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: int
    lifetime: Lifetime | None = None
    parent_hash: bytes = b""
    extensions: tuple[Extension, ...] = ()
    signature: bytes = field(default=b"", repr=False)

    def _content(self) -> bytes:
        out = (tls.opaque(self.encryption_key) + tls.opaque(self.signature_key)
               + self.credential.encode() + self.capabilities.encode()
               + tls.u8(self.leaf_node_source))
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            assert self.lifetime is not None
            out += self.lifetime.encode()
        elif self.leaf_node_source == LeafNodeSource.COMMIT:
            out += tls.opaque(self.parent_hash)
        return out + encode_extensions(self.extensions)

    def tbs(self, group_id: bytes = b"", leaf_index: int = 0) -> bytes:
        """LeafNodeTBS: the content, then the group and leaf for update and commit
        leaves, so a leaf signed for one place cannot be replayed in another."""
        out = self._content()
        if self.leaf_node_source != LeafNodeSource.KEY_PACKAGE:
            out += tls.opaque(group_id) + tls.u32(leaf_index)
        return out

    def encode(self) -> bytes:
        return self._content() + tls.opaque(self.signature)

    @classmethod
    def read(cls, r: tls.Reader) -> LeafNode:
        encryption_key, signature_key = r.opaque(), r.opaque()
        credential, capabilities = Credential.read(r), Capabilities.read(r)
        source = r.u8()
        lifetime, parent_hash = None, b""
        if source == LeafNodeSource.KEY_PACKAGE:
            lifetime = Lifetime.read(r)
        elif source == LeafNodeSource.COMMIT:
            parent_hash = r.opaque()
        elif source != LeafNodeSource.UPDATE:
            raise DecodeError(f"unknown leaf node source {source}")
        return cls(encryption_key, signature_key, credential, capabilities, source,
                   lifetime, parent_hash, read_extensions(r), r.opaque())

    def sign(self, signature_private: bytes, group_id: bytes = b"", leaf_index: int = 0
             ) -> LeafNode:
        return replace(self, signature=cs.sign_with_label(
            signature_private, "LeafNodeTBS", self.tbs(group_id, leaf_index)))

    def verify(self, group_id: bytes = b"", leaf_index: int = 0) -> None:
        """BadSignature unless signed by its own signature key (section 7.3)."""
        cs.verify_with_label(self.signature_key, "LeafNodeTBS",
                             self.tbs(group_id, leaf_index), self.signature)
