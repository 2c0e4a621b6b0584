"""A member's group state as bytes, for the client's encrypted store (PROTOCOL.md 21.6).

    state = version u8 (1) || GroupContext || ratchet tree (12.4.3.3 encoding)
            || the epoch secrets (8) || interim transcript hash || own leaf u32
            || signature key || node private keys || PSKs || cached proposals
            || removed u8 || the secret tree's remaining secrets and ratchets

Everything is in the TLS presentation language (protocol/wire/tls.py). Decoding is
strict; a state that does not decode is a damaged store, not a peer's doing.
"""

from __future__ import annotations

from protocol.e2e.mls import key_schedule as ks
from protocol.e2e.mls.framing import Sender
from protocol.e2e.mls.group import Group
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.proposals import Proposal
from protocol.e2e.mls.ratchet_tree import RatchetTree, encode_tree, read_tree
from protocol.e2e.mls.secret_tree import HashRatchet, KeyNonce, SecretTree
from protocol.wire import tls
from protocol.wire.errors import DecodeError

STATE_VERSION = 1
_SECRETS = ("joiner_secret", "welcome_secret", "epoch_secret", "sender_data_secret",
            "encryption_secret", "exporter_secret", "external_secret", "confirmation_key",
            "membership_key", "resumption_psk", "epoch_authenticator", "init_secret",
            "external_pub")
_KINDS = ("handshake", "application")


def _pairs(items: dict[int, bytes], width: bytes = b"u32") -> bytes:
    put = tls.u64 if width == b"u64" else tls.u32
    return tls.vector(put(k) + tls.opaque(v) for k, v in sorted(items.items()))


def serialize(group: Group) -> bytes:
    out = [tls.u8(STATE_VERSION), group.context.encode(), tls.opaque(encode_tree(group.tree.nodes))]
    out += [tls.opaque(getattr(group.secrets, name)) for name in _SECRETS]
    out += [tls.opaque(group.interim_transcript_hash), tls.u32(group.own_leaf),
            tls.opaque(group.signature_private), _pairs(group.privates),
            tls.vector(tls.opaque(k) + tls.opaque(v)
                       for k, v in sorted(group.external_psks.items())),
            _pairs(group.resumption_psks, b"u64"),
            tls.vector(tls.opaque(ref) + p.encode() + s.encode()
                       for ref, (p, s) in group.proposals.items()),
            tls.u8(group.removed)]
    tree = group.secret_tree
    out.append(_pairs(tree.node_secrets))
    out.append(tls.vector(
        tls.u32(leaf) + tls.u8(_KINDS.index(kind)) + tls.opaque(r.secret)
        + tls.u32(r.generation)
        + tls.vector(tls.u32(g) + tls.opaque(k.key) + tls.opaque(k.nonce)
                     for g, k in sorted(r.skipped.items()))
        for (leaf, kind), r in sorted(tree.hash_ratchets.items())))
    return b"".join(out)


def _read_pairs(r: tls.Reader, wide: bool = False) -> dict[int, bytes]:
    def item(rr: tls.Reader) -> tuple[int, bytes]:
        return (rr.u64() if wide else rr.u32()), rr.opaque()
    return dict(r.vector(item))


def deserialize(data: bytes) -> Group:
    r = tls.Reader(data)
    if r.u8() != STATE_VERSION:
        raise DecodeError("unknown group state version")
    context = GroupContext.read(r)
    inner = tls.Reader(r.opaque())
    tree = RatchetTree(read_tree(inner))
    inner.finish()
    secrets = ks.EpochSecrets(**{name: r.opaque() for name in _SECRETS})
    interim, own_leaf, signature_private = r.opaque(), r.u32(), r.opaque()
    privates = _read_pairs(r)
    external = dict(r.vector(lambda rr: (rr.opaque(), rr.opaque())))
    resumption = _read_pairs(r, wide=True)
    proposals = dict(r.vector(lambda rr: (rr.opaque(), (Proposal.read(rr), Sender.read(rr)))))
    removed = bool(r.u8())
    group = Group(context, tree, secrets, interim, own_leaf, signature_private, privates,
                  external, resumption, proposals, removed)
    secret_tree = SecretTree(secrets.encryption_secret, tree.n_leaves)
    secret_tree.node_secrets = _read_pairs(r)

    def ratchet(rr: tls.Reader) -> tuple[tuple[int, str], HashRatchet]:
        leaf, kind = rr.u32(), rr.u8()
        if kind >= len(_KINDS):
            raise DecodeError("unknown ratchet kind")
        secret, generation = rr.opaque(), rr.u32()
        skipped = dict(rr.vector(lambda s: (g := s.u32(), KeyNonce(g, s.opaque(),
                                                                   s.opaque()))))
        return (leaf, _KINDS[kind]), HashRatchet(secret, generation, skipped)

    secret_tree.hash_ratchets = dict(r.vector(ratchet))
    r.finish()
    group.secret_tree = secret_tree
    return group
