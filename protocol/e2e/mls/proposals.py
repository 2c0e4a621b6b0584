"""Proposals and commits (RFC 9420 sections 12.1 and 12.4), and the UpdatePath a
commit carries (section 7.6)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.key_package import KeyPackage
from protocol.e2e.mls.key_schedule import PSK_EXTERNAL, PSK_RESUMPTION, PreSharedKeyID
from protocol.e2e.mls.leaf_node import (
    Extension,
    LeafNode,
    encode_extensions,
    read_extensions,
)
from protocol.wire import tls
from protocol.wire.errors import DecodeError


class ProposalType(IntEnum):
    ADD = 1
    UPDATE = 2
    REMOVE = 3
    PSK = 4
    REINIT = 5
    EXTERNAL_INIT = 6
    GROUP_CONTEXT_EXTENSIONS = 7


def read_psk_id(r: tls.Reader) -> PreSharedKeyID:
    psktype = r.u8()
    if psktype == PSK_EXTERNAL:
        psk_id = r.opaque()
        return PreSharedKeyID(psktype, r.opaque(), psk_id=psk_id)
    if psktype == PSK_RESUMPTION:
        usage, group_id, epoch = r.u8(), r.opaque(), r.u64()
        if usage not in (1, 2, 3):
            raise DecodeError(f"unknown resumption PSK usage {usage}")
        return PreSharedKeyID(psktype, r.opaque(), usage=usage, psk_group_id=group_id,
                              psk_epoch=epoch)
    raise DecodeError(f"unknown PSK type {psktype}")


@dataclass(frozen=True)
class Add:
    key_package: KeyPackage

    def encode(self) -> bytes:
        return self.key_package.encode()


@dataclass(frozen=True)
class Update:
    leaf_node: LeafNode

    def encode(self) -> bytes:
        return self.leaf_node.encode()


@dataclass(frozen=True)
class Remove:
    removed: int

    def encode(self) -> bytes:
        return tls.u32(self.removed)


@dataclass(frozen=True)
class PreSharedKey:
    psk: PreSharedKeyID

    def encode(self) -> bytes:
        return self.psk.encode()


@dataclass(frozen=True)
class ReInit:
    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...]

    def encode(self) -> bytes:
        return (tls.opaque(self.group_id) + tls.u16(self.version) + tls.u16(self.cipher_suite)
                + encode_extensions(self.extensions))


@dataclass(frozen=True)
class ExternalInit:
    kem_output: bytes

    def encode(self) -> bytes:
        return tls.opaque(self.kem_output)


@dataclass(frozen=True)
class GroupContextExtensions:
    extensions: tuple[Extension, ...]

    def encode(self) -> bytes:
        return encode_extensions(self.extensions)


ProposalBody = (Add | Update | Remove | PreSharedKey | ReInit | ExternalInit
                | GroupContextExtensions)

_TYPE_OF: dict[type, ProposalType] = {
    Add: ProposalType.ADD, Update: ProposalType.UPDATE, Remove: ProposalType.REMOVE,
    PreSharedKey: ProposalType.PSK, ReInit: ProposalType.REINIT,
    ExternalInit: ProposalType.EXTERNAL_INIT,
    GroupContextExtensions: ProposalType.GROUP_CONTEXT_EXTENSIONS,
}


def read_body(kind: int, r: tls.Reader) -> ProposalBody:
    """The proposal struct of type `kind` (the Proposal's select)."""
    if kind == ProposalType.ADD:
        return Add(KeyPackage.read(r))
    if kind == ProposalType.UPDATE:
        return Update(LeafNode.read(r))
    if kind == ProposalType.REMOVE:
        return Remove(r.u32())
    if kind == ProposalType.PSK:
        return PreSharedKey(read_psk_id(r))
    if kind == ProposalType.REINIT:
        return ReInit(r.opaque(), r.u16(), r.u16(), read_extensions(r))
    if kind == ProposalType.EXTERNAL_INIT:
        return ExternalInit(r.opaque())
    if kind == ProposalType.GROUP_CONTEXT_EXTENSIONS:
        return GroupContextExtensions(read_extensions(r))
    raise DecodeError(f"unknown proposal type {kind}")


@dataclass(frozen=True)
class Proposal:
    body: ProposalBody

    @property
    def proposal_type(self) -> ProposalType:
        return _TYPE_OF[type(self.body)]

    def encode(self) -> bytes:
        return tls.u16(self.proposal_type) + self.body.encode()

    @classmethod
    def read(cls, r: tls.Reader) -> Proposal:
        return cls(read_body(r.u16(), r))


PROPOSAL_REF_LABEL = "MLS 1.0 Proposal Reference"


def proposal_ref(authenticated_content: bytes) -> bytes:
    """ProposalRef = RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)
    (section 5.2): a proposal by reference names the whole signed message."""
    return cs.ref_hash(PROPOSAL_REF_LABEL, authenticated_content)


@dataclass(frozen=True)
class ProposalOrRef:
    """By value (`proposal`) or by reference (`reference`), section 12.4."""

    proposal: Proposal | None = None
    reference: bytes = b""

    def encode(self) -> bytes:
        if self.proposal is not None:
            return tls.u8(1) + self.proposal.encode()
        return tls.u8(2) + tls.opaque(self.reference)

    @classmethod
    def read(cls, r: tls.Reader) -> ProposalOrRef:
        kind = r.u8()
        if kind == 1:
            return cls(proposal=Proposal.read(r))
        if kind == 2:
            return cls(reference=r.opaque())
        raise DecodeError(f"unknown ProposalOrRef type {kind}")


@dataclass(frozen=True)
class HPKECiphertext:
    kem_output: bytes
    ciphertext: bytes

    def encode(self) -> bytes:
        return tls.opaque(self.kem_output) + tls.opaque(self.ciphertext)

    @classmethod
    def read(cls, r: tls.Reader) -> HPKECiphertext:
        return cls(r.opaque(), r.opaque())


@dataclass(frozen=True)
class UpdatePathNode:
    encryption_key: bytes
    encrypted_path_secret: tuple[HPKECiphertext, ...]

    def encode(self) -> bytes:
        return (tls.opaque(self.encryption_key)
                + tls.vector(c.encode() for c in self.encrypted_path_secret))

    @classmethod
    def read(cls, r: tls.Reader) -> UpdatePathNode:
        return cls(r.opaque(), tuple(r.vector(HPKECiphertext.read)))


@dataclass(frozen=True)
class UpdatePath:
    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self) -> bytes:
        return self.leaf_node.encode() + tls.vector(n.encode() for n in self.nodes)

    @classmethod
    def read(cls, r: tls.Reader) -> UpdatePath:
        return cls(LeafNode.read(r), tuple(r.vector(UpdatePathNode.read)))


@dataclass(frozen=True)
class Commit:
    proposals: tuple[ProposalOrRef, ...]
    path: UpdatePath | None = None

    def encode(self) -> bytes:
        return (tls.vector(p.encode() for p in self.proposals)
                + tls.optional(None if self.path is None else self.path.encode()))

    @classmethod
    def read(cls, r: tls.Reader) -> Commit:
        return cls(tuple(r.vector(ProposalOrRef.read)), r.optional(UpdatePath.read))
