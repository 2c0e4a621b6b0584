"""The reusable vector checker: does an implementation reproduce conformance/vectors/*.json?

One module per vector file (`conformance.vectors.check.<name>`), each with
`entries(doc=None) -> list[Entry]` (every checkable unit of the file, none left out) and
`check(entry)`, which returns quietly or raises `conformance.errors.VectorMismatch`
naming the file, the entry and the field (or `MalformedVector` for an unreadable
entry). `CHECKERS` maps each name of `conformance.vectors.NAMES` to its module, so a new
vector file needs: a `gen_<name>` module, a `check/<name>.py` module and its name in
NAMES (docs/PROTOCOL.md section 17.5).

    .venv/bin/python -m conformance.vectors.check            # every file
    .venv/bin/python -m conformance.vectors.check keys kdf   # some files
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import ConformanceError
from conformance.vectors import NAMES, load_from
from conformance.vectors.check.support import Entry, Json


@dataclass(frozen=True)
class Checker:
    """The checks of one vector file."""

    name: str
    entries: Callable[..., list[Entry]]
    check: Callable[[Entry], None]


def _checker(name: str) -> Checker:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise ImportError(f"vector file {name!r} is in NAMES but has no checker: add "
                          f"conformance/vectors/check/{name}.py (docs/PROTOCOL.md 17.5)") from exc
    entries, check = getattr(module, "entries", None), getattr(module, "check", None)
    if not callable(entries) or not callable(check):
        raise TypeError(f"{module.__name__} must define entries() and check(entry)")
    return Checker(name, entries, check)


CHECKERS: dict[str, Checker] = {name: _checker(name) for name in NAMES}


@dataclass(frozen=True)
class FileResult:
    """The outcome of checking one vector file: how many entries, which failed."""

    name: str
    checked: int
    failures: tuple[ConformanceError, ...]

    @property
    def ok(self) -> bool:
        return not self.failures and self.checked > 0


def check_file(name: str, doc: Json | None = None) -> FileResult:
    """Check every entry of vector file `name` (or of `doc`, a file of that format)."""
    checker = CHECKERS[name]
    found = checker.entries() if doc is None else checker.entries(doc)
    failures: list[ConformanceError] = []
    for entry in found:
        try:
            checker.check(entry)
        except ConformanceError as exc:
            failures.append(exc)
    return FileResult(name, len(found), tuple(failures))


def check_all(names: Iterable[str] | None = None,
              directory: Path | None = None) -> Iterator[FileResult]:
    """Check the named vector files (all of NAMES by default), yielding one result each;
    from `directory` instead of the packaged files if given."""
    for name in NAMES if names is None else names:
        yield check_file(name, None if directory is None else load_from(directory, name))


__all__ = ["CHECKERS", "Checker", "Entry", "FileResult", "check_all", "check_file"]
