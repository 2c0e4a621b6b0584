"""Machine-readable reports of a conformance run: `--json` (one JSON document) and
`--junit FILE` (JUnit XML, as CI systems read it). Written for the client kit with
nothing client-specific in it, so that the relay suite can share it: a result is
anything with `name`, `status` (PASS, FAIL or SKIP), `reason` and `seconds`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class Result(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def seconds(self) -> float: ...


def summary(results: Sequence[Result]) -> str:
    """The closing line: 'N passed, M failed' and ', K skipped' when any were."""
    passed = sum(r.status == PASS for r in results)
    failed = sum(r.status == FAIL for r in results)
    skipped = sum(r.status == SKIP for r in results)
    line = f"{passed} passed, {failed} failed"
    return line + (f", {skipped} skipped" if skipped else "")


def line(result: Result) -> str:
    """'PASS name' or 'FAIL name: reason' (one line, whatever the reason holds)."""
    if result.status == PASS:
        return f"PASS {result.name}"
    reason = " ".join(result.reason.split()) or "no reason given"
    return f"{result.status} {result.name}: {reason}"


def to_json(suite: str, target: str, results: Sequence[Result],
            descriptions: dict[str, str] | None = None) -> str:
    """One JSON document: the suite, what it ran against, every result, the counts."""
    descriptions = descriptions or {}
    doc: dict[str, Any] = {
        "suite": suite,
        "target": target,
        "results": [{"name": r.name, "status": r.status, "reason": r.reason,
                     "seconds": round(r.seconds, 3),
                     "description": descriptions.get(r.name, "")} for r in results],
        "passed": sum(r.status == PASS for r in results),
        "failed": sum(r.status == FAIL for r in results),
        "skipped": sum(r.status == SKIP for r in results),
    }
    return json.dumps(doc, indent=2)


def write_junit(path: Path, suite: str, results: Sequence[Result]) -> None:
    """A JUnit XML file with one testsuite and a testcase per check."""
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                       failures=str(sum(r.status == FAIL for r in results)),
                       skipped=str(sum(r.status == SKIP for r in results)), errors="0",
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=suite, name=r.name,
                             time=f"{r.seconds:.3f}")
        if r.status == FAIL:
            ET.SubElement(case, "failure", message=r.reason).text = r.reason
        elif r.status == SKIP:
            ET.SubElement(case, "skipped", message=r.reason)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
