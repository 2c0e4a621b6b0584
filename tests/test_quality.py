"""The static checks run as part of the test command, so CI fails when they do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    result = _run(ruff, "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGES = ("protocol", "server", "client", "conformance", "teaching", "blindrelay", "bench",
            "tests")


def test_mypy_strict_on_every_package() -> None:
    """Every package of the project and its tests, not only protocol/ (issue 8)."""
    result = _run(sys.executable, "-m", "mypy", "--strict", *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr
