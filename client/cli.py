"""The `blindrelay` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blindrelay",
        description="End-to-end encrypted chat over a relay that only ever holds ciphertext.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="show a PQXDH + Double Ratchet conversation and what a "
                          "relay would see of it")
    demo.add_argument("--messages", type=int, default=6, help="how many messages to exchange")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from client.protodemo import run

        return run(args.messages)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
