"""The key directory: entries, the log of updates, and lookup proofs
(docs/PROTOCOL.md sections 19.6-19.9).

Why this shape. Every change to a username's identity key is one *update*, appended
as one leaf to an RFC 9162 log (section 19.1) whose heads are signed checkpoints
(19.2). A leaf says, without naming anyone,

    label (32) || commitment (32) || prefix_root (32)

"the entry for this label now commits to this value, and the prefix tree (19.5) of
every label's latest commitment has this root afterwards". So:

- a lookup is O(log n): the checkpoint's last leaf gives the current prefix root, the
  prefix tree proves the label's latest commitment (or that there is none), and the
  update that set it is proven to be in the log too;
- an owner watches its own label by reading the leaves appended since its last check:
  every binding a client can ever be shown was logged as an update under that label
  (lookups check the update's inclusion), so a key the owner did not make cannot hide;
- an auditor replays the leaves and checks that every prefix root follows from the
  one before (`audit_entries`), which is what makes the prefix roots trustworthy.

Labels are VRF outputs (19.3), values sit behind commitments (19.4): the published
log shows how many updates there were and when, not who or which key.

`Directory` is the relay's side (it holds the VRF secret key and the log's signing
key, and only ever public data of users); `verify_answer` is the client's.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from protocol.wire import codec
from protocol.wire.errors import DecodeError, LocalProtocolError
from protocol.wire.kt import vrf
from protocol.wire.kt.checkpoint import Checkpoint, sign_checkpoint
from protocol.wire.kt.commitment import OPENING_LEN, commit, verify_commitment
from protocol.wire.kt.errors import ProofError
from protocol.wire.kt.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_inclusion,
)
from protocol.wire.kt.note import Signer
from protocol.wire.kt.prefix_tree import EMPTY, LookupProof, PrefixTree, verify_lookup
from protocol.wire.publickeys import (
    ENCODED_ED25519_LEN,
    TYPE_ED25519,
    decode_key,
    encode_key,
    verify_signature,
)
from protocol.wire.usernames import check_username

LABEL_PURPOSE = b"blindrelay-kt-label-v1\x00"
CHANGE_PURPOSE = b"blindrelay-kt-change-v1\x00"
ENTRY_LEN = 96
LABEL_LEN = 32
MAX_RANGE = 2000
"""Most leaves one KT_ENTRIES answer carries (96 bytes each, within max_frame)."""


class EntryKind(IntEnum):
    """What an update did to a username (section 19.6)."""

    REGISTER = 1
    """The first binding of a name: version 0, unsigned (the relay checked the
    registration's signature, 16.4)."""
    CHANGE = 2
    """A new identity key, signed by the previous one over `change_statement`."""
    RESET = 3
    """The operator re-bound the name without the previous key's signature: the account
    was deleted and registered again. Visible as such to everyone who looks it up."""
    DELETE = 4
    """The account was deleted: the name is bound to no key."""


def vrf_input(username: str) -> bytes:
    """alpha for the VRF: "blindrelay-kt-label-v1" 0x00 || var8(username). A name that
    breaks section 12 is InvalidUsername (it may come from an evidence file)."""
    return LABEL_PURPOSE + codec.var8(check_username(username).encode("ascii"))


def change_statement(username: str, version: int, identity: bytes) -> bytes:
    """What the previous identity key signs for a CHANGE: "blindrelay-kt-change-v1"
    0x00 || var8(username) || u32 version || Encode(new IK)."""
    return (CHANGE_PURPOSE + codec.var8(username.encode("ascii")) + codec.u32(version)
            + encode_key(TYPE_ED25519, identity))


@dataclass(frozen=True, slots=True)
class Binding:
    """The value behind an entry's commitment:
    kind u8 || version u32 || var8(Encode(IK), or empty for DELETE) || var8(signature)."""

    kind: EntryKind
    version: int
    identity: bytes | None
    signature: bytes = b""

    def encode(self) -> bytes:
        key = b"" if self.identity is None else encode_key(TYPE_ED25519, self.identity)
        return (codec.u8(self.kind) + codec.u32(self.version) + codec.var8(key)
                + codec.var8(self.signature))

    @classmethod
    def decode(cls, data: bytes) -> Binding:
        r = codec.Reader(data)
        try:
            kind = EntryKind(r.u8())
        except ValueError:
            raise DecodeError("unknown directory entry kind") from None
        version = r.u32()
        key = r.var8()
        signature = r.var8()
        r.finish()
        if kind is EntryKind.DELETE:
            if key:
                raise DecodeError("a DELETE entry binds no key")
            identity = None
        else:
            if len(key) != ENCODED_ED25519_LEN:
                raise DecodeError("an entry's identity key is an encoded Ed25519 key")
            identity = decode_key(TYPE_ED25519, key)
        if len(signature) != (64 if kind is EntryKind.CHANGE else 0):
            raise DecodeError("only a CHANGE carries a signature (64 bytes)")
        if (version == 0) != (kind is EntryKind.REGISTER):
            raise DecodeError("version 0 is a REGISTER and a REGISTER is version 0")
        binding = cls(kind, version, identity, signature)
        if binding.encode() != data:
            raise DecodeError("a directory entry has one encoding")
        return binding


def check_succession(username: str, previous: Binding | None, new: Binding) -> None:
    """The rules an update must follow (section 19.6); ProofError if it does not.

    Versions count up by one; REGISTER only starts a name; CHANGE is signed by the
    previous key; DELETE and CHANGE need a bound key before them; RESET follows
    anything (that is what makes it an operator's act, and why it is its own kind)."""
    if previous is None:
        if new.kind is not EntryKind.REGISTER:
            raise ProofError("a name's first entry is a REGISTER")
        return
    if new.version != previous.version + 1:
        raise ProofError("an entry's version is the previous one's plus one")
    if new.kind is EntryKind.REGISTER:
        raise ProofError("REGISTER only starts a name")
    if new.kind in (EntryKind.CHANGE, EntryKind.DELETE) and previous.identity is None:
        raise ProofError(f"a {new.kind.name} needs a bound key before it")
    if new.kind is EntryKind.CHANGE:
        assert previous.identity is not None and new.identity is not None
        try:
            verify_signature(previous.identity, new.signature,
                             change_statement(username, new.version, new.identity))
        except Exception:
            raise ProofError("a CHANGE is not signed by the previous identity key") from None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One leaf of the log: label (32) || commitment (32) || prefix_root (32)."""

    label: bytes
    commitment: bytes
    prefix_root: bytes

    def encode(self) -> bytes:
        return self.label + self.commitment + self.prefix_root

    @classmethod
    def decode(cls, data: bytes) -> LogEntry:
        if len(data) != ENTRY_LEN:
            raise DecodeError("a directory log entry is 96 bytes")
        return cls(data[:32], data[32:64], data[64:])

    def leaf(self) -> bytes:
        return leaf_hash(self.encode())


# ---- compact ranges: the frontier of a log size ------------------------------------


def frontier_sizes(size: int) -> list[int]:
    """The sizes of the complete subtrees that make up [0, size), largest first."""
    return [1 << k for k in range(size.bit_length() - 1, -1, -1) if size >> k & 1]


def fold_frontier(frontier: Sequence[bytes]) -> bytes:
    """The root a frontier stands for (RFC 9162's MTH, folded right to left)."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for h in reversed(frontier[:-1]):
        root = node_hash(h, root)
    return root


class RangeVerifier:
    """Checks a run of leaves against two signed heads without the rest of the log.

    Starts from the frontier of size m (checked against the root of m), takes leaves
    in order, and at the end the root of m + count must be the newer head's."""

    def __init__(self, size: int, frontier: Sequence[bytes], root: bytes) -> None:
        if len(frontier) != len(frontier_sizes(size)) or any(
                len(h) != HASH_SIZE for h in frontier):
            raise ProofError("the frontier does not fit the log size")
        if not hmac.compare_digest(fold_frontier(frontier), root):
            raise ProofError("the frontier does not lead to the signed root")
        self.size = size
        self._stack: list[tuple[int, bytes]] = list(zip(frontier_sizes(size), frontier,
                                                        strict=True))

    def add(self, leaf: bytes) -> None:
        item = (1, leaf)
        while self._stack and self._stack[-1][0] == item[0]:
            width, left = self._stack.pop()
            item = (width * 2, node_hash(left, item[1]))
        self._stack.append(item)
        self.size += 1

    def frontier(self) -> list[bytes]:
        return [h for _, h in self._stack]

    def finish(self, size: int, root: bytes) -> None:
        if self.size != size:
            raise ProofError(f"the leaves end at {self.size}, not at the head's {size}")
        if not hmac.compare_digest(fold_frontier(self.frontier()), root):
            raise ProofError("the leaves do not lead to the signed root: the log differs")


def audit_entries(entries: Iterable[LogEntry], tree: PrefixTree | None = None) -> PrefixTree:
    """Replays updates into a prefix tree and checks each leaf's prefix_root is the
    root that results (what a third-party auditor does, section 19.9)."""
    tree = tree if tree is not None else PrefixTree()
    for i, entry in enumerate(entries):
        tree.insert(entry.label, entry.commitment)
        if not hmac.compare_digest(tree.root(), entry.prefix_root):
            raise ProofError(f"entry {i}'s prefix root does not follow from the updates")
    return tree


# ---- the answer to a lookup ---------------------------------------------------------


def _proof(hashes: Sequence[bytes]) -> bytes:
    return codec.u8(len(hashes)) + b"".join(hashes)


def _read_proof(r: codec.Reader) -> list[bytes]:
    count = r.u8()
    if count > 64:
        raise DecodeError("an inclusion proof has at most 64 hashes")
    return [r.take(HASH_SIZE) for _ in range(count)]


@dataclass(frozen=True, slots=True)
class Found:
    """The latest update of a label, as a lookup reveals it."""

    opening: bytes
    value: bytes
    index: int
    prefix_root: bytes
    """The prefix_root field of the update's own leaf (to hash the leaf)."""
    inclusion: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """Proof of a name's latest binding at one log size (section 19.7):

        vrf proof (80)
        [size > 0] head entry (96) || u8 n || n x 32   the log's last leaf, included
        var16 prefix tree proof (19.5) for the label against head.prefix_root
        u8 found (0 or 1)
        [found] opening (16) || var16 value || u64 index || prefix_root (32)
                || u8 n || n x 32                       the update that set it, included
    """

    vrf_proof: bytes
    head: LogEntry | None
    head_inclusion: tuple[bytes, ...]
    prefix_proof: bytes
    found: Found | None

    def encode(self) -> bytes:
        out = self.vrf_proof
        if self.head is not None:
            out += self.head.encode() + _proof(self.head_inclusion)
        out += codec.var16(self.prefix_proof)
        if self.found is None:
            return out + codec.u8(0)
        f = self.found
        return (out + codec.u8(1) + f.opening + codec.var16(f.value) + codec.u64(f.index)
                + f.prefix_root + _proof(f.inclusion))

    @classmethod
    def decode(cls, data: bytes, size: int) -> LookupAnswer:
        """`size` is the checkpoint's: at 0 there is no head."""
        r = codec.Reader(data)
        vrf_proof = r.take(vrf.PROOF_LEN)
        head: LogEntry | None = None
        head_inclusion: tuple[bytes, ...] = ()
        if size > 0:
            head = LogEntry.decode(r.take(ENTRY_LEN))
            head_inclusion = tuple(_read_proof(r))
        prefix_proof = r.var16()
        flag = r.u8()
        found = None
        if flag == 1:
            opening = r.take(OPENING_LEN)
            value = r.var16()
            index = r.u64()
            root = r.take(HASH_SIZE)
            found = Found(opening, value, index, root, tuple(_read_proof(r)))
        elif flag != 0:
            raise DecodeError("the found flag is 0 or 1")
        r.finish()
        return cls(vrf_proof, head, head_inclusion, prefix_proof, found)


@dataclass(frozen=True, slots=True)
class Verified:
    """What a checked lookup proves: the name's label and its latest binding (None:
    the name was never registered) at one checkpoint."""

    username: str
    label: bytes
    binding: Binding | None
    index: int | None
    checkpoint: Checkpoint

    @property
    def identity(self) -> bytes | None:
        """The key the name is bound to now (None: unregistered or deleted)."""
        return None if self.binding is None else self.binding.identity


def label_of(vrf_public_key: bytes, vrf_proof: bytes, username: str) -> bytes:
    """The name's label, from a VRF proof that must verify (VrfError otherwise)."""
    return vrf.verify(vrf_public_key, vrf_proof, vrf_input(username))[:LABEL_LEN]


def verify_answer(answer: LookupAnswer | bytes, username: str, vrf_public_key: bytes,
                  checkpoint: Checkpoint) -> Verified:
    """Checks a lookup answer against a checkpoint the caller has already verified
    (signature, and consistency with what it saw before). Raises ProofError (or
    VrfError, MalformedProof, DecodeError) unless every step of section 19.7 holds."""
    size, root = checkpoint.size, checkpoint.root_hash
    if isinstance(answer, bytes):
        answer = LookupAnswer.decode(answer, size)
    label = label_of(vrf_public_key, answer.vrf_proof, username)
    if size == 0:
        if answer.head is not None:
            raise ProofError("an empty log has no last entry")
        prefix_root = EMPTY
    else:
        if answer.head is None:
            raise ProofError("the answer lacks the log's last entry")
        verify_inclusion(answer.head.leaf(), size - 1, size, answer.head_inclusion, root)
        prefix_root = answer.head.prefix_root
    commitment = verify_lookup(prefix_root, label, LookupProof.decode(answer.prefix_proof))
    if commitment is None:
        if answer.found is not None:
            raise ProofError("the tree has no entry for the name, yet one was revealed")
        return Verified(username, label, None, None, checkpoint)
    found = answer.found
    if found is None:
        raise ProofError("the tree has an entry for the name, but it was not revealed")
    verify_commitment(commitment, found.opening, label, found.value)
    try:
        binding = Binding.decode(found.value)
    except DecodeError as exc:
        raise ProofError(f"the revealed entry is malformed: {exc}") from None
    entry = LogEntry(label, commitment, found.prefix_root)
    verify_inclusion(entry.leaf(), found.index, size, found.inclusion, root)
    return Verified(username, label, binding, found.index, checkpoint)


# ---- the relay's side -----------------------------------------------------------------


@dataclass
class _Update:
    username: str
    binding: Binding
    opening: bytes


@dataclass
class Directory:
    """The relay's directory: its log, its prefix tree, and what it may reveal.

    Holds the log's signing key and the VRF secret key (the relay's own secrets) and,
    of users, only public data: names, identity keys, and the openings it reveals to
    anyone who looks a name up. Storage is the caller's business: `replay` rebuilds
    from stored updates, `append` returns what to store."""

    signer: Signer
    vrf_secret: bytes
    log: MerkleTree = field(default_factory=MerkleTree)
    tree: PrefixTree = field(default_factory=PrefixTree)
    entries: list[LogEntry] = field(default_factory=list)
    updates: list[_Update] = field(default_factory=list)
    latest: dict[bytes, int] = field(default_factory=dict)
    by_label: dict[bytes, list[int]] = field(default_factory=dict)
    _labels: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    _known: dict[str, bytes] = field(default_factory=dict)
    _signed: tuple[int, bytes] | None = None

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def vrf_public_key(self) -> bytes:
        return vrf.public_key(self.vrf_secret)

    @property
    def size(self) -> int:
        return self.log.size

    def label(self, username: str) -> tuple[bytes, bytes]:
        """(label, VRF proof) for a name; proofs are deterministic, so cached."""
        cached = self._labels.get(username)
        if cached is None:
            pi = vrf.prove(self.vrf_secret, vrf_input(username))
            cached = (vrf.proof_to_hash(pi)[:LABEL_LEN], pi)
            self._labels[username] = cached
            self._known[username] = cached[0]
        return cached

    def label_only(self, username: str) -> bytes:
        """The name's label, without making a VRF proof when it is already known."""
        known = self._known.get(username)
        return known if known is not None else self.label(username)[0]

    def current(self, username: str) -> Binding | None:
        index = self.latest.get(self.label_only(username))
        return None if index is None else self.updates[index].binding

    def next_binding(self, username: str, identity: bytes | None) -> Binding:
        """The binding a registration (identity) or deletion (None) appends: REGISTER
        for a new name, RESET for a name seen before, DELETE for None."""
        previous = self.current(username)
        if identity is None:
            if previous is None:
                raise LocalProtocolError("cannot delete a name that was never bound")
            return Binding(EntryKind.DELETE, previous.version + 1, None)
        if previous is None:
            return Binding(EntryKind.REGISTER, 0, identity)
        return Binding(EntryKind.RESET, previous.version + 1, identity)

    def append(self, username: str, binding: Binding, opening: bytes) -> LogEntry:
        """Appends one update (checked against the name's previous binding)."""
        if len(opening) != OPENING_LEN:
            raise LocalProtocolError("an opening is 16 bytes from the OS's random source")
        try:
            check_succession(username, self.current(username), binding)
        except ProofError as exc:
            raise LocalProtocolError(str(exc)) from None
        return self._append(username, binding, opening)

    def _append(self, username: str, binding: Binding, opening: bytes) -> LogEntry:
        label = self.label_only(username)
        value = binding.encode()
        commitment = commit(opening, label, value)
        self.tree.insert(label, commitment)
        entry = LogEntry(label, commitment, self.tree.root())
        index = self.log.append(entry.encode())
        self.latest[label] = index
        self.by_label.setdefault(label, []).append(index)
        self.entries.append(entry)
        self.updates.append(_Update(username, binding, opening))
        return entry

    def replay(self, username: str, value: bytes, opening: bytes,
               label: bytes | None = None) -> LogEntry:
        """Re-appends a stored update at start-up (checked like a new one). With the
        stored `label`, no VRF proof is made now (about a millisecond each): proofs
        are made when a name is first looked up."""
        if label is not None:
            if len(label) != LABEL_LEN:
                raise LocalProtocolError("a label is 32 bytes")
            self._known.setdefault(username, label)
        return self.append(username, Binding.decode(value), opening)

    def checkpoint(self) -> bytes:
        """The signed checkpoint of the current size (signed once per size)."""
        if self._signed is None or self._signed[0] != self.size:
            cp = Checkpoint(self.origin, self.size, self.log.root())
            self._signed = (self.size, sign_checkpoint(cp, self.signer))
        return self._signed[1]

    def lookup(self, username: str) -> LookupAnswer:
        """The proof of a name's latest binding at the current size."""
        label, pi = self.label(username)
        n = self.size
        head: LogEntry | None = None
        head_inclusion: tuple[bytes, ...] = ()
        if n:
            head = self.entries[n - 1]
            head_inclusion = tuple(self.log.inclusion_proof(n - 1, n))
        found = None
        index = self.latest.get(label)
        if index is not None:
            update = self.updates[index]
            found = Found(update.opening, update.binding.encode(), index,
                          self.entries[index].prefix_root,
                          tuple(self.log.inclusion_proof(index, n)))
        return LookupAnswer(pi, head, head_inclusion, self.tree.prove(label).encode(), found)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        if old_size == new_size:
            return []
        return self.log.consistency_proof(old_size, new_size)

    def frontier(self, size: int) -> list[bytes]:
        """The roots of the complete subtrees that make up [0, size)."""
        if not 0 <= size <= self.size:
            raise LocalProtocolError(f"the log never had {size} entries")
        out, start = [], 0
        for width in frontier_sizes(size):
            out.append(self.log.root_of(start, start + width))
            start += width
        return out

    def owned(self, username: str) -> list[tuple[int, bytes, bytes]]:
        """(index, opening, value) of every update of this name: what its owner needs
        to check the leaves under its label (section 19.8)."""
        label = self.label_only(username)
        return [(i, self.updates[i].opening, self.updates[i].binding.encode())
                for i in self.by_label.get(label, [])]
