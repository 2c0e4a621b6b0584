"""bench/metadata.py runs and prints its figures (a smoke run with a tiny group). The
figures themselves are measured by running the benchmark (docs/BENCHMARKS.md); the
tests of what they show are tests/teaching/test_harvest.py and test_scenarios.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_quick_run_prints_every_configuration() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "metadata.py"), "--quick", "--users", "4",
         "--edges", "3", "--messages", "6", "--gap", "0.1", "--delay", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for figure in ("4 users, 3 contact pairs, 6 texts per configuration",
                   "receipt delay D = 0.5 s", "first contact (setup, key fetches and lookups",
                   "authenticated            shared    1.00 (1.00-1.00)   1.00 (1.00-1.00)",
                   "sealed                   own", "sealed + receipt delay   shared",
                   "done: 1 round(s)"):
        assert figure in out, figure
