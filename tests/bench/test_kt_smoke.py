"""bench/kt.py runs and prints its figures (a smoke run with tiny sizes). No figure is
checked against a time: speed is measured by running the benchmark, not by tests
(docs/BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_quick_run_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "kt.py"), "--quick", "--entries", "300",
         "--lookups", "10", "--appends", "3", "--batch", "40", "--reps", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for figure in ("time to build", "resident memory", "answer bytes, 10 registered names",
                   "answer bytes, 20 absent names", "client: verify_answer, all",
                   "VRF verify (label_of)", "append + checkpoint",
                   "40 appends (new names) + 1 checkpoint", "re-bindings (labels cached)",
                   "leaves under the owner's label found         1",
                   "client work (decode, RangeVerifier, openings)",
                   "download: 1 KT_ENTRIES answers", "done: 383 entries"):
        assert figure in out, figure
