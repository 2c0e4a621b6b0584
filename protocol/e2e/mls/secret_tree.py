"""The secret tree and its per-sender ratchets (RFC 9420 section 9), and the sender
data key (section 6.3.2).

The epoch's encryption secret sits at the root; each node's children get
ExpandWithLabel(secret, "tree", "left" | "right", Nh). A leaf's secret starts two hash
ratchets, "handshake" and "application"; generation j of a ratchet gives the AEAD key
and nonce DeriveTreeSecret(secret_j, "key" | "nonce", j, Nk | Nn) and the next secret
DeriveTreeSecret(secret_j, "secret", j, Nh). Secrets are deleted as they are used
(section 9.2): a node's secret once its children exist, a generation's once the next
one is derived.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.e2e.mls import cipher_suite as cs
from protocol.e2e.mls import tree_math


@dataclass(frozen=True)
class KeyNonce:
    generation: int
    key: bytes
    nonce: bytes


MAX_SKIPPED = 256
"""Keys kept for generations skipped over (messages of one sender arriving out of
order, section 9.2), per ratchet; and the furthest a message may jump ahead."""

MAX_FORWARD = 10_000


class HashRatchet:
    """One sender's handshake or application ratchet (section 9.1). A generation's key
    is handed out once and deleted; keys of skipped generations are kept (at most
    MAX_SKIPPED, the oldest dropped first) so that late messages still open."""

    def __init__(self, secret: bytes, generation: int = 0,
                 skipped: dict[int, KeyNonce] | None = None) -> None:
        self.secret = secret
        self.generation = generation
        self.skipped: dict[int, KeyNonce] = dict(skipped or {})

    def key_nonce(self) -> KeyNonce:
        j = self.generation
        return KeyNonce(j, cs.derive_tree_secret(self.secret, "key", j, cs.NK),
                        cs.derive_tree_secret(self.secret, "nonce", j, cs.NN))

    def step(self) -> None:
        self.secret = cs.derive_tree_secret(self.secret, "secret", self.generation, cs.NH)
        self.generation += 1

    def get(self, generation: int) -> KeyNonce:
        """The key and nonce for `generation`, used once (section 9.2): ValueError for
        one already used or dropped, or too far ahead."""
        if generation < self.generation:
            if generation in self.skipped:
                return self.skipped.pop(generation)
            raise ValueError(f"generation {generation} is already consumed")
        if generation - self.generation > MAX_FORWARD:
            raise ValueError(f"generation {generation} is too far ahead")
        while self.generation < generation:
            self.skipped[self.generation] = self.key_nonce()
            self.step()
        while len(self.skipped) > MAX_SKIPPED:
            del self.skipped[min(self.skipped)]
        out = self.key_nonce()
        self.step()
        return out


class SecretTree:
    """The secret tree of one epoch over `n_leaves` leaves."""

    def __init__(self, encryption_secret: bytes, n_leaves: int) -> None:
        self.n_leaves = n_leaves
        self.node_secrets: dict[int, bytes] = {tree_math.root(n_leaves): encryption_secret}
        self.hash_ratchets: dict[tuple[int, str], HashRatchet] = {}

    def _leaf_secret(self, leaf: int) -> bytes:
        target = tree_math.node_index(leaf)
        if target not in self.node_secrets:
            path = [target, *tree_math.direct_path(target, self.n_leaves)]
            # the lowest ancestor whose secret is still held
            top = next(i for i, x in enumerate(path) if x in self.node_secrets)
            for i in range(top, 0, -1):
                node = path[i]
                secret = self.node_secrets.pop(node)
                self.node_secrets[tree_math.left(node)] = cs.expand_with_label(
                    secret, "tree", b"left", cs.NH)
                self.node_secrets[tree_math.right(node)] = cs.expand_with_label(
                    secret, "tree", b"right", cs.NH)
        return self.node_secrets.pop(target)

    def ratchet(self, leaf: int, kind: str) -> HashRatchet:
        """`kind` is "handshake" or "application"."""
        if not 0 <= leaf < self.n_leaves:
            raise ValueError(f"leaf {leaf} is outside a tree of {self.n_leaves} leaves")
        if (leaf, kind) not in self.hash_ratchets:
            secret = self._leaf_secret(leaf)
            for k in ("handshake", "application"):
                self.hash_ratchets[(leaf, k)] = HashRatchet(
                    cs.expand_with_label(secret, k, b"", cs.NH))
        return self.hash_ratchets[(leaf, kind)]


def sender_data_key_nonce(sender_data_secret: bytes, ciphertext: bytes
                          ) -> tuple[bytes, bytes]:
    """Section 6.3.2: keyed by the first Nh bytes of the content ciphertext."""
    sample = ciphertext[:cs.NH]
    return (cs.expand_with_label(sender_data_secret, "key", sample, cs.NK),
            cs.expand_with_label(sender_data_secret, "nonce", sample, cs.NN))
