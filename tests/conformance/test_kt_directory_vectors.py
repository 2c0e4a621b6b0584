"""kt_directory.json covers every kind of update and every shape of lookup answer;
every entry itself is checked by tests/conformance/test_vectors.py through
conformance.vectors.check.kt_directory."""

from __future__ import annotations

from conformance.vectors import load
from protocol.wire.kt.directory import EntryKind


def test_the_steps_use_every_kind_of_update() -> None:
    steps = load("kt_directory")["steps"]
    assert {step["kind"] for step in steps} == {kind.name for kind in EntryKind}
    change = next(step for step in steps if step["kind"] == "CHANGE")
    assert len(bytes.fromhex(change["signature"])) == 64
    assert [step["index"] for step in steps] == list(range(len(steps)))


def test_the_lookups_cover_the_empty_log_absent_deleted_and_rebound_names() -> None:
    lookups = load("kt_directory")["lookups"]
    results = {(lookup["size"], lookup["result"]["found"], lookup["result"]["kind"])
               for lookup in lookups}
    assert (0, False, None) in results  # the empty log: no head entry
    assert any(size > 0 and not found for size, found, _ in results)  # never registered
    assert {"REGISTER", "CHANGE", "RESET", "DELETE"} <= {kind for _, _, kind in results}


def test_the_failures_cover_a_wrong_name_a_wrong_head_a_bad_opening_and_bad_bytes() -> None:
    errors = {failure["error"] for failure in load("kt_directory")["failures"]}
    assert errors == {"VrfError", "ProofError", "DecodeError"}
