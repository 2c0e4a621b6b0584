"""bench/protocol.py runs and prints its figures as paired medians (a smoke run). No
figure is checked against a time: speed is measured by running the benchmark, not by
tests (docs/BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_quick_run_prints_paired_medians_and_never_a_best() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "protocol.py"), "--quick", "--rounds", "3",
         "--sample-ms", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "3 paired rounds" in out
    assert "pinned to CPU" in out or "not pinned" in out
    for figure in ("one-direction via Ratchet", "one-direction via Session",
                   "alternating direction", "PQXDH handshakes",
                   "floor: the same message, plain cryptography calls", "lean floor"):
        line = next(x for x in out.splitlines() if x.startswith(figure))
        assert re.search(r"us/\w+ \(min [\d.]+, max [\d.]+\)$", line), line
    for ratio in ("ratio ours/floor, one-direction via Ratchet",
                  "ratio ours/floor, one-direction via Session"):
        line = next(x for x in out.splitlines() if x.startswith(ratio))
        assert re.search(r"median [\d.]+ \(min [\d.]+, max [\d.]+ over 3 rounds", line), line
    assert "best" not in out.lower()
