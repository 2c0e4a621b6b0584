"""The `blindrelay lab` command line: list, start N, check N (its parser is in
blindrelay/cli.py, which builds its parser without importing teaching: see
tests/test_layering.py)."""

from __future__ import annotations

import argparse
import sys

from teaching.labs import LABS, LabError, check, get, start


def run(args: argparse.Namespace) -> int:
    try:
        if args.lab_action == "list":
            for lab in LABS.values():
                print(f"{lab.number}  {lab.title}: {lab.summary}")
            return 0
        if args.lab_action == "start":
            target = start(args.number, args.dir, args.force)
            lab = get(args.number)
            print(f"lab {lab.number} ({lab.title}) is in {target}: read "
                  f"{target / 'README.md'}, then run `blindrelay lab check {lab.number}"
                  + (f" --dir {target}`" if args.dir else "` from this directory"))
            return 0
        report = check(args.number, args.dir)
    except LabError as exc:
        print(f"blindrelay lab: {exc}", file=sys.stderr)
        return 2
    return report.print()
