"""The key schedule (RFC 9420 section 8): from the previous epoch's init secret, the
commit secret and the PSK secret to this epoch's secrets, and the PSK secret itself
(section 8.4), the exporter (8.5) and the group context that binds them (8.1, in `group_context`).

    init_secret[n-1] --Extract(ikm = commit_secret)--> ExpandWithLabel "joiner" (GroupContext)
        = joiner_secret --Extract(ikm = psk_secret)--> DeriveSecret "welcome" = welcome_secret
                                                  \\-> ExpandWithLabel "epoch" (GroupContext)
        = epoch_secret --DeriveSecret--> sender data, encryption, exporter, external,
                                         confirm, membership, resumption, authentication,
                                         init (the next epoch's init_secret)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.e2e.mls import cipher_suite as cs
from protocol.wire import tls


@dataclass(frozen=True)
class EpochSecrets:
    """Everything section 8 derives for one epoch (the table in section 8)."""

    joiner_secret: bytes
    welcome_secret: bytes
    epoch_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    epoch_authenticator: bytes
    init_secret: bytes
    external_pub: bytes = field(repr=False, default=b"")

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (section 8.5)."""
        return cs.expand_with_label(cs.derive_secret(self.exporter_secret, label),
                                    "exported", cs.hash_(context), length)


def joiner_secret(init_secret: bytes, commit_secret: bytes, group_context: bytes) -> bytes:
    return cs.expand_with_label(cs.extract(init_secret, commit_secret), "joiner",
                                group_context, cs.NH)


def from_joiner(joiner: bytes, psk_secret: bytes, group_context: bytes) -> EpochSecrets:
    """The epoch's secrets from the joiner secret (what a Welcome gives a new member,
    section 12.4.3.1) and the PSK secret (zeros when there are no PSKs)."""
    member = cs.extract(joiner, psk_secret or bytes(cs.NH))
    epoch = cs.expand_with_label(member, "epoch", group_context, cs.NH)
    return from_epoch_secret(epoch, joiner, cs.derive_secret(member, "welcome"))


def from_epoch_secret(epoch: bytes, joiner: bytes = b"", welcome: bytes = b""
                      ) -> EpochSecrets:
    """The secrets derived from an epoch secret: a new group's first epoch starts
    from a random one (section 11), with no joiner or welcome secret."""
    external = cs.derive_secret(epoch, "external")
    return EpochSecrets(
        joiner_secret=joiner,
        welcome_secret=welcome,
        epoch_secret=epoch,
        sender_data_secret=cs.derive_secret(epoch, "sender data"),
        encryption_secret=cs.derive_secret(epoch, "encryption"),
        exporter_secret=cs.derive_secret(epoch, "exporter"),
        external_secret=external,
        confirmation_key=cs.derive_secret(epoch, "confirm"),
        membership_key=cs.derive_secret(epoch, "membership"),
        resumption_psk=cs.derive_secret(epoch, "resumption"),
        epoch_authenticator=cs.derive_secret(epoch, "authentication"),
        init_secret=cs.derive_secret(epoch, "init"),
        external_pub=cs.derive_key_pair(external)[1],
    )


def advance(init_secret: bytes, commit_secret: bytes, psk_secret: bytes,
            group_context: bytes) -> EpochSecrets:
    """A member's step from one epoch to the next (section 8)."""
    return from_joiner(joiner_secret(init_secret, commit_secret, group_context),
                       psk_secret, group_context)


def welcome_key_nonce(welcome_secret: bytes) -> tuple[bytes, bytes]:
    """The key and nonce that encrypt a Welcome's GroupInfo (section 12.4.3.1)."""
    return (cs.expand_with_label(welcome_secret, "key", b"", cs.NK),
            cs.expand_with_label(welcome_secret, "nonce", b"", cs.NN))


# -- pre-shared keys (section 8.4)

PSK_EXTERNAL = 1
PSK_RESUMPTION = 2


@dataclass(frozen=True)
class PreSharedKeyID:
    """Section 8.4: an external PSK names `psk_id`; a resumption PSK names a usage, a
    group and an epoch."""

    psktype: int
    psk_nonce: bytes
    psk_id: bytes = b""
    usage: int = 0
    psk_group_id: bytes = b""
    psk_epoch: int = 0

    def encode(self) -> bytes:
        if self.psktype == PSK_EXTERNAL:
            body = tls.opaque(self.psk_id)
        else:
            body = tls.u8(self.usage) + tls.opaque(self.psk_group_id) + tls.u64(self.psk_epoch)
        return tls.u8(self.psktype) + body + tls.opaque(self.psk_nonce)


def psk_secret(psks: list[tuple[PreSharedKeyID, bytes]]) -> bytes:
    """The PSK secret of section 8.4 over (id, psk) pairs in the order the proposals
    name them; Nh zeros for none."""
    secret = bytes(cs.NH)
    count = len(psks)
    for index, (psk_id, psk) in enumerate(psks):
        extracted = cs.extract(b"", psk)
        label = psk_id.encode() + tls.u16(index) + tls.u16(count)
        psk_input = cs.expand_with_label(extracted, "derived psk", label, cs.NH)
        secret = cs.extract(psk_input, secret)
    return secret
