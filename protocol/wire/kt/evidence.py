"""Evidence files: what a client keeps when the directory does not add up, in a form
anyone can check without trusting that client (docs/PROTOCOL.md section 19.9).

Two kinds:

- ``fork``: two checkpoints signed by the same log key that cannot both be true:
  same size and different roots, or a consistency proof from the relay, valid for the
  larger head, that shows a root at the smaller size other than the one the relay
  signed for it. Conclusive on its own: only the holder of the log key could sign both.
- ``entry``: a signed checkpoint, the VRF proof of a name's label, and one log entry
  under that label with its inclusion proof and (when the relay revealed it) its
  opening: proves the log holds that update of that name, however briefly it was the
  latest. What owner monitoring writes.
- ``binding``: a signed checkpoint and a lookup proof showing what the directory binds
  a name to. What is proven is the directory's content (the relay signed it); why it
  is wrong is the reporter's testimony (the relay served another key; the owner never
  made this binding), and is printed as such. A RESET entry is the relay's own
  statement that the previous key did not sign the change.

The file is JSON (UTF-8), binary fields in standard base64, one format version.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol.wire.errors import DecodeError
from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.commitment import verify_commitment
from protocol.wire.kt.directory import (
    Binding,
    EntryKind,
    LogEntry,
    label_of,
    verify_answer,
)
from protocol.wire.kt.errors import ProofError
from protocol.wire.kt.merkle import verify_consistency, verify_inclusion
from protocol.wire.kt.note import parse_verifier_key

FORMAT = "blindrelay-kt-evidence-v1"
MAX_EVIDENCE_BYTES = 1 << 20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise DecodeError(f"{what} is a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise DecodeError(f"{what} is not standard base64") from None


@dataclass(frozen=True)
class Evidence:
    """One evidence file's content; `fields` holds the kind's own members."""

    kind: str
    log_key: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "kind": self.kind, "log_key": self.log_key,
                           **self.fields}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Evidence:
        if len(text) > MAX_EVIDENCE_BYTES:
            raise DecodeError("an evidence file is at most 1 MiB")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise DecodeError("an evidence file is JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DecodeError(f"not a {FORMAT} file")
        kind, log_key = data.pop("kind", None), data.pop("log_key", None)
        data.pop("format")
        if kind not in ("fork", "binding", "entry") or not isinstance(log_key, str):
            raise DecodeError("an evidence file names its kind and the log key")
        return cls(kind, log_key, data)


@dataclass(frozen=True)
class Finding:
    """What checking an evidence file established."""

    kind: str
    origin: str
    log_key: str
    conclusive: bool
    proven: list[str]
    testimony: list[str]


def fork_evidence(log_key: str, note_a: bytes, note_b: bytes, old_root: bytes | None,
                  proof: Sequence[bytes]) -> Evidence:
    """Two signed heads; for different sizes, the relay's root at the smaller size and
    its consistency proof to the larger head."""
    fields: dict[str, Any] = {"checkpoints": [_b64(note_a), _b64(note_b)],
                              "old_root": None if old_root is None else _b64(old_root),
                              "proof": [_b64(h) for h in proof]}
    return Evidence("fork", log_key, fields)


def binding_evidence(log_key: str, vrf_public_key: bytes, note: bytes, username: str,
                     answer: bytes, testimony: str,
                     served_identity: bytes | None = None) -> Evidence:
    """A signed head and a lookup proof for `username`, with the reporter's account."""
    fields: dict[str, Any] = {
        "vrf_public_key": _b64(vrf_public_key), "checkpoints": [_b64(note)],
        "username": username, "answer": _b64(answer), "testimony": testimony,
        "served_identity": None if served_identity is None else _b64(served_identity)}
    return Evidence("binding", log_key, fields)


def entry_evidence(log_key: str, vrf_public_key: bytes, note: bytes, username: str,
                   vrf_proof: bytes, index: int, entry: bytes, inclusion: Sequence[bytes],
                   opening: bytes | None, value: bytes | None, testimony: str) -> Evidence:
    """One log entry under `username`'s label, included in the signed head `note`,
    with its opening and value when the relay revealed them."""
    fields: dict[str, Any] = {
        "vrf_public_key": _b64(vrf_public_key), "checkpoints": [_b64(note)],
        "username": username, "vrf_proof": _b64(vrf_proof), "index": index,
        "entry": _b64(entry), "inclusion": [_b64(h) for h in inclusion],
        "opening": None if opening is None else _b64(opening),
        "value": None if value is None else _b64(value), "testimony": testimony}
    return Evidence("entry", log_key, fields)


def verify_evidence(text: str | bytes) -> Finding:
    """Checks an evidence file from scratch. Raises ProofError (or DecodeError) if it
    does not hold up; otherwise says what it proves and what is only testimony."""
    evidence = Evidence.from_json(text)
    verifier = parse_verifier_key(evidence.log_key)
    notes = evidence.fields.get("checkpoints")
    if not isinstance(notes, list) or not notes:
        raise DecodeError("evidence carries signed checkpoints")
    heads = [open_checkpoint(_unb64(n, "a checkpoint"), verifier)[0] for n in notes]
    key = f"{verifier.name}+{verifier.key_id.hex()}"
    if evidence.kind == "fork":
        return _fork(evidence, heads, key)
    if evidence.kind == "entry":
        return _entry(evidence, heads[0], key)
    return _binding(evidence, heads[0], key)


