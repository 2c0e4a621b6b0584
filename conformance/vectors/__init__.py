"""blindrelay's deterministic test vectors, shipped as package data.

Each `NAME.json` follows the format of docs/PROTOCOL.md section 17 (`"format": 1`,
hex byte strings, randomness injected from `conformance.drbg.Drbg`, private keys
included). `load(name)` reads one; `NAMES` lists them (one `gen_<name>` module makes
each file, one `check.<name>` module checks it). `python -m conformance.vectors.generate`
makes them from this implementation; `python -m conformance.vectors.check` checks an
implementation against them, from both sides (tests/conformance/test_vectors.py runs it).
`schemas/NAME.schema.json` is each file's JSON Schema (draft 2020-12, kept by hand beside
the generator): the documented layout another implementation can validate its own
copy against (`schema(name)`; tests/conformance/test_vector_schemas.py).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = 1

Json = dict[str, Any]

NAMES = ("bundle", "content", "conversation", "drbg", "frames", "groups", "kdf", "keys",
         "kt_directory", "messages", "padding", "pqxdh", "safety_numbers", "sealed",
         "sender_certificate", "session_record", "state", "usernames")


@cache
def load(name: str) -> Json:
    """The parsed vector file `name` (without `.json`); checks its format number."""
    if name not in NAMES:
        raise KeyError(f"no vector file {name!r}")
    return parse(name, resources.files(__package__).joinpath(f"{name}.json").read_text("utf-8"))


@cache
def schema(name: str) -> Json:
    """The JSON Schema (draft 2020-12) of vector file `name`, shipped beside it."""
    if name not in NAMES:
        raise KeyError(f"no vector file {name!r}")
    text = resources.files(__package__).joinpath("schemas", f"{name}.schema.json")
    parsed: Json = json.loads(text.read_text("utf-8"))
    return parsed


def load_from(directory: Path, name: str) -> Json:
    """Vector file `name` from another directory (e.g. a tester's own generator output)."""
    if name not in NAMES:
        raise KeyError(f"no vector file {name!r}")
    return parse(name, (directory / f"{name}.json").read_text("utf-8"))


def parse(name: str, text: str) -> Json:
    data: Json = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"{name}.json has vector format {data.get('format')}, "
                         f"this reader knows {FORMAT}")
    return data
