"""The implementation reproduces every value in conformance/vectors/*.json, from both sides.

The checks themselves live in `conformance.vectors.check` (one module per vector file)
so testers can run them (`python -m conformance.vectors.check`); this file runs every
entry through them, and shows that they fail when an entry is tampered with: a checker
that cannot fail would prove nothing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import conformance.vectors
from conformance.errors import ConformanceError, MalformedVector, VectorMismatch
from conformance.vectors import NAMES, load
from conformance.vectors.check import CHECKERS, Entry, check_all, check_file
from conformance.vectors.check.__main__ import main as check_main

VECTORS = Path(conformance.vectors.__file__).parent
ALL = [entry for name in NAMES for entry in CHECKERS[name].entries()]
IDS = [f"{entry.file}:{entry.id}"[:80] for entry in ALL]
HEX = re.compile(r"(?:[0-9a-f]{2})+")

Path_ = tuple[str | int, ...]


# ------------------------------------------------------------------ every entry passes


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_entry(entry: Entry) -> None:
    CHECKERS[entry.file].check(entry)


def test_every_vector_file_has_a_checker_and_every_field_an_entry() -> None:
    """No file and no top-level field is left out: an unchecked field is a silent skip."""
    on_disk = sorted(path.stem for path in VECTORS.glob("*.json"))
    assert sorted(NAMES) == on_disk
    assert sorted(CHECKERS) == on_disk
    for name in NAMES:
        doc = load(name)
        found = CHECKERS[name].entries()
        covered = {key for entry in found for key in entry.covers}
        assert set(doc) - {"description", "format"} == covered, name
        for key, value in doc.items():
            indices = {e.id.split(" ")[0] for e in found if re.match(rf"{key}\[\d+\]", e.id)}
            if indices:  # a list checked element by element: every element, once
                assert indices == {f"{key}[{i}]" for i in range(len(value))}, (name, key)


# ------------------------------------------------------------- tampering must be caught


def leaves(node: Any, path: Path_ = ()) -> list[tuple[Path_, Any]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in leaves(value, (*path, key))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in leaves(value, (*path, i))]
    return [(path, node)]


def altered(value: Any) -> Any:
    """A different value of the same kind: hex keeps being hex, text keeps being text."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and HEX.fullmatch(value):
        return value[:-1] + f"{int(value[-1], 16) ^ 1:x}"
    if isinstance(value, str):
        return "X" + value
    raise AssertionError(f"cannot alter {value!r}")