def _fork(evidence: Evidence, heads: list[Any], key: str) -> Finding:
    if len(heads) != 2:
        raise DecodeError("fork evidence carries two checkpoints")
    a, b = sorted(heads, key=lambda c: c.size)
    said = (f"the log key {key} signed a head of size {a.size} with root "
            f"{a.root_hash.hex()[:16]}…")
    if a.size == b.size:
        if a.root_hash == b.root_hash:
            raise ProofError("the two checkpoints agree: no fork")
        proven = [said, f"and a head of the same size with root {b.root_hash.hex()[:16]}…"]
        return Finding("fork", a.origin, evidence.log_key, True, proven, [])
    old_root = _unb64(evidence.fields.get("old_root"), "old_root")
    proof_field = evidence.fields.get("proof")
    if not isinstance(proof_field, list):
        raise DecodeError("fork evidence carries a proof list")
    proof = [_unb64(h, "a proof hash") for h in proof_field]
    if old_root == a.root_hash:
        raise ProofError("the relay's root at the smaller size is the signed one: no fork")
    verify_consistency(a.size, b.size, old_root, b.root_hash, proof)
    proven = [said, f"and a head of size {b.size} whose log had root "
              f"{old_root.hex()[:16]}… at size {a.size} (RFC 9162 consistency proof): "
              "two different histories"]
    return Finding("fork", a.origin, evidence.log_key, True, proven, [])


def _binding(evidence: Evidence, head: Any, key: str) -> Finding:
    f = evidence.fields
    username = f.get("username")
    testimony = f.get("testimony")
    if not isinstance(username, str) or not isinstance(testimony, str):
        raise DecodeError("binding evidence names the user and says what was seen")
    vrf_key = _unb64(f.get("vrf_public_key"), "vrf_public_key")
    answer = _unb64(f.get("answer"), "answer")
    verified = verify_answer(answer, username, vrf_key, head)
    where = f"at the head of size {head.size} signed by the log key {key}"
    binding = verified.binding
    if binding is None or binding.identity is None:
        state = "no key" if binding is None else f"no key (DELETE, version {binding.version})"
        proven = [f"{where}, the directory binds {username!r} to {state}"]
    else:
        proven = [f"{where}, the directory binds {username!r} to the identity key "
                  f"{binding.identity.hex()} ({binding.kind.name}, version "
                  f"{binding.version}, entry {verified.index})"]
        if binding.kind is EntryKind.RESET:
            proven.append("the relay itself marked this binding a RESET: the previous "
                          "key did not sign it")
    served = f.get("served_identity")
    said = [testimony]
    if served is not None:
        served_key = _unb64(served, "served_identity")
        if len(served_key) != 32:
            raise DecodeError("the served identity key is 32 bytes")
        if verified.identity is not None and served_key == verified.identity:
            raise ProofError("the served key is the one the directory binds: no conflict")
        said.append(f"the relay served the key {served_key.hex()} for {username!r}")
    return Finding("binding", head.origin, evidence.log_key, False, proven, said)


def _entry(evidence: Evidence, head: Any, key: str) -> Finding:
    f = evidence.fields
    username, testimony, index = f.get("username"), f.get("testimony"), f.get("index")
    if not isinstance(username, str) or not isinstance(testimony, str) \
            or not isinstance(index, int) or isinstance(index, bool):
        raise DecodeError("entry evidence names the user, the index and what was seen")
    label = label_of(_unb64(f.get("vrf_public_key"), "vrf_public_key"),
                     _unb64(f.get("vrf_proof"), "vrf_proof"), username)
    entry = LogEntry.decode(_unb64(f.get("entry"), "entry"))
    if entry.label != label:
        raise ProofError("the entry is not under the name's label")
    inclusion = f.get("inclusion")
    if not isinstance(inclusion, list):
        raise DecodeError("entry evidence carries an inclusion proof")
    verify_inclusion(entry.leaf(), index, head.size,
                     [_unb64(h, "a proof hash") for h in inclusion], head.root_hash)
    where = (f"at the head of size {head.size} signed by the log key {key}, log entry "
             f"{index} is an update of {username!r} (its label is proven by the VRF)")
    said = [testimony]
    if f.get("opening") is None or f.get("value") is None:
        said.append("the relay did not reveal what this entry binds")
        return Finding("entry", head.origin, evidence.log_key, False, [where], said)
    value = _unb64(f.get("value"), "value")
    verify_commitment(entry.commitment, _unb64(f.get("opening"), "opening"), label, value)
    binding = Binding.decode(value)
    bound = ("no key" if binding.identity is None
             else f"the identity key {binding.identity.hex()}")
    proven = [where, f"it binds {username!r} to {bound} ({binding.kind.name}, version "
              f"{binding.version})"]
    if binding.kind is EntryKind.RESET:
        proven.append("the relay itself marked it a RESET: the previous key did not sign it")
    return Finding("entry", head.origin, evidence.log_key, False, proven, said)
