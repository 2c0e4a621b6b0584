"""The sending side of a group (RFC 9420 sections 10, 11, 12.1, 12.4.1, 12.4.3):
KeyPackages, creating a group, proposals, commits with their Welcome, and
application messages. Sans-I/O: each function returns the messages to send and, for
a commit, the state to adopt once the delivery service accepted it (a commit that
loses the race for its epoch is dropped and the group processes the winner's).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import key_schedule as ks
from protocol.e2e.mls import protection, transcript, tree_math, treekem
from protocol.e2e.mls.framing import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    Sender,
    SenderType,
    WireFormat,
)
from protocol.e2e.mls.group import Group, needs_path
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.key_package import KeyPackage
from protocol.e2e.mls.leaf_node import (
    Capabilities,
    Credential,
    CredentialType,
    Extension,
    ExtensionType,
    LeafNode,
    LeafNodeSource,
    Lifetime,
)
from protocol.e2e.mls.proposals import (
    Add,
    Commit,
    GroupContextExtensions,
    HPKECiphertext,
    Proposal,
    ProposalBody,
    ProposalOrRef,
    Remove,
    proposal_ref,
)
from protocol.e2e.mls.ratchet_tree import RatchetTree
from protocol.e2e.mls.welcome import EncryptedGroupSecrets, GroupInfo, GroupSecrets, Welcome

FOREVER = Lifetime(0, 2**64 - 1)


@dataclass(frozen=True)
class Identity:
    """A member's signing key and basic credential (section 5.3)."""

    signature_private: bytes = field(repr=False)
    identity: bytes

    @property
    def signature_public(self) -> bytes:
        return cs.signature_public_key(self.signature_private)

    @property
    def credential(self) -> Credential:
        return Credential(CredentialType.BASIC, identity=self.identity)

    @classmethod
    def generate(cls, identity: bytes) -> Identity:
        return cls(os.urandom(32), identity)


@dataclass(frozen=True)
class KeyPackageSecrets:
    """What only the KeyPackage's owner keeps: its init and leaf private keys."""

    key_package: KeyPackage
    init_private: bytes = field(repr=False)
    encryption_private: bytes = field(repr=False)


def new_key_package(identity: Identity, lifetime: Lifetime = FOREVER) -> KeyPackageSecrets:
    """A fresh KeyPackage (section 10): distinct init and leaf keys, signed."""
    init_private, init_public = cs.derive_key_pair(os.urandom(32))
    enc_private, enc_public = cs.derive_key_pair(os.urandom(32))
    leaf = LeafNode(enc_public, identity.signature_public, identity.credential,
                    Capabilities(), LeafNodeSource.KEY_PACKAGE, lifetime).sign(
                        identity.signature_private)
    key_package = KeyPackage(1, cs.CIPHER_SUITE, init_public, leaf).sign(
        identity.signature_private)
    return KeyPackageSecrets(key_package, init_private, enc_private)


def create_group(identity: Identity, group_id: bytes | None = None,
                 extensions: tuple[Extension, ...] = ()) -> Group:
    """A one-member group at epoch 0 (section 11): a random epoch secret, an empty
    confirmed transcript hash."""
    secrets = new_key_package(identity)
    tree = RatchetTree([secrets.key_package.leaf_node])
    context = GroupContext(group_id or os.urandom(16), 0, tree.tree_hash(), b"", extensions)
    epoch = ks.from_epoch_secret(os.urandom(cs.NH))
    tag = transcript.confirmation_tag(epoch.confirmation_key, b"")
    return Group(context, tree, epoch, transcript.interim_transcript_hash(b"", tag), 0,
                 identity.signature_private, {0: secrets.encryption_private})


def _frame(group: Group, body: ProposalBody | Commit | bytes, private: bool,
           authenticated_data: bytes = b"") -> tuple[FramedContent, int, bytes]:
    content = FramedContent(group.context.group_id, group.epoch,
                            Sender(SenderType.MEMBER, group.own_leaf), authenticated_data,
                            Proposal(body) if not isinstance(body, Commit | bytes) else body)
    wire_format = WireFormat.PRIVATE_MESSAGE if private else WireFormat.PUBLIC_MESSAGE
    signature = protection.sign_content(group.signature_private, wire_format, content,
                                        group.context.encode())
    return content, wire_format, signature


def _protect(group: Group, content: FramedContent, auth: FramedContentAuthData,
             wire_format: int) -> MLSMessage:
    if wire_format == WireFormat.PRIVATE_MESSAGE:
        return MLSMessage(wire_format, protection.protect_private(
            content, auth, group.secret_tree, group.secrets.sender_data_secret))
    return MLSMessage(wire_format, protection.protect_public(
        content, auth, group.secrets.membership_key, group.context.encode()))


def encrypt_application(group: Group, data: bytes, authenticated_data: bytes = b""
                        ) -> MLSMessage:
    """An application message: always a PrivateMessage (section 6.3)."""
    content, wire_format, signature = _frame(group, data, True, authenticated_data)
    return _protect(group, content, FramedContentAuthData(signature), wire_format)


def propose(group: Group, body: ProposalBody, private: bool = True) -> MLSMessage:
    """A proposal by reference (12.1), cached here too so this member's own commit can
    include it."""
    content, wire_format, signature = _frame(group, body, private)
    auth = FramedContentAuthData(signature)
    group.proposals[proposal_ref(AuthenticatedContent(wire_format, content, auth).encode())
                    ] = (Proposal(body), content.sender)
    return _protect(group, content, auth, wire_format)


def leave(group: Group) -> MLSMessage:
    """A member cannot commit its own removal (12.2): it proposes it, and another
    member's next commit carries it out."""
    return propose(group, Remove(group.own_leaf))


