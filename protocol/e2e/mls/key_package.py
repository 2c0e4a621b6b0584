"""KeyPackages (RFC 9420 section 10): a client's signed offer to be added to a group,
and the reference that names one (section 5.2)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls.leaf_node import (
    Extension,
    LeafNode,
    encode_extensions,
    read_extensions,
)
from protocol.wire import tls


@dataclass(frozen=True)
class KeyPackage:
    version: int
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = field(default=b"", repr=False)

    def tbs(self) -> bytes:
        return (tls.u16(self.version) + tls.u16(self.cipher_suite)
                + tls.opaque(self.init_key) + self.leaf_node.encode()
                + encode_extensions(self.extensions))

    def encode(self) -> bytes:
        return self.tbs() + tls.opaque(self.signature)

    @classmethod
    def read(cls, r: tls.Reader) -> KeyPackage:
        return cls(r.u16(), r.u16(), r.opaque(), LeafNode.read(r), read_extensions(r),
                   r.opaque())

    def sign(self, signature_private: bytes) -> KeyPackage:
        return replace(self, signature=cs.sign_with_label(
            signature_private, "KeyPackageTBS", self.tbs()))

    def verify(self) -> None:
        """BadSignature unless signed by its leaf's signature key (section 10.1)."""
        cs.verify_with_label(self.leaf_node.signature_key, "KeyPackageTBS", self.tbs(),
                             self.signature)

    def ref(self) -> bytes:
        """KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)."""
        return cs.ref_hash("MLS 1.0 KeyPackage Reference", self.encode())
