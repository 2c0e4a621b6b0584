"""`blindrelay vectors check -- CMD...`: check ANOTHER implementation against the vectors
through a command-line contract (docs/PROTOCOL.md 17.6).

The kit starts CMD once and writes one request per vector entry to its standard input,
one JSON object per line:

    {"file": "kdf", "op": "kdf_ck", "input": {"chain_key": "82..."}}

and reads one JSON line back per request, in order:

    {"output": {"message_key": "...", "next_chain_key": "..."}}   the result
    {"error": "DecodeError"}                                       the error it raised
    {"unsupported": true}                                          op not implemented

Bytes are lower-case hex, as in the vector files; every op, its input and output
fields, and the files and ops not covered are listed in docs/PROTOCOL.md 17.6 (`FILES`
below makes the requests: kdf, padding, safety_numbers, usernames, drbg, keys, messages,
sealed, kt_directory). A request answered with anything but the expected line is a
failure; where the vector records no single right output (a `seal` is randomised) the
kit judges the answer itself (it opens the box with the recipient's key).

One result line per file and op; an unsupported op is SKIP (a failure with --strict).
Checked in-process only, by `python -m conformance.vectors.check`: bundle, content,
conversation, frames, groups, pqxdh, sender_certificate, session_record, state, and the few
parts of the covered files that are constants or DRBG bookkeeping (17.6 lists them).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance.vectors import load
from protocol.e2e.keys import IdentityKeyPair
from protocol.e2e.sealed import unseal
from protocol.wire.errors import ProtocolError

Json = dict[str, Any]
Answer = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One line the kit sends, and the answer the vectors expect.

    `expected` is `{"output": {...}}` or `{"error": NAME}`. Where the vector records no
    single right output (a sealed box is randomised), `judge` turns the adapter's answer
    into what is compared (e.g. "it opens to this content"), computed by this kit.
    """

    file: str
    op: str
    input: Json
    expected: Answer
    judge: Callable[[Answer], Answer] | None = None


def _out(**fields: Any) -> Answer:
    return {"output": fields}


def _kdf() -> Iterator[Request]:
    kdf = load("kdf")
    for e in kdf["kdf_rk"]:
        yield Request("kdf", "kdf_rk", {"root_key": e["root_key"], "dh_output": e["dh_output"]},
                      _out(new_root_key=e["new_root_key"], chain_key=e["chain_key"]))
    for e in kdf["kdf_ck"]:
        yield Request("kdf", "kdf_ck", {"chain_key": e["chain_key"]},
                      _out(message_key=e["message_key"], next_chain_key=e["next_chain_key"]))
    for e in kdf["message_keys"]:
        yield Request("kdf", "message_keys", {"message_key": e["message_key"]},
                      _out(enc_key=e["enc_key"], auth_key=e["auth_key"], iv=e["iv"]))
    for e in kdf["pqxdh_kdf"]:
        yield Request("kdf", "pqxdh_kdf", {"key_material": e["key_material"]},
                      _out(sk=e["sk"]))
    for e in kdf["aead"]:
        yield Request("kdf", "encrypt", {k: e[k] for k in ("message_key", "plaintext",
                                                           "associated_data")},
                      _out(output=e["output"]))
        yield Request("kdf", "decrypt", {"message_key": e["message_key"], "data": e["output"],
                                         "associated_data": e["associated_data"]},
                      _out(plaintext=e["plaintext"]))
    for e in kdf["aead_failures"]:
        yield Request("kdf", "decrypt",
                      {k: e[k] for k in ("message_key", "data", "associated_data")},
                      {"error": e["error"]})


def _padding() -> Iterator[Request]:
    padding = load("padding")
    for e in padding["valid"]:
        yield Request("padding", "pad", {"body": e["body"]}, _out(padded=e["padded"]))
        yield Request("padding", "unpad", {"padded": e["padded"]}, _out(body=e["body"]))
    for e in padding["invalid"]:
        yield Request("padding", "unpad", {"padded": e["padded"]}, {"error": e["error"]})


def _safety_numbers() -> Iterator[Request]:
    for e in load("safety_numbers")["cases"]:
        yield Request("safety_numbers", "safety_number",
                      {k: e[k] for k in ("identity_a", "username_a", "identity_b",
                                         "username_b")},
                      _out(safety_number=e["safety_number"], qr_payload=e["qr_payload"]))


def _usernames() -> Iterator[Request]:
    usernames = load("usernames")
    for name in usernames["valid"]:
        yield Request("usernames", "username", {"username": name}, _out(username=name))
    for e in usernames["invalid"]:
        yield Request("usernames", "username", {"username": e["username"]},
                      {"error": e["error"]})


