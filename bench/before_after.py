"""Before/after: one benchmark script run in two checkouts, in paired rounds.

    .venv/bin/python bench/before_after.py --base ../baseline --rounds 7 protocol
    .venv/bin/python bench/before_after.py --base ../baseline --rounds 5 relay

Each round runs the script once in the base checkout and once in this one (order
alternating between rounds, so drift on the machine hits both sides alike), each
with its own virtual environment (`<checkout>/.venv/bin/python`). `protocol` is
pinned to one core (`taskset`, when present); `relay` starts its own server and
load-generator processes and pins nothing. For every figure the script prints the
median of the per-round ratios this/base with their min and max: never a best-of,
since one lucky run says nothing about a change.

Figures read: every "label  N unit/s" line of bench/protocol.py (higher is better);
for bench/relay.py, "ours env/s" and "ours/bare" of each table row.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

SCRIPTS = {
    "protocol": ["bench/protocol.py", "--quick"],
    "relay": ["bench/relay.py", "--quick", "--repeat", "1", "--pairs", "1", "10",
              "--sizes", "200"],
}
PROTOCOL_LINE = re.compile(r"^(?P<label>\S.*?)\s{2,}(?P<value>[\d,]+)\s+\S+/s\s")
RELAY_ROW = re.compile(r"^\s*(?P<k>\d+)\s+(?P<size>\S+ ?\S*?)\s+\|\s+(?P<ratio>[\d.]+) \([^)]*\)"
                       r"\s+\|\s+(?P<ours>\d+) \([^)]*\)\s+(?P<bare>\d+) \(")
"""A row of bench/relay.py's table: medians of paired rounds with their ranges."""
OLD_RELAY_ROW = re.compile(r"^\s*(?P<k>\d+)\s+(?P<size>\S+ ?\S*?)\s+\|\s+(?P<ours>\d+)\s+"
                           r"(?P<bare>\d+)\s+(?P<ratio>[\d.]+)\s+\|")
"""The same row as bench/relay.py printed it before paired rounds (a base checkout)."""


def parse(kind: str, output: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    for line in output.splitlines():
        if kind == "protocol":
            m = PROTOCOL_LINE.match(line)
            if m and not line.startswith("ratio"):
                figures[m["label"].strip()] = float(m["value"].replace(",", ""))
        else:
            m = RELAY_ROW.match(line) or OLD_RELAY_ROW.match(line)
            if m:
                row = f"K={m['k']} {m['size'].strip()}"
                figures[f"{row} ours env/s"] = float(m["ours"])
                figures[f"{row} ours/bare"] = float(m["ratio"])
    if not figures:
        raise SystemExit(f"no figures found in the output:\n{output}")
    return figures


def run(checkout: Path, kind: str) -> dict[str, float]:
    cmd = [str(checkout / ".venv/bin/python"), *SCRIPTS[kind]]
    if kind == "protocol" and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {checkout}:\n{done.stdout}{done.stderr}")
    return parse(kind, done.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("kind", choices=sorted(SCRIPTS))
    p.add_argument("--base", type=Path, required=True, help="the checkout to compare against")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    ratios: dict[str, list[float]] = {}
    values: dict[str, tuple[list[float], list[float]]] = {}
    for i in range(args.rounds):
        order = [(args.base, 0), (HERE, 1)] if i % 2 == 0 else [(HERE, 1), (args.base, 0)]
        got: dict[int, dict[str, float]] = {}
        for checkout, side in order:
            got[side] = run(checkout.resolve(), args.kind)
        for name, new in got[1].items():
            old = got[0].get(name)
            if old:
                ratios.setdefault(name, []).append(new / old)
                values.setdefault(name, ([], []))[0].append(old)
                values[name][1].append(new)
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"{args.kind}: {args.rounds} paired rounds, this checkout vs {args.base} "
          "(ratio > 1: this one is faster)")
    print(f"{'figure':<58} {'base median':>12} {'this median':>12}  ratio median [min, max]")
    for name, rs in ratios.items():
        olds, news = values[name]
        print(f"{name:<58} {statistics.median(olds):>12,.2f} {statistics.median(news):>12,.2f}  "
              f"{statistics.median(rs):.3f} [{min(rs):.3f}, {max(rs):.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
