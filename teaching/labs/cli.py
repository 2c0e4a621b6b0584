"""The `blindrelay lab` command line: list, start N, check N."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from teaching.labs import LABS, LabError, check, get, start


def add_parser(sub: Any) -> None:
    """Adds `lab` to blindrelay's subcommands (`sub` is argparse's subparsers object)."""
    lab = sub.add_parser("lab", help="graded exercises on a real relay",
                         description="Graded labs: `start N` copies lab N's material into a "
                         "directory, `check N` grades it (one line per criterion, exit 0 "
                         "when all pass).")
    actions = lab.add_subparsers(dest="lab_action", required=True)
    actions.add_parser("list", help="list the labs")
    for name, text in (("start", "copy lab N's README and files into a lab directory"),
                       ("check", "grade the lab directory")):
        p = actions.add_parser(name, help=text)
        p.add_argument("number", type=int, metavar="N")
        p.add_argument("--dir", type=Path, help="the lab directory (default: "
                       "./blindrelay-labN-NAME)")
        if name == "start":
            p.add_argument("--force", action="store_true",
                           help="overwrite the lab's files if they exist")


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
