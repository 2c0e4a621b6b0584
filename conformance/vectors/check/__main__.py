"""`python -m conformance.vectors.check [NAME...]`: one line per vector file; exit 1 on
any failure (docs/PROTOCOL.md section 17.5)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.vectors import NAMES
from conformance.vectors.check import check_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.vectors.check",
        description="Check this implementation against the test vectors.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"vector files to check (default: all of {', '.join(NAMES)})")
    parser.add_argument("--dir", type=Path, metavar="DIR",
                        help="read NAME.json from DIR instead of the packaged vectors")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"no vector file {', '.join(unknown)} (known: {', '.join(NAMES)})")
    failed = 0
    for result in check_all(args.names or None, args.dir):
        status = "ok" if result.ok else "FAIL"
        print(f"{result.name + '.json':22} {result.checked:4} entries checked, "
              f"{len(result.failures)} failed  {status}")
        for failure in result.failures:
            print(f"    {failure}")
        failed += not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