@dataclass
class PendingCommit:
    message: MLSMessage
    welcome: MLSMessage | None
    group: Group
    """The state after the commit: adopt it once the delivery service accepted the
    commit for its epoch; drop it if another commit won (12.4)."""
    added: list[int]


def commit(group: Group, adds: Sequence[KeyPackage] = (), removes: Sequence[int] = (),
           extensions: tuple[Extension, ...] | None = None, path: bool = True,
           private: bool = True) -> PendingCommit:
    """A commit of every cached proposal (by reference) plus `adds`, `removes` and a
    GroupContextExtensions (by value), with a fresh UpdatePath unless `path` is False
    and none is needed. A commit with nothing else is a self-update: post-compromise
    security for this member's keys."""
    own = Sender(SenderType.MEMBER, group.own_leaf)
    by_value: list[ProposalBody] = [Add(kp) for kp in adds]
    by_value += [Remove(i) for i in removes]
    if extensions is not None:
        by_value.append(GroupContextExtensions(extensions))
    refs = [r for r, (p, by) in group.proposals.items()
            if not (isinstance(p.body, Remove) and p.body.removed == group.own_leaf)]
    resolved = [group.proposals[r] for r in refs] + [(Proposal(b), own) for b in by_value]
    tree = group.tree.copy()
    applied = group.apply(tree, resolved, own)
    with_path = path or needs_path(resolved, False)
    own_leaf = tree.leaf(group.own_leaf)
    assert own_leaf is not None
    privates = {x: k for x, k in group.privates.items()
                if x < len(tree.nodes) and tree.nodes[x] is not None}
    commit_secret = bytes(cs.NH)
    encapsulated = None
    if with_path:
        old_confirmed = group.context.confirmed_transcript_hash
        encapsulated = treekem.encapsulate(
            tree, group.own_leaf, replace(own_leaf, lifetime=None), group.signature_private,
            group.context.group_id,
            lambda tree_hash: GroupContext(group.context.group_id, group.epoch + 1, tree_hash,
                                           old_confirmed, applied.extensions).encode(),
            excluded=applied.added)
        commit_secret = encapsulated.commit_secret
        for p in tree_math.direct_path(tree_math.node_index(group.own_leaf), tree.n_leaves):
            privates.pop(p, None)
        privates.update(encapsulated.node_privates)
        privates[tree_math.node_index(group.own_leaf)] = encapsulated.leaf_private
    body = Commit(tuple(ProposalOrRef(reference=r) for r in refs)
                  + tuple(ProposalOrRef(proposal=Proposal(b)) for b in by_value),
                  None if encapsulated is None else encapsulated.path)
    content, wire_format, signature = _frame(group, body, private)
    confirmed = transcript.confirmed_transcript_hash(
        group.interim_transcript_hash,
        AuthenticatedContent(wire_format, content, FramedContentAuthData(signature)))
    new_context = GroupContext(group.context.group_id, group.epoch + 1, tree.tree_hash(),
                               confirmed, applied.extensions)
    secrets = ks.advance(group.secrets.init_secret, commit_secret,
                         ks.psk_secret(applied.psks), new_context.encode())
    tag = transcript.confirmation_tag(secrets.confirmation_key, confirmed)
    message = _protect(group, content, FramedContentAuthData(signature, tag), wire_format)
    after = Group(new_context, tree, secrets, transcript.interim_transcript_hash(confirmed, tag),
                  group.own_leaf, group.signature_private, privates,
                  dict(group.external_psks), copy.copy(group.resumption_psks))
    welcome = None
    if applied.added:
        welcome = _welcome(after, tag, [p.body.key_package for p, _ in resolved
                                        if isinstance(p.body, Add)],
                           applied.added, encapsulated, [i for i, _ in applied.psks])
    return PendingCommit(message, welcome, after, applied.added)


def _welcome(after: Group, tag: bytes, key_packages: list[KeyPackage], leaves: list[int],
             encapsulated: treekem.Encapsulated | None,
             psk_ids: list[ks.PreSharedKeyID]) -> MLSMessage:
    """Section 12.4.3.1: the GroupInfo (with the ratchet tree) encrypted under the
    welcome secret, and the joiner secret and each joiner's path secret encrypted to
    its KeyPackage's init key."""
    info = GroupInfo(after.context, (Extension(ExtensionType.RATCHET_TREE, after.tree.encode()),),
                     tag, after.own_leaf)
    info = replace(info, signature=cs.sign_with_label(after.signature_private,
                                                       "GroupInfoTBS", info.tbs()))
    key, nonce = ks.welcome_key_nonce(after.secrets.welcome_secret)
    encrypted_info = cs.aead_seal(key, nonce, b"", info.encode())
    entries = []
    for key_package, leaf in zip(key_packages, leaves, strict=True):
        path_secret = None
        if encapsulated is not None:
            x = tree_math.node_index(leaf)
            path_secret = next(s for p, s in encapsulated.path_secrets.items()
                               if x in _subtree(p))
        secrets = GroupSecrets(after.secrets.joiner_secret, path_secret, tuple(psk_ids))
        kem_output, ciphertext = cs.encrypt_with_label(key_package.init_key, "Welcome",
                                                       encrypted_info, secrets.encode())
        entries.append(EncryptedGroupSecrets(key_package.ref(),
                                             HPKECiphertext(kem_output, ciphertext)))
    return MLSMessage(WireFormat.WELCOME, Welcome(cs.CIPHER_SUITE, tuple(entries),
                                                 encrypted_info))


def _subtree(p: int) -> range:
    half = (1 << tree_math.level(p)) - 1
    return range(p - half, p + half + 1)
