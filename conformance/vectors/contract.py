"""`blindrelay vectors check -- CMD...`: check ANOTHER implementation against the vectors
through a command-line contract (docs/PROTOCOL.md 17.6).

The kit starts CMD once and writes one request per vector entry to its standard input,
one JSON object per line:

    {"file": "kdf", "op": "kdf_ck", "input": {"chain_key": "82..."}}

and reads one JSON line back per request, in order:

    {"output": {"message_key": "...", "next_chain_key": "..."}}   the result
    {"error": "DecodeError"}                                       the error it raised
    {"unsupported": true}                                          op not implemented

Bytes are lower-case hex, as in the vector files. The ops (file: op, input -> output):

    kdf: kdf_rk            root_key, dh_output -> new_root_key, chain_key
    kdf: kdf_ck            chain_key -> message_key, next_chain_key
    kdf: message_keys      message_key -> enc_key, auth_key, iv
    kdf: pqxdh_kdf         key_material -> sk
    kdf: encrypt           message_key, plaintext, associated_data -> output
    kdf: decrypt           message_key, data, associated_data -> plaintext | error
    padding: pad           body -> padded
    padding: unpad         padded -> body | error
    safety_numbers: safety_number  identity_a, username_a, identity_b, username_b
                           -> safety_number, qr_payload
    usernames: username    username (text) -> username | error

One result line per file and op; an unsupported op is SKIP (a failure with --strict).
Not covered by the contract (yet): bundle, content, conversation, drbg, frames, keys,
kt_directory, messages, pqxdh, sealed, session_record, state; their entries are
checked in-process by `python -m conformance.vectors.check` for this implementation.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance.vectors import load

Request = tuple[str, str, dict[str, Any], dict[str, Any]]
"""file, op, input, expected answer ({"output": {...}} or {"error": NAME})."""


def requests() -> Iterator[Request]:
    """Every request the kit sends, with the answer the vectors expect."""
    kdf = load("kdf")
    for e in kdf["kdf_rk"]:
        yield ("kdf", "kdf_rk", {"root_key": e["root_key"], "dh_output": e["dh_output"]},
               {"output": {"new_root_key": e["new_root_key"], "chain_key": e["chain_key"]}})
    for e in kdf["kdf_ck"]:
        yield ("kdf", "kdf_ck", {"chain_key": e["chain_key"]},
               {"output": {"message_key": e["message_key"],
                           "next_chain_key": e["next_chain_key"]}})
    for e in kdf["message_keys"]:
        yield ("kdf", "message_keys", {"message_key": e["message_key"]},
               {"output": {k: e[k] for k in ("enc_key", "auth_key", "iv")}})
    for e in kdf["pqxdh_kdf"]:
        yield ("kdf", "pqxdh_kdf", {"key_material": e["key_material"]},
               {"output": {"sk": e["sk"]}})
    for e in kdf["aead"]:
        yield ("kdf", "encrypt", {k: e[k] for k in ("message_key", "plaintext",
                                                    "associated_data")},
               {"output": {"output": e["output"]}})
        yield ("kdf", "decrypt", {"message_key": e["message_key"], "data": e["output"],
                                  "associated_data": e["associated_data"]},
               {"output": {"plaintext": e["plaintext"]}})
    for e in kdf["aead_failures"]:
        yield ("kdf", "decrypt", {k: e[k] for k in ("message_key", "data", "associated_data")},
               {"error": e["error"]})
    padding = load("padding")
    for e in padding["valid"]:
        yield "padding", "pad", {"body": e["body"]}, {"output": {"padded": e["padded"]}}
        yield "padding", "unpad", {"padded": e["padded"]}, {"output": {"body": e["body"]}}
    for e in padding["invalid"]:
        yield "padding", "unpad", {"padded": e["padded"]}, {"error": e["error"]}
    for e in load("safety_numbers")["cases"]:
        yield ("safety_numbers", "safety_number",
               {k: e[k] for k in ("identity_a", "username_a", "identity_b", "username_b")},
               {"output": {"safety_number": e["safety_number"], "qr_payload": e["qr_payload"]}})
    usernames = load("usernames")
    for name in usernames["valid"]:
        yield "usernames", "username", {"username": name}, {"output": {"username": name}}
    for e in usernames["invalid"]:
        yield "usernames", "username", {"username": e["username"]}, {"error": e["error"]}


@dataclass
class OpResult:
    file: str
    op: str
    checked: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failures:
            return "FAIL"
        return "SKIP" if self.skipped and not self.checked else "ok"

    def line(self) -> str:
        first = f"  first: {self.failures[0]}" if self.failures else ""
        return (f"{self.file + '.json':22} {self.op:14} {self.checked:3} checked, "
                f"{len(self.failures)} failed, {self.skipped} unsupported  "
                f"{self.status}{first}")

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "op": self.op, "status": self.status,
                "checked": self.checked, "skipped": self.skipped, "failures": self.failures}


def run(command: list[str], timeout: float = 120) -> list[OpResult]:
    """Runs `command` once over every request; one result per (file, op), in order."""
    wanted = list(requests())
    lines = "".join(json.dumps({"file": f, "op": op, "input": i}) + "\n"
                    for f, op, i, _ in wanted)
    done = subprocess.run(command, input=lines, capture_output=True, text=True,
                          timeout=timeout, check=False)
    answers = done.stdout.splitlines()
    results: dict[tuple[str, str], OpResult] = {}
    for number, (file, op, given, expected) in enumerate(wanted):
        result = results.setdefault((file, op), OpResult(file, op))
        where = f"request {number + 1} ({json.dumps(given)[:80]})"
        if number >= len(answers):
            result.failures.append(f"{where}: no answer (exit {done.returncode}: "
                                   f"{done.stderr.strip()[-200:]})")
            continue
        try:
            got = json.loads(answers[number])
        except ValueError:
            result.failures.append(f"{where}: answer is not JSON: {answers[number][:80]!r}")
            continue
        if isinstance(got, dict) and got.get("unsupported") is True:
            result.skipped += 1
            continue
        result.checked += 1
        if got != expected:
            result.failures.append(f"{where}: expected {json.dumps(expected)[:160]}, "
                                   f"got {json.dumps(got)[:160]}")
    return list(results.values())