def set_at(data: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


# Entries whose last byte string is not what their check compares: the field that is.
TAMPER: dict[tuple[str, str], Path_] = {
    ("keys", "ed25519 seeds from rng.ed25519"): ("ed25519", 0, "seed"),
    ("keys", "x25519 privates from rng.x25519"): ("x25519", 1, "private"),
    ("keys", "mlkem768 seeds from rng.mlkem768"): ("mlkem768", 1, "seed"),
    ("kdf", "inputs from rng"): ("aead", 4, "plaintext"),
    ("padding", "valid bodies from rng"): ("valid", 3, "body"),
    ("pqxdh", "cases (initiator)"): ("sk",),
    ("pqxdh", "cases (responder)"): ("ad",),
    ("frames", "client_frames"): ("request_id",),
    ("frames", "server_frames"): ("type",),
}


def kind(entry: Entry) -> str:
    """The entry's kind: its section for list elements, else its id."""
    if "[" not in entry.id:
        return entry.id
    section = entry.id.split("[", 1)[0]
    side = re.search(r"\((initiator|responder|first message)\)$", entry.id)
    return f"{section} ({side.group(1)})" if side and section == "cases" else section


def tampered(entry: Entry) -> tuple[Entry, str]:
    """`entry` with one field the check compares changed, and that field's path."""
    data = copy.deepcopy(entry.data)
    if (entry.file, kind(entry)) == ("conversation", "coverage"):
        # Drop every rejected delivery: the conversation no longer covers each rejection.
        data["events"] = [e for e in data["events"] if e.get("result", "ok") == "ok"]
        return replace(entry, data=data), "events"
    if isinstance(data, str):  # a bare valid username: one upper-case letter breaks it
        return replace(entry, data="X" + data), "(value)"
    if isinstance(data, dict) and "error" in data:
        path: Path_ = ("error",)
    elif (entry.file, kind(entry)) in TAMPER:
        path = TAMPER[entry.file, kind(entry)]
    else:
        byte_strings = [p for p, v in leaves(data) if isinstance(v, str) and HEX.fullmatch(v)]
        path = byte_strings[-1] if byte_strings else leaves(data)[-1][0]
    value = data
    for step in path:
        value = value[step]
    return replace(entry, data=set_at(data, path, altered(value))), ".".join(map(str, path))


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_tampered_entry_fails(entry: Entry) -> None:
    bad, field = tampered(entry)
    with pytest.raises(VectorMismatch) as info:
        CHECKERS[entry.file].check(bad)
    assert (info.value.file, info.value.entry) == (entry.file, entry.id), field


def test_a_mismatch_names_file_entry_and_field() -> None:
    entry = next(e for e in CHECKERS["keys"].entries() if e.id == "ed25519[3] rfc8032_test1")
    data = copy.deepcopy(entry.data)
    data["signature"] = "00" * 64
    with pytest.raises(VectorMismatch) as info:
        CHECKERS["keys"].check(replace(entry, data=data))
    message = str(info.value)
    assert message.startswith("keys.json, ed25519[3] rfc8032_test1, field 'signature': ")
    # Long byte strings are abbreviated; the full values stay on the exception.
    assert "64 bytes 000000000000..000000000000" in message
    assert info.value.expected == bytes(64) and len(info.value.got) == 64
    assert entry.data["signature"] not in message


def test_a_mismatch_never_prints_a_whole_key() -> None:
    entry = next(e for e in CHECKERS["keys"].entries() if e.id == "x25519[0] drbg_0")
    data = copy.deepcopy(entry.data)
    data["public"] = "11" * 32
    with pytest.raises(VectorMismatch) as info:
        CHECKERS["keys"].check(replace(entry, data=data))
    assert entry.data["private"] not in str(info.value)
    assert entry.data["public"] not in str(info.value)


def test_a_wrong_error_name_is_a_mismatch_on_error() -> None:
    entry = CHECKERS["padding"].entries()[-1]
    bad = replace(entry, data={**entry.data, "error": "DecryptionFailed"})
    with pytest.raises(VectorMismatch) as info:
        CHECKERS["padding"].check(bad)
    assert (info.value.field, info.value.expected) == ("error", "DecryptionFailed")
    assert info.value.got == entry.data["error"]


def test_an_unreadable_entry_is_malformed_not_a_crash() -> None:
    entry = CHECKERS["kdf"].entries()[1]
    for data in ({k: v for k, v in entry.data.items() if k != "dh_output"},
                 {**entry.data, "dh_output": "not hex"}):
        with pytest.raises(MalformedVector) as info:
            CHECKERS["kdf"].check(replace(entry, data=data))
        assert isinstance(info.value, ConformanceError)
        assert str(info.value).startswith("kdf.json, kdf_rk[0]: malformed entry")


# ------------------------------------------------------------ files and the command


def test_check_all_reports_each_file() -> None:
    results = list(check_all(["drbg", "usernames"]))
    assert [(r.name, r.ok, r.failures) for r in results] == [("drbg", True, ()),
                                                             ("usernames", True, ())]
    assert results[1].checked == len(CHECKERS["usernames"].entries()) > 20


def test_check_file_reports_every_failure_of_a_tampered_file() -> None:
    doc = copy.deepcopy(load("padding"))
    for entry in doc["invalid"]:
        entry["error"] = "BadSignature"
    result = check_file("padding", doc)
    assert not result.ok
    assert len(result.failures) == len(doc["invalid"])
    assert all(isinstance(f, VectorMismatch) and f.field == "error" for f in result.failures)


def write_vectors(directory: Path, change: Callable[[dict[str, Any]], None] | None) -> None:
    for name in NAMES:
        doc = copy.deepcopy(load(name))
        if change is not None and name == "kdf":
            change(doc)
        (directory / f"{name}.json").write_text(json.dumps(doc))


def test_command_passes_on_good_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["drbg", "kdf"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["drbg.json", "kdf.json"]
    assert all(line.endswith("0 failed  ok") for line in lines)


def test_command_fails_on_a_tampered_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["kdf_ck"][0]["message_key"] = "00" * 32

    write_vectors(tmp_path, change)
    assert check_main(["--dir", str(tmp_path), "kdf", "drbg"]) == 1
    out = capsys.readouterr().out
    assert "kdf.json" in out and "1 failed  FAIL" in out
    assert "kdf.json, kdf_ck[0], field 'message_key'" in out
    assert "drbg.json" in out and "0 failed  ok" in out


def test_command_rejects_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        check_main(["nonesuch"])
    assert info.value.code == 2
    assert "no vector file nonesuch" in capsys.readouterr().err
