"""kt_directory.json: the key directory's updates, log entries, signed checkpoints and
lookup answers (docs/PROTOCOL.md sections 19.2-19.7).

Everything is drawn, in this order, from DRBG("blindrelay/vectors/v1/kt_directory"):
the VRF secret key (32 bytes), the log's signed-note key seed (32), one identity key
seed per entry of IDENTITIES (32 each), then each step's 16-byte opening in turn. VRF
proofs (RFC 9381) and Ed25519 signatures are deterministic, so every byte reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, flip, h, oh
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.kt import vrf
from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.directory import (
    Binding,
    Directory,
    EntryKind,
    LookupAnswer,
    Verified,
    change_statement,
    verify_answer,
)
from protocol.wire.kt.note import SEED_SIZE, Signer

ORIGIN = "blindrelay.example/kt"
IDENTITIES = ("alice_1", "alice_2", "alice_3", "bob_1", "bob_2", "carol_1")

STEPS: tuple[tuple[str, str, str | None], ...] = (
    # (username, kind, the identity it binds (a name from IDENTITIES) or None)
    ("alice", "REGISTER", "alice_1"),
    ("bob", "REGISTER", "bob_1"),
    ("carol", "REGISTER", "carol_1"),
    ("alice", "CHANGE", "alice_2"),      # signed by alice_1
    ("bob", "DELETE", None),
    ("bob", "RESET", "bob_2"),           # registered again after the deletion
    ("carol", "DELETE", None),
    ("alice", "RESET", "alice_3"),       # the operator re-bound a bound name
)

LOOKUPS: tuple[tuple[str, int], ...] = (
    # (username, log size of the checkpoint the answer is made at)
    ("alice", 0),       # the empty log: no head entry
    ("alice", 1),       # a log of one entry
    ("alice", 3),
    ("bob", 3),
    ("dave", 3),        # never registered
    ("alice", 4),       # after the CHANGE
    ("bob", 5),         # deleted
    ("alice", 8),
    ("bob", 8),         # RESET after DELETE
    ("carol", 8),       # deleted
    ("dave", 8),        # never registered
)


def keys(label: str) -> tuple[bytes, bytes, dict[str, IdentityKeyPair], Drbg]:
    """The VRF secret, the log key seed and the identity keys, and the DRBG after them
    (which then gives the openings)."""
    rng = Drbg(label)
    vrf_secret, log_seed = rng(vrf.SECRET_KEY_LEN), rng(SEED_SIZE)
    identities = {name: IdentityKeyPair.from_seed(rng(32)) for name in IDENTITIES}
    return vrf_secret, log_seed, identities, rng


def result_json(verified: Verified) -> Json:
    binding = verified.binding
    return {
        "found": binding is not None,
        "kind": None if binding is None else binding.kind.name,
        "version": None if binding is None else binding.version,
        "index": verified.index,
        "label": h(verified.label),
        "identity": oh(verified.identity),
    }


def replay(vrf_secret: bytes, log_seed: bytes, steps: Sequence[Json]) -> Directory:
    directory = Directory(Signer(ORIGIN, log_seed), vrf_secret)
    for step in steps:
        directory.append(step["username"], Binding.decode(bytes.fromhex(step["value"])),
                         bytes.fromhex(step["opening"]))
    return directory


def build() -> Json:
    label = f"{LABEL}kt_directory"
    vrf_secret, log_seed, identities, rng = keys(label)
    signer = Signer(ORIGIN, log_seed)
    directory = Directory(signer, vrf_secret)
    bound: dict[str, IdentityKeyPair] = {}

    steps: list[Json] = []
    for username, kind_name, identity_name in STEPS:
        kind = EntryKind[kind_name]
        previous = directory.current(username)
        version = 0 if previous is None else previous.version + 1
        identity = None if identity_name is None else identities[identity_name]
        signature = b""
        if kind is EntryKind.CHANGE:
            assert identity is not None
            signature = bound[username].sign(change_statement(username, version, identity.public))
        binding = Binding(kind, version, None if identity is None else identity.public, signature)
        if kind is not EntryKind.CHANGE:
            assert directory.next_binding(username, binding.identity) == binding
        opening = rng(16)
        entry = directory.append(username, binding, opening)
        if identity is not None:
            bound[username] = identity
        label_, proof = directory.label(username)
        steps.append({
            "username": username,
            "kind": kind_name,
            "version": version,
            "identity": oh(binding.identity),
            "signature": h(signature),
            "value": h(binding.encode()),
            "opening": h(opening),
            "vrf_proof": h(proof),
            "label": h(label_),
            "commitment": h(entry.commitment),
            "prefix_root": h(entry.prefix_root),
            "entry": h(entry.encode()),
            "index": directory.size - 1,
            "log_root": h(directory.log.root()),
            "checkpoint": h(directory.checkpoint()),
        })

    lookups: list[Json] = []
    answers: dict[tuple[str, int], bytes] = {}
    vrf_public = directory.vrf_public_key
    for username, size in LOOKUPS:
        at = replay(vrf_secret, log_seed, steps[:size])
        note = at.checkpoint()
        checkpoint, _ = open_checkpoint(note, signer.verifier)
        answer = at.lookup(username).encode()
        answers[username, size] = answer
        verified = verify_answer(answer, username, vrf_public, checkpoint)
        lookups.append({"username": username, "size": size, "checkpoint": h(note),
                        "answer": h(answer), "result": result_json(verified)})

    alice = answers["alice", 8]
    parsed = LookupAnswer.decode(alice, 8)
    assert parsed.found is not None
    opening_at = alice.index(parsed.found.opening)
    failure_cases: list[tuple[str, str, int, bytes]] = [
        ("alice's answer checked as bob's: the VRF proof is for another name",
         "bob", 8, alice),
        ("alice's answer at size 8 checked against the checkpoint of size 7",
         "alice", 7, alice),
        ("alice's answer with one bit of the opening flipped", "alice", 8,
         flip(alice, opening_at)),
        ("dave's (absent) answer at size 3 checked against the checkpoint of size 8",
         "dave", 8, answers["dave", 3]),
        ("bob's answer at size 8 truncated by one byte", "bob", 8, answers["bob", 8][:-1]),
    ]
    failures = []
    for description, username, size, answer in failure_cases:
        note = bytes.fromhex(steps[size - 1]["checkpoint"])
        checkpoint, _ = open_checkpoint(note, signer.verifier)
        failures.append({"description": description, "username": username, "size": size,
                         "answer": h(answer),
                         "error": error_name(verify_answer, answer, username, vrf_public,
                                             checkpoint)})

    doc: dict[str, Any] = {
        "description": "The key directory (sections 19.2-19.7): VRF labels, bindings, "
        "commitments, 96-byte log entries, log roots and signed checkpoints after each "
        "update, and lookup answers with what verify_answer makes of them.",
        "format": FORMAT,
        "rng": label,
        "origin": ORIGIN,
        "keys": {
            "vrf_secret": h(vrf_secret),
            "vrf_public": h(vrf_public),
            "log_seed": h(log_seed),
            "log_verifier": signer.verifier.encode(),
            "log_key_id": h(signer.verifier.key_id),
            "log_public": h(signer.verifier.public_key),
        },
        "identities": [{"name": name, "seed": h(key.seed), "public": h(key.public)}
                       for name, key in identities.items()],
        "steps": steps,
        "lookups": lookups,
        "failures": failures,
    }
    return doc
