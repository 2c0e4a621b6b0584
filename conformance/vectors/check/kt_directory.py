"""kt_directory.json: the key directory's updates, log entries, signed checkpoints and
lookup answers (docs/PROTOCOL.md sections 19.2-19.7).

A step or a lookup is checked by replaying the file's earlier steps into a fresh
`Directory` (the openings and values the file gives, under its keys) and comparing
every byte it makes; a lookup's answer is also run through `verify_answer` against
the file's signed checkpoint, and each failure must raise the named error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from conformance.drbg import Drbg
from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.kt import vrf
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.commitment import commit
from protocol.wire.kt.directory import (
    LABEL_LEN,
    Binding,
    Directory,
    EntryKind,
    LogEntry,
    verify_answer,
    vrf_input,
)
from protocol.wire.kt.merkle import EMPTY_ROOT
from protocol.wire.kt.note import Signer, parse_verifier_key

NAME = "kt_directory"
OPENING_LEN = 16


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "keys", "rng", "origin", "keys", "identities")],
                  listed(NAME, doc, "steps"), listed(NAME, doc, "lookups"),
                  listed(NAME, doc, "failures"))


def _position(at: At) -> int:
    match = re.match(r"\w+\[(\d+)\]", at.entry.id)
    if match is None:
        raise ValueError("an entry of a list")
    return int(match.group(1))


def _replay(doc: Json, steps: Sequence[Json]) -> Directory:
    """A directory with the file's keys and the given steps appended."""
    keys = doc["keys"]
    directory = Directory(Signer(doc["origin"], b(keys["log_seed"])), b(keys["vrf_secret"]))
    for step in steps:
        directory.append(step["username"], Binding.decode(b(step["value"])), b(step["opening"]))
    return directory


def _checkpoint(at: At, doc: Json, note: bytes, size: int) -> Checkpoint:
    checkpoint, _ = open_checkpoint(note, parse_verifier_key(doc["keys"]["log_verifier"]))
    at.eq("checkpoint (size)", size, checkpoint.size)
    return checkpoint


def check_keys(at: At, data: Any) -> None:
    rng = Drbg(data["rng"])
    keys = data["keys"]
    at.eq("keys.vrf_secret", b(keys["vrf_secret"]), rng(vrf.SECRET_KEY_LEN))
    at.eq("keys.log_seed", b(keys["log_seed"]), rng(32))
    for index, identity in enumerate(data["identities"]):
        seed = rng(32)
        at.eq(f"identities[{index}].seed", b(identity["seed"]), seed)
        at.eq(f"identities[{index}].public", b(identity["public"]),
              IdentityKeyPair.from_seed(seed).public)
    at.eq("keys.vrf_public", b(keys["vrf_public"]), vrf.public_key(b(keys["vrf_secret"])))
    verifier = Signer(data["origin"], b(keys["log_seed"])).verifier
    at.eq("keys.log_verifier", keys["log_verifier"], verifier.encode())
    at.eq("keys.log_key_id", b(keys["log_key_id"]), verifier.key_id)
    at.eq("keys.log_public", b(keys["log_public"]), verifier.public_key)


def check_step(at: At, step: Any) -> None:
    doc, k = at.entry.doc, _position(at)
    rng = Drbg(doc["rng"])
    rng(vrf.SECRET_KEY_LEN + 32 + 32 * len(doc["identities"]) + OPENING_LEN * k)
    opening = b(step["opening"])
    at.eq("opening", opening, rng(OPENING_LEN))

    identity = None if step["identity"] is None else b(step["identity"])
    binding = Binding(EntryKind[step["kind"]], step["version"], identity, b(step["signature"]))
    value = b(step["value"])
    at.eq("value", value, binding.encode())
    at.eq("value (decoded)", binding, Binding.decode(value))

    directory = _replay(doc, doc["steps"][:k])
    username = step["username"]
    label, proof = directory.label(username)
    at.eq("vrf_proof", b(step["vrf_proof"]), proof)
    at.eq("label", b(step["label"]), label)
    beta = vrf.verify(b(doc["keys"]["vrf_public"]), b(step["vrf_proof"]), vrf_input(username))
    at.eq("label (from the proof)", b(step["label"]), beta[:LABEL_LEN])
    at.eq("commitment", b(step["commitment"]), commit(opening, label, value))

    entry = directory.append(username, binding, opening)  # checks the succession rules
    at.eq("prefix_root", b(step["prefix_root"]), entry.prefix_root)
    at.eq("entry", b(step["entry"]), entry.encode())
    at.eq("entry (decoded)", LogEntry(b(step["label"]), b(step["commitment"]),
                                      b(step["prefix_root"])), LogEntry.decode(b(step["entry"])))
    at.eq("index", step["index"], directory.size - 1)
    at.eq("log_root", b(step["log_root"]), directory.log.root())
    note = b(step["checkpoint"])
    at.eq("checkpoint", note, directory.checkpoint())
    checkpoint = _checkpoint(at, doc, note, k + 1)
    at.eq("checkpoint (root)", b(step["log_root"]), checkpoint.root_hash)


def check_lookup(at: At, lookup: Any) -> None:
    doc = at.entry.doc
    size, username = lookup["size"], lookup["username"]
    directory = _replay(doc, doc["steps"][:size])
    note, answer = b(lookup["checkpoint"]), b(lookup["answer"])
    at.eq("checkpoint", note, directory.checkpoint())
    at.eq("answer", answer, directory.lookup(username).encode())
    checkpoint = _checkpoint(at, doc, note, size)
    if size == 0:
        at.eq("checkpoint (root)", EMPTY_ROOT, checkpoint.root_hash)
    verified = verify_answer(answer, username, b(doc["keys"]["vrf_public"]), checkpoint)
    result, binding = lookup["result"], verified.binding
    at.eq("result.found", result["found"], binding is not None)
    at.eq("result.kind", result["kind"], None if binding is None else binding.kind.name)
    at.eq("result.version", result["version"], None if binding is None else binding.version)
    at.eq("result.index", result["index"], verified.index)
    at.eq("result.label", b(result["label"]), verified.label)
    expected = None if result["identity"] is None else b(result["identity"])
    at.eq("result.identity", expected, verified.identity)


def check_failure(at: At, failure: Any) -> None:
    doc = at.entry.doc
    size = failure["size"]
    note = b(doc["steps"][size - 1]["checkpoint"])
    checkpoint = _checkpoint(at, doc, note, size)
    vrf_public = b(doc["keys"]["vrf_public"])
    at.raises("error", failure["error"],
              lambda: verify_answer(b(failure["answer"]), failure["username"], vrf_public,
                                    checkpoint))


check = dispatch({"keys": check_keys, "steps": check_step, "lookups": check_lookup,
                  "failures": check_failure})
