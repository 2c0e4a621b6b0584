"""A member's view of one MLS group (RFC 9420 sections 8, 12): joining from a Welcome
(12.4.3.1), caching proposals (12.1), and processing commits (12.4.2) into the next
epoch. Sans-I/O: messages in, state out; the caller stores the state.

This is the *receiving* side that the passive-client vectors exercise; making
proposals and commits is `committing`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import key_schedule as ks
from protocol.e2e.mls import protection, transcript, tree_math, treekem
from protocol.e2e.mls.framing import (
    AuthenticatedContent,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
    SenderType,
    WireFormat,
)
from protocol.e2e.mls.group_context import GroupContext
from protocol.e2e.mls.key_package import KeyPackage
from protocol.e2e.mls.leaf_node import (
    Credential,
    Extension,
    ExtensionType,
    LeafNodeSource,
)
from protocol.e2e.mls.proposals import (
    Add,
    Commit,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalType,
    Remove,
    Update,
    proposal_ref,
)
from protocol.e2e.mls.ratchet_tree import RatchetTree, read_tree
from protocol.e2e.mls.secret_tree import SecretTree
from protocol.e2e.mls.welcome import GroupInfo, GroupSecrets, Welcome
from protocol.wire import tls
from protocol.wire.errors import RemoteProtocolError

RESUMPTION_EPOCHS = 8
"""How many recent epochs' resumption PSKs a member keeps (8.6)."""


class GroupError(RemoteProtocolError):
    """A message that breaks the group's rules (RFC 9420 sections 12-13): wrong group
    or epoch, an unknown sender, a proposal set that does not validate, a confirmation
    tag or tree that does not match. The group state is unchanged."""


@dataclass(frozen=True)
class ExternalSender:
    """An entry of the external_senders extension (12.1.8.1)."""

    signature_key: bytes
    credential: Credential

    @classmethod
    def read(cls, r: tls.Reader) -> ExternalSender:
        return cls(r.opaque(), Credential.read(r))


def _extension(extensions: tuple[object, ...], kind: int) -> bytes | None:
    for e in extensions:
        if getattr(e, "extension_type", None) == kind:
            data = getattr(e, "extension_data")  # noqa: B009
            assert isinstance(data, bytes)
            return data
    return None


def _decode(data: bytes, read: object) -> object:
    r = tls.Reader(data)
    value = read(r)  # type: ignore[operator]
    r.finish()
    return value


@dataclass(frozen=True)
class Applied:
    """What a proposal list did: the new extensions, the leaves it added, its PSKs."""

    extensions: tuple[Extension, ...]
    added: list[int]
    psks: list[tuple[ks.PreSharedKeyID, bytes]]


def needs_path(proposals: list[tuple[Proposal, Sender]], external: bool) -> bool:
    """Section 12.4: a commit must carry an UpdatePath unless it only adds members or
    PSKs (or reinitialises); an empty or external commit always needs one."""
    kinds = [p.proposal_type for p, _ in proposals]
    return not kinds or external or any(
        k not in (ProposalType.ADD, ProposalType.PSK, ProposalType.REINIT) for k in kinds)


