"""bench/connections.py runs a short paired round and prints its summary. No figure is
checked against an aim here: memory is measured by running the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_one_short_round_prints_the_paired_summary() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "connections.py"), "--connections", "40",
         "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("median of 1 round(s) (min-max)", "ours (authenticated)", "bare websockets",
                "ours/bare (per round)", "answered PREKEY_COUNT (logged in): 40 of 40"):
        assert row in result.stdout, row
