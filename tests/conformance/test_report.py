"""conformance/report.py: the lines, JSON and JUnit every conformance kit writes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

from conformance.report import (
    FAIL,
    PASS,
    SKIP,
    Outcome,
    Report,
    exit_status,
    listing,
    printable,
    summary,
    write_json,
    write_junit,
)

OUTCOMES = [Outcome("a.one", PASS, seconds=0.5), Outcome("a.two", FAIL, "got\x1b[31mred"),
            Outcome("b.three", SKIP, "too slow")]


def test_lines_never_carry_control_characters() -> None:
    assert OUTCOMES[0].line() == "PASS a.one"
    assert OUTCOMES[1].line() == "FAIL a.two: got\\x1b[31mred"
    assert printable("ok\u202etxt\n") == "ok\\u202etxt\\n"
    assert summary(OUTCOMES) == "1 passed, 1 failed, 1 skipped"


def test_strict_turns_a_skip_into_a_failed_run() -> None:
    only_skip = [Outcome("a", PASS), Outcome("b", SKIP, "why")]
    assert exit_status(only_skip) == 0
    assert exit_status(only_skip, strict=True) == 1
    assert "strict" in summary(only_skip, strict=True)
    assert exit_status([]) == 1


def test_json_document() -> None:
    out = StringIO()
    write_json(out, Report("relay", "ws://x:1", OUTCOMES, extra={"cleanup": {"left": 0}}))
    (text,) = out.getvalue().splitlines()
    doc = json.loads(text)
    assert doc["schema"] == 1 and doc["suite"] == "relay" and doc["passed"] is False
    assert doc["summary"] == {"PASS": 1, "FAIL": 1, "SKIP": 1}
    assert doc["checks"][1] == {"name": "a.two", "status": "FAIL",
                                "reason": "got\x1b[31mred", "seconds": 0.0}
    assert doc["cleanup"] == {"left": 0}
    assert text.isascii()


def test_junit(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    write_junit(path, Report("relay", "ws://x:1", OUTCOMES))
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["a.two"].find("failure") is not None
    assert cases["b.three"].find("skipped") is not None
    write_junit(path, Report("relay", "ws://x:1", OUTCOMES, strict=True))
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "2"


def test_listing_aligns_names() -> None:
    assert listing([("a", "first  one"), ("bbb", "second")]) == ["a    first one",
                                                                  "bbb  second"]
