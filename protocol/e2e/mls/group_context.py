"""The group context (RFC 9420 section 8.1): the state every member agrees on in an
epoch, mixed into the key schedule so that members who disagree on any of it derive
different keys."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.leaf_node import Extension, encode_extensions, read_extensions
from protocol.wire import tls

PROTOCOL_VERSION_MLS10 = 1


@dataclass(frozen=True)
class GroupContext:
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...] = ()
    cipher_suite: int = cs.CIPHER_SUITE
    version: int = PROTOCOL_VERSION_MLS10

    def encode(self) -> bytes:
        return (tls.u16(self.version) + tls.u16(self.cipher_suite)
                + tls.opaque(self.group_id) + tls.u64(self.epoch)
                + tls.opaque(self.tree_hash) + tls.opaque(self.confirmed_transcript_hash)
                + encode_extensions(self.extensions))

    @classmethod
    def read(cls, r: tls.Reader) -> GroupContext:
        version, suite = r.u16(), r.u16()
        group_id, epoch = r.opaque(), r.u64()
        tree_hash, transcript = r.opaque(), r.opaque()
        return cls(group_id, epoch, tree_hash, transcript, read_extensions(r), suite,
                   version)
