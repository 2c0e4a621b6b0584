"""`blindrelay lab list|start N|check N`: graded exercises on a real relay.

Each lab is a directory of material shipped in this package (teaching/labs/material/
labN: a README for the student and the files they edit); `start` copies it into a lab
directory, `check` grades what the student made of it, one line per criterion
(teaching/labs/grading.py), and exits 0 only if every criterion passes.

The modules that grade (provider, broken_client, hostile_relay) are imported only
when their lab is checked: lab 2 runs the student's code in a fresh interpreter, where
nothing of protocol.e2e may be imported before the student's copy takes its place.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from teaching.labs.grading import Report


@dataclass(frozen=True)
class Lab:
    number: int
    slug: str
    title: str
    summary: str
    files: tuple[str, ...]
    """The material `start` copies (README.md first)."""
    grader: str
    """The module under teaching.labs whose `async check(lab_dir) -> Report` grades it."""

    @property
    def default_dir(self) -> Path:
        return Path(f"blindrelay-lab{self.number}-{self.slug}")


LABS: dict[int, Lab] = {lab.number: lab for lab in (
    Lab(1, "provider", "The provider that keeps everything",
        "hide an archive of every envelope in a relay; see which tools catch it",
        ("README.md", "keeper.py"), "provider"),
    Lab(2, "broken-client", "Fix the broken client",
        "repair planted flaws in the ratchet's KDF and MAC until vectors and interop pass",
        ("README.md", "kdf.py", "aead.py"), "broken_client"),
    Lab(3, "hostile-relay", "Be the hostile relay",
        "write a relay that tries to read messages; see which client check stops it",
        ("README.md", "my_relay.py"), "hostile_relay"),
)}


class LabError(Exception):
    """A one-line refusal for the command line (unknown lab, existing directory...)."""


def get(number: int) -> Lab:
    try:
        return LABS[number]
    except KeyError:
        raise LabError(f"no lab {number} (labs: {', '.join(map(str, LABS))}; "
                       "see `blindrelay lab list`)") from None


def material(lab: Lab, name: str) -> bytes:
    return resources.files(__package__).joinpath(
        "material", f"lab{lab.number}", name).read_bytes()


def start(number: int, directory: Path | None = None, force: bool = False) -> Path:
    """Copies lab `number`'s material into `directory` (default: ./blindrelay-labN-slug);
    refuses to overwrite a student's work unless `force`."""
    lab = get(number)
    target = directory or lab.default_dir
    existing = [name for name in lab.files if (target / name).exists()]
    if existing and not force:
        raise LabError(f"{target} already has {', '.join(existing)}: your work is kept "
                       "(use --force to start over)")
    target.mkdir(parents=True, exist_ok=True)
    for name in lab.files:
        (target / name).write_bytes(material(lab, name))
    return target


def check(number: int, directory: Path | None = None) -> Report:
    lab = get(number)
    target = directory or lab.default_dir
    if not target.is_dir():
        raise LabError(f"no lab directory {target} (run `blindrelay lab start {number}` "
                       "first, or give --dir)")
    grader = importlib.import_module(f"{__name__}.{lab.grader}")
    report: Report = asyncio.run(grader.check(target.resolve()))
    return report
