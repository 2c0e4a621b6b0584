"""What a lab's `check` prints: one line per criterion, PASS or FAIL and why, then
lines marked INFO that explain without grading; the exit code is 0 only if every
criterion passed."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TextIO


@dataclass(frozen=True)
class Criterion:
    """One graded line: `name` says what is checked, `why` what was seen."""

    name: str
    passed: bool
    why: str


@dataclass(frozen=True)
class Note:
    """One ungraded line: what a tool saw, so the student learns why, not only whether."""

    name: str
    why: str


@dataclass
class Report:
    lab: int
    criteria: list[Criterion] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def grade(self, name: str, passed: bool, why: str) -> bool:
        self.criteria.append(Criterion(name, passed, why))
        return passed

    def note(self, name: str, why: str) -> None:
        self.notes.append(Note(name, why))

    @property
    def passed(self) -> bool:
        return bool(self.criteria) and all(c.passed for c in self.criteria)

    def print(self, out: TextIO | None = None) -> int:
        """Prints the report; returns the exit code (0: every criterion passed)."""
        out = out or sys.stdout
        for c in self.criteria:
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.why}", file=out)
        for n in self.notes:
            print(f"INFO  {n.name}: {n.why}", file=out)
        done = sum(c.passed for c in self.criteria)
        print(f"lab {self.lab}: {done} of {len(self.criteria)} criteria passed", file=out)
        return 0 if self.passed else 1


class StudentCodeError(Exception):
    """The student's file could not be loaded: the message says which and why."""


def load_student_module(path: Path, name: str) -> ModuleType:
    """Imports the student's file `path` as module `name` (registered in sys.modules, so
    that dataclasses and pickling see it). Errors become one readable line."""
    if not path.is_file():
        raise StudentCodeError(f"{path} is missing (run `blindrelay lab start` again, "
                               "or restore it)")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StudentCodeError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise StudentCodeError(f"{path.name} failed to import: {type(exc).__name__}: "
                               f"{exc}") from exc
    return module
