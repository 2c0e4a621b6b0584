"""Regenerate the JSON test vectors in conformance/vectors/ from the implementation.

    .venv/bin/python -m conformance.vectors.generate            # rewrite the files
    .venv/bin/python -m conformance.vectors.generate --check    # exit 1 if a file would change
    .venv/bin/python -m conformance.vectors.generate --refresh  # also redo recorded values

Each file NAME.json of `conformance.vectors.NAMES` is made by the module
`conformance.vectors.gen_NAME`, whose `build(ctx)` (or `build()`, for one that needs no
shared material) returns the file's JSON object. All randomness is injected from the
deterministic generator `Drbg` (docs/PROTOCOL.md section 17.1: rng(n) returns the next
n bytes of SHAKE-256(label)), so a run reproduces every value except two kinds that no
injected randomness reaches: ML-KEM-768 encapsulation (`cryptography` draws its own
randomness) and libsodium's sealed box (crypto_box_seal makes its own ephemeral key).
Those outputs are *recorded* (`conformance.vectors.recorded`): a run keeps each one found
in the existing files while it is still valid for the regenerated keys and makes a
fresh one otherwise; `--refresh` discards them all. So running it twice gives identical
files.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance.vectors import NAMES, Json
from conformance.vectors.context import Context
from conformance.vectors.recorded import Recorded

HERE = Path(__file__).resolve().parent


def builder(name: str) -> Callable[[Context], Json]:
    """`gen_<name>.build`, called with the shared context if it takes one."""
    build: Callable[..., Any] = importlib.import_module(f"{__package__}.gen_{name}").build
    if not inspect.signature(build).parameters:
        return lambda _ctx: build()
    return build


def generate(ctx: Context, names: tuple[str, ...] = NAMES) -> dict[str, Json]:
    """Every vector file's JSON object, by name."""
    return {name: builder(name)(ctx) for name in names}


def render(data: Json) -> str:
    """The exact text of a vector file: one-space indents, ASCII, a final newline."""
    return json.dumps(data, indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.vectors.generate",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--refresh", action="store_true",
                        help="discard recorded ML-KEM and sealed-box outputs and make new ones")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any file would change")
    parser.add_argument("--dir", type=Path, default=HERE, metavar="DIR",
                        help="the vector directory to read recorded values from and to write "
                             "(default: the packaged vectors)")
    args = parser.parse_args(argv)
    rec = Recorded(refresh=args.refresh, directory=args.dir)
    files = generate(Context(rec))
    changed = []
    for name, data in files.items():
        path, text = args.dir / f"{name}.json", render(data)
        if not path.exists() or path.read_text() != text:
            changed.append(path.name)
            if not args.check:
                path.write_text(text)
    verb = "would change" if args.check else "written"
    print(f"{len(files)} vector files; {verb}: {', '.join(changed) or 'none'}; "
          f"recorded values kept {rec.kept}, made {rec.fresh}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
