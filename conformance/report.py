"""What every conformance kit prints: one line per check, a summary line, and the
same results for machines (`--json`, `--junit FILE`).

Shared by the relay suite (conformance/relay) and the client kit, so that a tester's
CI reads both the same way. It knows nothing of relays or clients: a kit turns its
own results into `Outcome`s and hands them here.

    outcomes = [Outcome("hello.first_frame", PASS), Outcome("x.y", SKIP, "why")]
    print(line(o)) for each; print(summary(outcomes))
    write_json(sys.stdout, Report("relay", url, outcomes, strict=False))
    write_junit(Path("out.xml"), Report(...))
    exit_status(outcomes, strict)          # 0 or 1

Reasons may quote what the system under test sent (an ERROR message, a client's
output), so `printable` escapes every control character before a line reaches a
terminal: a hostile relay must not drive the tester's terminal. JSON and XML escape
on their own (JSON's \\u escapes, XML's character rules), so machines get the text
as it was, minus what XML cannot carry at all.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
STATUSES = (PASS, FAIL, SKIP)

_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """`text` with every non-printable character (escape sequences, newlines, bidi
    overrides) shown as a Python-style escape: safe to print to a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's result. `status` is PASS, FAIL or SKIP; `reason` says why (empty for
    PASS); `seconds` is how long it took."""

    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def skipped(self) -> bool:
        return self.status == SKIP

    def line(self) -> str:
        """'PASS name' or 'FAIL name: reason' on one line, safe for a terminal."""
        if self.status == PASS:
            return f"PASS {printable(self.name)}"
        reason = " ".join(self.reason.split()) or "no reason given"
        return f"{self.status} {printable(self.name)}: {printable(reason)}"


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """{'PASS': n, 'FAIL': m, 'SKIP': k}."""
    out = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        out[o.status] += 1
    return out


def summary(outcomes: Sequence[Outcome], strict: bool = False) -> str:
    """The closing line: 'N passed, M failed' and ', K skipped' when any were (with
    '(--strict: a skip fails the run)' when that made the run fail)."""
    n = counts(outcomes)
    line = f"{n[PASS]} passed, {n[FAIL]} failed"
    if n[SKIP]:
        line += f", {n[SKIP]} skipped"
        if strict:
            line += " (--strict: a skip fails the run)"
    return line


def run_failed(outcomes: Sequence[Outcome], strict: bool = False) -> bool:
    """A run fails if a check failed, or (strict) was skipped, or none ran."""
    if not outcomes:
        return True
    return any(o.failed or (strict and o.skipped) for o in outcomes)


def exit_status(outcomes: Sequence[Outcome], strict: bool = False) -> int:
    """0 when the run passed, 1 when it failed (see `run_failed`)."""
    return 1 if run_failed(outcomes, strict) else 0


def listing(entries: Iterable[tuple[str, str]]) -> list[str]:
    """`--list`: 'name  description' per check, the names padded to one column."""
    rows = [(printable(name), " ".join(doc.split())) for name, doc in entries]
    width = max((len(n) for n, _ in rows), default=0)
    return [f"{n.ljust(width)}  {d}".rstrip() for n, d in rows]


@dataclass(frozen=True, slots=True)
class Report:
    """A whole run: which kit (`suite`: 'relay', 'client'), what it ran against
    (`target`: a URL, a command line), the outcomes, whether --strict was on, and
    anything else worth keeping (`extra`: JSON-able, e.g. the cleanup's tally)."""

    suite: str
    target: str
    outcomes: Sequence[Outcome]
    strict: bool = False
    extra: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def failed(self) -> bool:
        return run_failed(self.outcomes, self.strict)

    def to_json(self) -> dict[str, object]:
        """The `--json` document (schema 1):
        {"schema": 1, "suite", "target", "strict", "passed": bool, "started": unix time,
         "summary": {"PASS": n, "FAIL": m, "SKIP": k},
         "checks": [{"name", "status", "reason", "seconds"}...], **extra}"""
        doc: dict[str, object] = {
            "schema": 1,
            "suite": self.suite,
            "target": self.target,
            "strict": self.strict,
            "passed": not self.failed,
            "started": round(self.started, 3),
            "summary": counts(self.outcomes),
            "checks": [{"name": o.name, "status": o.status, "reason": o.reason,
                        "seconds": round(o.seconds, 3)} for o in self.outcomes],
        }
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc

    def junit(self) -> bytes:
        """JUnit XML (the common subset CI servers read): one <testsuite> named
        'blindrelay-conformance-<suite>', a <testcase> per check with <failure> or
        <skipped>. Under --strict a skip is written as a failure, so a CI dashboard
        agrees with the exit status."""
        n = counts(self.outcomes)
        fails = n[FAIL] + (n[SKIP] if self.strict else 0)
        skips = 0 if self.strict else n[SKIP]
        suites = ET.Element("testsuites")
        suite = ET.SubElement(suites, "testsuite", {
            "name": f"blindrelay-conformance-{self.suite}",
            "tests": str(len(self.outcomes)),
            "failures": str(fails),
            "errors": "0",
            "skipped": str(skips),
            "time": f"{sum(o.seconds for o in self.outcomes):.3f}",
        })
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "target", "value": _xml(self.target)})
        ET.SubElement(props, "property", {"name": "strict", "value": str(self.strict).lower()})
        for o in self.outcomes:
            group = o.name.split(".", 1)[0]
            case = ET.SubElement(suite, "testcase", {
                "classname": f"{self.suite}.{group}", "name": _xml(o.name),
                "time": f"{o.seconds:.3f}"})
            reason = _xml(" ".join(o.reason.split()) or "no reason given")
            if o.failed:
                ET.SubElement(case, "failure", {"message": reason}).text = _xml(o.reason)
            elif o.skipped and self.strict:
                ET.SubElement(case, "failure", {"message": f"SKIP under --strict: {reason}"})
            elif o.skipped:
                ET.SubElement(case, "skipped", {"message": reason})
        body: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
        return body


def _xml(text: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped: show them instead."""
    return _XML_UNSAFE.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def write_json(out: TextIO, report: Report) -> None:
    """The report as one JSON document on one line (ASCII only)."""
    out.write(json.dumps(report.to_json(), ensure_ascii=True, sort_keys=False) + "\n")
    out.flush()


def write_junit(path: Path, report: Report) -> None:
    """The report as JUnit XML at `path` (written whole, then renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(report.junit())
    tmp.replace(path)
