"""bench/mls.py runs and prints every figure (a smoke run with small sizes). No figure
is checked against a time: speed is measured by running the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_small_run_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mls.py"), "--sizes", "4", "10", "--rounds",
         "2", "--messages", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for figure in ("4 members  self-update", "10 members  add", "10 members  remove",
                   "MLS (10-member group)", "one-to-one ratchet",
                   "time ratio MLS / ratchet: median"):
        assert figure in out, figure