def _drbg() -> Iterator[Request]:
    for e in load("drbg")["cases"]:
        yield Request("drbg", "drbg", {"label": e["label"], "draws": [d["n"] for d in e["draws"]]},
                      _out(outputs=[d["output"] for d in e["draws"]]))


def _keys() -> Iterator[Request]:
    keys = load("keys")
    for e in keys["ed25519"]:
        yield Request("keys", "ed25519", {"seed": e["seed"], "message": e["message"]},
                      _out(**{k: e[k] for k in ("public", "encoded", "x25519_private",
                                                "x25519_public", "signature")}))
    for e in keys["x25519"]:
        yield Request("keys", "x25519", {"private": e["private"]},
                      _out(public=e["public"], encoded=e["encoded"]))
    for e in keys["x25519_dh"]:
        yield Request("keys", "x25519_dh", {"private": e["private"],
                                            "peer_public": e["peer_public"]},
                      {"error": e["error"]} if "error" in e else _out(shared=e["shared"]))
    for e in keys["conversion_errors"]:
        yield Request("keys", "ed25519_to_x25519", {"ed25519_public": e["ed25519_public"]},
                      {"error": e["error"]})
    for e in keys["ed25519"]:
        yield Request("keys", "ed25519_to_x25519", {"ed25519_public": e["public"]},
                      _out(x25519_public=e["x25519_public"]))
    for e in keys["mlkem768"]:
        yield Request("keys", "mlkem768", {"seed": e["seed"], "ciphertext": e["kem_ciphertext"]},
                      _out(public=e["public"], encoded=e["encoded"],
                           shared_secret=e["kem_shared_secret"]))
    for section in ("ed25519", "x25519", "mlkem768"):
        for e in keys[section]:
            yield Request("keys", "decode_key", {"expected_type": keys["type_bytes"][section],
                                                 "encoded": e["encoded"]},
                          _out(public=e["public"]))
    for e in keys["decode_errors"]:
        yield Request("keys", "decode_key", {"expected_type": e["expected_type"],
                                             "encoded": e["encoded"]}, {"error": e["error"]})


def _messages() -> Iterator[Request]:
    messages = load("messages")
    for e in messages["headers"]:
        yield Request("messages", "encode_header", {k: e[k] for k in ("dh", "pn", "n")},
                      _out(encoded=e["encoded"]))
        yield Request("messages", "decode_header", {"encoded": e["encoded"]},
                      _out(dh=e["dh"], pn=e["pn"], n=e["n"]))
    for e in messages["decode_errors"]:
        if e["layout"] == "header":
            yield Request("messages", "decode_header", {"encoded": e["encoded"]},
                          {"error": e["error"]})


def _opens_to(recipient_seed: str) -> Callable[[Answer], Answer]:
    """Judges a `seal` answer by opening it with the recipient's key: a sealed box is
    randomised, so what is compared is its length and the content it opens to."""
    recipient = IdentityKeyPair.from_seed(bytes.fromhex(recipient_seed))

    def judge(answer: Answer) -> Answer:
        if "output" not in answer:
            return answer
        try:
            sealed = bytes.fromhex(answer["output"]["sealed"])
            opened = unseal(recipient, sealed)
        except (KeyError, TypeError, ValueError, AttributeError):
            return {"output": "not {\"sealed\": HEX}"}
        except ProtocolError as exc:
            return {"output": {"sealed": f"does not open ({type(exc).__name__})"}}
        return _out(sealed_length=len(sealed), opens_to=opened.encode().hex())
    return judge


def _digest(answer: Answer) -> Answer:
    """Judges an `encode_content` answer where the vector records only the content's
    length and SHA-256 (the boundary contents are up to 64 KiB of 0xa5)."""
    try:
        content = bytes.fromhex(answer["output"]["content"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return answer
    return _out(content_length=len(content),
                content_sha256=hashlib.sha256(content).hexdigest())


def _sealed() -> Iterator[Request]:
    sealed = load("sealed")
    for e in sealed["cases"]:
        fields = {"certificate": e["certificate"], "kind": e["kind"], "message": e["message"]}
        decoded = {**fields, "sender": e["sender"]}  # the certificate's username
        yield Request("sealed", "encode_content", {**fields, "limit": 65536},
                      _out(content=e["content"]))
        yield Request("sealed", "decode_content", {"content": e["content"]}, _out(**decoded))
        yield Request("sealed", "unseal", {"recipient_seed": e["recipient"]["seed"],
                                           "sealed": e["sealed"]}, _out(**decoded))
        yield Request("sealed", "seal", {"recipient_public": e["recipient"]["public"],
                                         **fields, "limit": 65536},
                      _out(sealed_length=len(e["sealed"]) // 2, opens_to=e["content"]),
                      _opens_to(e["recipient"]["seed"]))
    for e in sealed["boundaries"]:
        given = {"certificate": e["certificate"], "kind": e["kind"],
                 "message": "a5" * e["message_length"], "limit": e.get("limit", 65536)}
        if "error" in e:
            yield Request("sealed", "encode_content", given, {"error": e["error"]})
        else:
            yield Request("sealed", "encode_content", given,
                          _out(content_length=e["content_length"],
                               content_sha256=e["content_sha256"]), _digest)
    for e in sealed["plaintexts"]:
        yield Request("sealed", "envelope_size", {"plaintext_length": e["plaintext_length"]},
                      {"error": e["error"]} if "error" in e else
                      _out(ratchet_message_length=e["ratchet_message_length"],
                           envelope_length=e["envelope_length"]))
    malformed = sealed["malformed_box"]
    for e in [malformed, *sealed["box_failures"]]:
        yield Request("sealed", "unseal", {"recipient_seed": e["recipient_seed"],
                                           "sealed": e["sealed"]}, {"error": e["error"]})
    for e in [malformed, *sealed["content_errors"]]:
        yield Request("sealed", "decode_content", {"content": e["content"]},
                      {"error": e["error"]})


def _kt_directory() -> Iterator[Request]:
    kt = load("kt_directory")
    keys = kt["keys"]
    trust = {"vrf_public": keys["vrf_public"], "log_verifier": keys["log_verifier"]}
    for e in kt["steps"]:
        yield Request("kt_directory", "vrf_label",
                      {"vrf_public": keys["vrf_public"], "vrf_proof": e["vrf_proof"],
                       "username": e["username"]}, _out(label=e["label"]))
        yield Request("kt_directory", "commitment",
                      {k: e[k] for k in ("opening", "label", "value")},
                      _out(commitment=e["commitment"]))
    for e in kt["lookups"]:
        yield Request("kt_directory", "verify_answer",
                      {"username": e["username"], "answer": e["answer"],
                       "checkpoint": e["checkpoint"], **trust}, _out(**e["result"]))
    for e in kt["failures"]:
        yield Request("kt_directory", "verify_answer",
                      {"username": e["username"], "answer": e["answer"],
                       "checkpoint": kt["steps"][e["size"] - 1]["checkpoint"], **trust},
                      {"error": e["error"]})


FILES: dict[str, Callable[[], Iterator[Request]]] = {
    "kdf": _kdf, "padding": _padding, "safety_numbers": _safety_numbers,
    "usernames": _usernames, "drbg": _drbg, "keys": _keys, "messages": _messages,
    "sealed": _sealed, "kt_directory": _kt_directory,
}
"""The vector files the contract covers, each with the requests made from it."""


def requests() -> Iterator[Request]:
    """Every request the kit sends, with the answer the vectors expect."""
    for make in FILES.values():
        yield from make()


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
        return (f"{self.file + '.json':22} {self.op:17} {self.checked:3} checked, "
                f"{len(self.failures)} failed, {self.skipped} unsupported  "
                f"{self.status}{first}")

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "op": self.op, "status": self.status,
                "checked": self.checked, "skipped": self.skipped, "failures": self.failures}


def run(command: list[str], timeout: float = 120) -> list[OpResult]:
    """Runs `command` once over every request; one result per (file, op), in order."""
    wanted = list(requests())
    lines = "".join(json.dumps({"file": r.file, "op": r.op, "input": r.input}) + "\n"
                    for r in wanted)
    done = subprocess.run(command, input=lines, capture_output=True, text=True,
                          timeout=timeout, check=False)
    answers = done.stdout.splitlines()
    results: dict[tuple[str, str], OpResult] = {}
    for number, request in enumerate(wanted):
        result = results.setdefault((request.file, request.op),
                                    OpResult(request.file, request.op))
        where = f"request {number + 1} ({json.dumps(request.input)[:80]})"
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
        if request.judge is not None and isinstance(got, dict):
            got = request.judge(got)
        if got != request.expected:
            result.failures.append(f"{where}: expected {json.dumps(request.expected)[:160]}, "
                                   f"got {json.dumps(got)[:160]}")
    return list(results.values())