@dataclass
class Group:
    context: GroupContext
    tree: RatchetTree
    secrets: ks.EpochSecrets = field(repr=False)
    interim_transcript_hash: bytes
    own_leaf: int
    signature_private: bytes = field(repr=False)
    privates: dict[int, bytes] = field(repr=False)
    external_psks: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    resumption_psks: dict[int, bytes] = field(default_factory=dict, repr=False)
    proposals: dict[bytes, tuple[Proposal, Sender]] = field(default_factory=dict)
    removed: bool = False
    """This member was removed by the last commit: the group is over for it."""
    secret_tree: SecretTree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.secret_tree = SecretTree(self.secrets.encryption_secret, self.tree.n_leaves)
        self.resumption_psks[self.context.epoch] = self.secrets.resumption_psk
        for epoch in sorted(self.resumption_psks)[:-RESUMPTION_EPOCHS]:
            del self.resumption_psks[epoch]

    @property
    def epoch(self) -> int:
        return self.context.epoch

    @property
    def epoch_authenticator(self) -> bytes:
        return self.secrets.epoch_authenticator

    # -- joining (12.4.3.1)

    @classmethod
    def join(cls, welcome: Welcome, key_package: KeyPackage, init_private: bytes,
             encryption_private: bytes, signature_private: bytes,
             ratchet_tree: RatchetTree | None = None,
             external_psks: Mapping[bytes, bytes] | None = None) -> Group:
        if welcome.cipher_suite != cs.CIPHER_SUITE:
            raise GroupError(f"unsupported cipher suite {welcome.cipher_suite}")
        ref = key_package.ref()
        mine = [s for s in welcome.secrets if hmac.compare_digest(s.new_member, ref)]
        if len(mine) != 1:
            raise GroupError("the Welcome has no secrets for this KeyPackage")
        ct = mine[0].encrypted_group_secrets
        plain = cs.decrypt_with_label(init_private, "Welcome", welcome.encrypted_group_info,
                                      ct.kem_output, ct.ciphertext)
        secrets = _decode(plain, GroupSecrets.read)
        assert isinstance(secrets, GroupSecrets)
        psks = dict(external_psks or {})
        psk_pairs = []
        for psk_id in secrets.psks:
            if psk_id.psktype != ks.PSK_EXTERNAL or psk_id.psk_id not in psks:
                raise GroupError("the Welcome needs a PSK this member does not have")
            psk_pairs.append((psk_id, psks[psk_id.psk_id]))
        psk_secret = ks.psk_secret(psk_pairs)
        member = cs.extract(secrets.joiner_secret, psk_secret)
        key, nonce = ks.welcome_key_nonce(cs.derive_secret(member, "welcome"))
        group_info = _decode(cs.aead_open(key, nonce, b"", welcome.encrypted_group_info),
                             GroupInfo.read)
        assert isinstance(group_info, GroupInfo)
        context = group_info.group_context
        if context.cipher_suite != cs.CIPHER_SUITE:
            raise GroupError("the GroupInfo's cipher suite differs from the Welcome's")
        tree_data = _extension(group_info.extensions, ExtensionType.RATCHET_TREE)
        if tree_data is not None:
            tree = RatchetTree(_decode(tree_data, read_tree))  # type: ignore[arg-type]
        elif ratchet_tree is not None:
            tree = ratchet_tree.copy()
        else:
            raise GroupError("no ratchet tree: neither in the GroupInfo nor given")
        signer = tree.leaf(group_info.signer) if group_info.signer < tree.n_leaves else None
        if signer is None:
            raise GroupError("the GroupInfo's signer is not a member")
        group_info.verify(signer.signature_key)
        _check_tree(tree, context)
        own = next((i for i, leaf in tree.leaves() if leaf == key_package.leaf_node), None)
        if own is None:
            raise GroupError("the tree does not hold this member's leaf")
        privates = {tree_math.node_index(own): encryption_private}
        if secrets.path_secret is not None:
            privates.update(_path_privates(tree, group_info.signer, own,
                                           secrets.path_secret))
        epoch_secrets = ks.from_joiner(secrets.joiner_secret, psk_secret, context.encode())
        if not transcript.verify_confirmation_tag(epoch_secrets.confirmation_key,
                                                  context.confirmed_transcript_hash,
                                                  group_info.confirmation_tag):
            raise GroupError("the GroupInfo's confirmation tag does not match")
        return cls(context, tree, epoch_secrets,
                   transcript.interim_transcript_hash(context.confirmed_transcript_hash,
                                                      group_info.confirmation_tag),
                   own, signature_private, privates, psks)

    # -- receiving (6, 12.1, 12.4.2)

    def unprotect(self, message: MLSMessage) -> AuthenticatedContent:
        """Opens and authenticates a PublicMessage or PrivateMessage of this epoch."""
        if isinstance(message.message, PublicMessage):
            content = message.message.content
            self._check_epoch(content.group_id, content.epoch)
            authenticated = protection.unprotect_public(
                message.message, self.secrets.membership_key, self.context.encode())
        elif isinstance(message.message, PrivateMessage):
            m = message.message
            self._check_epoch(m.group_id, m.epoch)
            authenticated = protection.unprotect_private(m, self.secret_tree,
                                                         self.secrets.sender_data_secret)
        else:
            raise GroupError(f"wire format {message.wire_format} carries no group content")
        key = self._signature_key(authenticated)
        protection.verify_content(key, authenticated, self.context.encode())
        return authenticated

    def _check_epoch(self, group_id: bytes, epoch: int) -> None:
        if group_id != self.context.group_id:
            raise GroupError("a message for another group")
        if epoch != self.context.epoch:
            raise GroupError(f"a message for epoch {epoch}; the group is at {self.epoch}")

    def _signature_key(self, authenticated: AuthenticatedContent) -> bytes:
        content = authenticated.content
        sender = content.sender
        if sender.sender_type == SenderType.MEMBER:
            leaf = self.tree.leaf(sender.index) if sender.index < self.tree.n_leaves else None
            if leaf is None:
                raise GroupError(f"no member at leaf {sender.index}")
            return leaf.signature_key
        if authenticated.wire_format != WireFormat.PUBLIC_MESSAGE:
            raise GroupError("only members send PrivateMessages")
        if sender.sender_type == SenderType.EXTERNAL:
            data = _extension(self.context.extensions, ExtensionType.EXTERNAL_SENDERS)
            senders = [] if data is None else _decode(
                data, lambda r: r.vector(ExternalSender.read))
            assert isinstance(senders, list)
            if sender.index >= len(senders):
                raise GroupError(f"no external sender {sender.index}")
            key = senders[sender.index].signature_key
            assert isinstance(key, bytes)
            return key
        body = content.body
        if sender.sender_type == SenderType.NEW_MEMBER_PROPOSAL and isinstance(
                body, Proposal) and isinstance(body.body, Add):
            return body.body.key_package.leaf_node.signature_key
        if sender.sender_type == SenderType.NEW_MEMBER_COMMIT and isinstance(
                body, Commit) and body.path is not None:
            return body.path.leaf_node.signature_key
        raise GroupError("a sender this message type does not allow")

    def handle(self, message: MLSMessage) -> AuthenticatedContent:
        """A proposal is cached for the next commit; a commit moves the group to the
        next epoch. Returns the authenticated content (application data is the
        caller's). GroupError, DecryptionFailed or BadSignature leave the state as it
        was."""
        authenticated = self.unprotect(message)
        body = authenticated.content.body
        if isinstance(body, Proposal):
            ref = proposal_ref(authenticated.encode())
            self.proposals[ref] = (body, authenticated.content.sender)
        elif isinstance(body, Commit):
            self._commit(authenticated, body)
        return authenticated

    # -- commits (12.4.2)

    def _resolve(self, commit: Commit, committer: Sender) -> list[tuple[Proposal, Sender]]:
        out: list[tuple[Proposal, Sender]] = []
        for item in commit.proposals:
            if item.proposal is not None:
                out.append((item.proposal, committer))
            elif item.reference in self.proposals:
                out.append(self.proposals[item.reference])
            else:
                raise GroupError("a commit names a proposal this member has not seen")
        return out

    def _commit(self, authenticated: AuthenticatedContent, commit: Commit) -> None:
        content = authenticated.content
        sender = content.sender
        if authenticated.auth.confirmation_tag is None:
            raise GroupError("a commit without a confirmation tag")
        proposals = self._resolve(commit, sender)
        external = sender.sender_type == SenderType.NEW_MEMBER_COMMIT
        if needs_path(proposals, external) and commit.path is None:
            raise GroupError("this commit needs an UpdatePath")
        tree = self.tree.copy()
        applied = self.apply(tree, proposals, sender)
        extensions, added, psk_pairs = applied.extensions, applied.added, applied.psks

        committer = sender.index
        commit_secret = bytes(cs.NH)
        confirmed = transcript.confirmed_transcript_hash(self.interim_transcript_hash,
                                                         authenticated)
        privates = {x: k for x, k in self.privates.items()
                    if x < len(tree.nodes) and tree.nodes[x] is not None}
        if external:
            assert commit.path is not None
            committer = tree.add(commit.path.leaf_node)
        own_removed = self.own_leaf >= tree.n_leaves or tree.leaf(self.own_leaf) is None
        if own_removed:
            # this member is out: it cannot (and must not) derive the next epoch
            self.removed = True
            self.proposals = {}
            return
        if commit.path is not None:
            treekem.apply_path(tree, committer, commit.path, self.context.group_id)
        # the provisional context (12.4.1 step 7) keeps the old confirmed transcript
        # hash: the new one covers the commit, which carries the path it encrypts
        tree_hash = tree.tree_hash()
        provisional = GroupContext(self.context.group_id, self.context.epoch + 1,
                                   tree_hash, self.context.confirmed_transcript_hash,
                                   extensions)
        new_context = GroupContext(self.context.group_id, self.context.epoch + 1,
                                   tree_hash, confirmed, extensions)
        if commit.path is not None:
            if committer == self.own_leaf:
                raise GroupError("a commit from this member's own leaf arrived from outside")
            x = tree_math.node_index(committer)
            for p in tree_math.direct_path(x, tree.n_leaves):
                privates.pop(p, None)
            got = treekem.decapsulate(tree, committer, commit.path, self.own_leaf, privates,
                                      provisional.encode(), excluded=added)
            privates.update(got.node_privates)
            commit_secret = got.commit_secret
        init_secret = self.secrets.init_secret
        if external:
            init = next(p.body for p, _ in proposals if isinstance(p.body, ExternalInit))
            external_private = cs.derive_key_pair(self.secrets.external_secret)[0]
            init_secret = cs.external_init_receive(external_private, init.kem_output)
        secrets = ks.advance(init_secret, commit_secret, ks.psk_secret(psk_pairs),
                             new_context.encode())
        tag = authenticated.auth.confirmation_tag
        if not transcript.verify_confirmation_tag(secrets.confirmation_key, confirmed, tag):
            raise GroupError("the commit's confirmation tag does not match")
        # parent hashes: the merged path's are computed here from its keys, and the
        # leaf's was checked against them (treekem.apply_path); the rest is unchanged
        # all checks passed: the new epoch
        self.tree, self.context, self.secrets = tree, new_context, secrets
        self.privates = privates
        self.interim_transcript_hash = transcript.interim_transcript_hash(confirmed, tag)
        self.secret_tree = SecretTree(secrets.encryption_secret, tree.n_leaves)
        self.proposals = {}
        self.resumption_psks[new_context.epoch] = secrets.resumption_psk

    def apply(self, tree: RatchetTree, proposals: list[tuple[Proposal, Sender]],
              committer: Sender) -> Applied:
        """Validates a commit's proposal list (12.2) and applies it to `tree` in the
        order of 12.3: extensions, updates, removes, adds, then the PSKs it names."""
        kinds = [p.proposal_type for p, _ in proposals]
        external = committer.sender_type == SenderType.NEW_MEMBER_COMMIT
        if external and kinds.count(ProposalType.EXTERNAL_INIT) != 1:
            raise GroupError("an external commit needs exactly one ExternalInit")
        if not external and ProposalType.EXTERNAL_INIT in kinds:
            raise GroupError("ExternalInit only in an external commit")
        if ProposalType.REINIT in kinds:
            raise GroupError("ReInit is not supported by this client")
        if kinds.count(ProposalType.GROUP_CONTEXT_EXTENSIONS) > 1:
            raise GroupError("more than one GroupContextExtensions proposal")
        extensions = self.context.extensions
        for proposal, _ in proposals:
            if isinstance(proposal.body, GroupContextExtensions):
                extensions = proposal.body.extensions
        touched: set[int] = set()
        for proposal, by in proposals:
            if isinstance(proposal.body, Update):
                if by.sender_type != SenderType.MEMBER or by == committer:
                    raise GroupError("an Update must come from another member")
                if by.index in touched:
                    raise GroupError("two proposals change the same leaf")
                touched.add(by.index)
                leaf = proposal.body.leaf_node
                if leaf.leaf_node_source != LeafNodeSource.UPDATE:
                    raise GroupError("an Update's leaf must have source update")
                leaf.verify(self.context.group_id, by.index)
                tree.update(by.index, leaf)
        for proposal, _ in proposals:
            if isinstance(proposal.body, Remove):
                removed = proposal.body.removed
                if removed >= tree.n_leaves or tree.leaf(removed) is None:
                    raise GroupError(f"a Remove of the empty leaf {removed}")
                if removed in touched or (committer.sender_type == SenderType.MEMBER
                                          and removed == committer.index):
                    raise GroupError("a proposal set that removes a leaf twice or the "
                                     "committer")
                touched.add(removed)
                tree.remove(removed)
        added: list[int] = []
        keys = {leaf.signature_key for _, leaf in tree.leaves()}
        for proposal, _ in proposals:
            if isinstance(proposal.body, Add):
                key_package = proposal.body.key_package
                if key_package.cipher_suite != cs.CIPHER_SUITE or key_package.version != 1:
                    raise GroupError("an Add of a KeyPackage for another suite or version")
                key_package.verify()
                key_package.leaf_node.verify()
                if key_package.leaf_node.signature_key in keys:
                    raise GroupError("an Add of a signature key already in the group")
                keys.add(key_package.leaf_node.signature_key)
                added.append(tree.add(key_package.leaf_node))
        psks = [self._psk(p.body) for p, _ in proposals if isinstance(p.body, PreSharedKey)]
        return Applied(extensions, added, psks)

    def _psk(self, proposal: PreSharedKey) -> tuple[ks.PreSharedKeyID, bytes]:
        psk_id = proposal.psk
        if psk_id.psktype == ks.PSK_EXTERNAL:
            if psk_id.psk_id not in self.external_psks:
                raise GroupError("a PSK proposal names an unknown external PSK")
            return psk_id, self.external_psks[psk_id.psk_id]
        if psk_id.psk_group_id != self.context.group_id or \
                psk_id.psk_epoch not in self.resumption_psks:
            raise GroupError("a resumption PSK from an epoch this member does not hold")
        return psk_id, self.resumption_psks[psk_id.psk_epoch]


