"""bench/start.py runs and prints its figures (one round). No figure is checked against
a time: speed is measured by running the benchmark, not by tests (docs/BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_one_round_prints_every_row() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "start.py"), "--rounds", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("python -c pass", "import cryptography, nacl", "Argon2id (profile cost)",
                "blindrelay --help", "blindrelay send", "blindrelay recv", "1 paired rounds"):
        assert row in result.stdout, row
