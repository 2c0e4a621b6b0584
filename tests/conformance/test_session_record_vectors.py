"""session_record.json covers what issue 8 asks of it; every entry itself is checked by
tests/conformance/test_vectors.py through conformance.vectors.check.session_record."""

from __future__ import annotations

from conformance.vectors import load


def test_the_file_covers_simultaneous_start_key_change_and_a_replayed_first_message() -> None:
    cases = {case["name"]: case for case in load("session_record")["cases"]}
    assert {"simultaneous start", "new session, late message", "identity key change",
            "replayed first message"} <= set(cases)
    replay = cases["replayed first message"]["steps"]
    assert any(step.get("error") for step in replay), "the replay must be refused"
