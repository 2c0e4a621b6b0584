"""A client's view of the directory's log: the newest head it verified, and how a
newer one is accepted (docs/PROTOCOL.md section 19.8).

Why: a proof is only as good as the checkpoint it is checked against. A client keeps
the newest checkpoint it verified and accepts another only if the log proves the two
are one history (RFC 9162 consistency): so the relay can neither roll a client back
to an older directory nor move it onto a different one without being caught. When
the relay's own answer shows a different past (its root at our size is not the one it
signed for us), the two signed heads plus that proof are evidence anyone can check.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.cosignature import parse_cosigner_key, require_cosignature
from protocol.wire.kt.errors import ProofError
from protocol.wire.kt.evidence import Evidence, fork_evidence
from protocol.wire.kt.merkle import verify_consistency
from protocol.wire.kt.note import Verifier, parse_verifier_key
from protocol.wire.kt.vrf import validate_key


@dataclass(frozen=True, slots=True)
class DirectoryKeys:
    """What a client pins for a relay's directory at first use (like an ssh host key):
    the log's signed-note verifier key and the VRF public key."""

    origin: str
    log_key: str
    vrf_public_key: bytes
    witnesses: tuple[str, ...] = ()
    """Witness keys (C2SP tlog-cosignature, 19.11) configured by the user: when there
    are any, a head is accepted only with a cosignature from one of them."""

    def __post_init__(self) -> None:
        verifier = parse_verifier_key(self.log_key)
        if verifier.name != self.origin:
            raise ProofError("the log key is not named after the directory's origin")
        validate_key(self.vrf_public_key)
        for key in self.witnesses:
            parse_cosigner_key(key)

    @property
    def verifier(self) -> Verifier:
        return parse_verifier_key(self.log_key)


@dataclass(frozen=True, slots=True)
class Head:
    """The newest signed checkpoint a client verified."""

    size: int
    root: bytes
    note: bytes

    def checkpoint(self, keys: DirectoryKeys) -> Checkpoint:
        return open_checkpoint(self.note, keys.verifier)[0]


class Rollback(ProofError):
    """The relay showed a head older than one it showed before."""


class Fork(ProofError):
    """The relay signed two heads that cannot both be true; `evidence` proves it."""

    def __init__(self, message: str, evidence: Evidence) -> None:
        super().__init__(message)
        self.evidence = evidence


def open_head(keys: DirectoryKeys, note: bytes, cosigned: bool = True) -> Head:
    """A signed checkpoint from this directory's log key (the signature is required)
    and, when witnesses are configured and `cosigned`, a cosignature from one of them
    (`cosigned` False only reopens a head this side already accepted)."""
    checkpoint, _ = open_checkpoint(note, keys.verifier)
    if cosigned and keys.witnesses:
        require_cosignature(note, [parse_cosigner_key(k) for k in keys.witnesses])
    return Head(checkpoint.size, checkpoint.root_hash, note)


def advance(keys: DirectoryKeys, current: Head | None, note: bytes,
            old_root: bytes | None = None, proof: Sequence[bytes] = ()) -> Head:
    """Accepts `note` as the newest head if it extends `current`.

    `old_root` and `proof` are the relay's KT_CONSISTENCY_PROOF from current.size to
    the new size (unused when the sizes are equal). Returns the head to keep: the new
    one, or `current` when the note is the same head again. Raises Rollback for a
    smaller head, Fork (with evidence) when the relay's answer proves it signed a
    different history, ProofError when the proof simply does not verify."""
    new = open_head(keys, note)
    if current is None:
        return new
    if new.size < current.size:
        raise Rollback(f"the relay showed a head of {new.size} entries after one of "
                       f"{current.size}: it never goes back")
    if new.size == current.size:
        if not hmac.compare_digest(new.root, current.root):
            raise Fork("the relay signed two different heads of the same size",
                       fork_evidence(keys.log_key, current.note, note, None, ()))
        return new  # the same head, perhaps with more cosignatures
    if old_root is None:
        raise ProofError("a newer head needs a consistency proof")
    if current.size == 0:
        return new  # the empty log is a prefix of every log
    if not hmac.compare_digest(old_root, current.root):
        try:  # the relay's own proof shows another past: provable
            verify_consistency(current.size, new.size, old_root, new.root, proof)
        except ProofError:
            raise ProofError("the consistency proof does not verify") from None
        raise Fork("the relay's log at our size is not the one it signed for us",
                   fork_evidence(keys.log_key, current.note, note, old_root, proof))
    verify_consistency(current.size, new.size, current.root, new.root, proof)
    return new


def check_gossip(keys: DirectoryKeys, mine: Head, theirs_note: bytes,
                 old_root: bytes | None = None, proof: Sequence[bytes] = ()) -> Head:
    """Checks a peer's checkpoint (carried inside an end-to-end message, 19.8) against
    our own newest head: both must be one history.

    The caller first brings its own head up to at least the peer's size (KT_INFO and
    `advance`); `old_root` and `proof` are then the relay's KT_CONSISTENCY_PROOF from
    the peer's size to ours, asked on our own connection, so they come from the view
    the relay shows us. If the relay's past at the peer's size is not the root it
    signed for the peer, the relay showed us two different directories: Fork, with
    conclusive evidence. Returns the peer's head."""
    theirs = open_head(keys, theirs_note, cosigned=False)
    if theirs.size > mine.size:
        raise LocalProtocolError("bring our own head up to the peer's size first")
    if theirs.size == mine.size:
        if not hmac.compare_digest(theirs.root, mine.root):
            raise Fork("a contact was shown another head of the same size",
                       fork_evidence(keys.log_key, theirs_note, mine.note, None, ()))
        return theirs
    if theirs.size == 0:
        return theirs
    if old_root is None:
        raise ProofError("checking a contact's head needs a consistency proof")
    verify_consistency(theirs.size, mine.size, old_root, mine.root, proof)
    if not hmac.compare_digest(old_root, theirs.root):
        raise Fork("the relay showed a contact a directory that is not in our history",
                   fork_evidence(keys.log_key, theirs_note, mine.note, old_root, proof))
    return theirs


def anchor_sizes(size: int) -> tuple[int, ...]:
    """The log sizes whose roots two people compare on the safety-number screen (19.8):
    the largest power of two not above `size`, and half of it. Any two heads within a
    factor of two of each other share one of them, so their codes can be compared
    without either knowing the other's size; equal codes mean the relay showed both
    the same first entries."""
    if size <= 0:
        return ()
    top = 1 << (size.bit_length() - 1)
    return (top, top // 2) if top > 1 else (top,)


def head_code(size: int, root: bytes) -> str:
    """A directory anchor for people to compare: the size and the root's first 8
    bytes, as four groups of four upper-case hex digits."""
    digits = root[:8].hex().upper()
    return f"first {size}: " + " ".join(digits[i:i + 4] for i in range(0, 16, 4))