def _check_tree(tree: RatchetTree, context: GroupContext) -> None:
    """A received tree must hash to the context's tree hash, chain its parent hashes
    and carry valid leaf signatures (12.4.3.1)."""
    if tree.tree_hash() != context.tree_hash:
        raise GroupError("the ratchet tree does not match the group's tree hash")
    if not tree.parent_hashes_valid():
        raise GroupError("the ratchet tree's parent hashes do not chain")
    for index, leaf in tree.leaves():
        if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            leaf.verify()
        else:
            leaf.verify(context.group_id, index)


def _path_privates(tree: RatchetTree, signer: int, own: int, path_secret: bytes
                   ) -> dict[int, bytes]:
    """The private keys a new member derives from the Welcome's path secret: at the
    lowest node of the signer's filtered direct path above the new member, then up
    that path (12.4.3.1); each must match the tree's public key."""
    own_x = tree_math.node_index(own)
    filtered = tree.filtered_direct_path(signer)
    start = next((i for i, p in enumerate(filtered)
                  if own_x in _subtree(p)), None)
    if start is None:
        raise GroupError("the path secret's node is not above this member")
    out: dict[int, bytes] = {}
    secret = path_secret
    for i in range(start, len(filtered)):
        if i > start:
            secret = treekem.next_path_secret(secret)
        private, public = treekem.node_key_pair(secret)
        node = tree.nodes[filtered[i]]
        if node is None or node.encryption_key != public:
            raise GroupError("the Welcome's path secret does not match the tree")
        out[filtered[i]] = private
    return out


def _subtree(p: int) -> range:
    half = (1 << tree_math.level(p)) - 1
    return range(p - half, p + half + 1)

