"""bench/relay.py runs ours and the bare forwarder in paired rounds and prints the
median ratio with its range (a smoke run: one small configuration, short windows). No
figure is checked against a time (docs/BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_quick_run_prints_paired_medians_and_never_a_best() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "relay.py"), "--quick", "--pairs", "1",
         "--sizes", "200", "--repeat", "2", "--warmup", "0.2", "--seconds", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "medians of 2 paired round(s)" in out
    rounds = re.findall(r"K=1 +200 B round (\d) (ours|bare)", out)
    assert sorted(rounds) == [("1", "bare"), ("1", "ours"), ("2", "bare"), ("2", "ours")]
    # The order alternates: ours first in round 1, bare first in round 2.
    assert rounds[0] == ("1", "ours") and rounds[2] == ("2", "bare")
    row = next(x for x in out.splitlines() if re.match(r" +1 +200 B \|", x))
    assert re.search(r"\| +[\d.]+ \([\d.]+-[\d.]+\) \|", row), row
    assert "best" not in out.lower()
