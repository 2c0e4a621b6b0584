"""Every shipped vector file follows its documented JSON Schema
(conformance/vectors/schemas/NAME.schema.json, draft 2020-12), and the schemas are strict
enough to matter: a damaged file (a field missing, a field added, a byte string that is not
lower-case hex, an unknown error name, another format number) is rejected. Validated with
the `jsonschema` package, the validator another implementation would most likely use."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import conformance.vectors
from conformance.vectors import NAMES, load, schema

SCHEMAS = Path(conformance.vectors.__file__).parent / "schemas"


def errors(name: str, doc: Any) -> list[str]:
    validator = Draft202012Validator(schema(name))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def test_every_vector_file_has_exactly_one_schema() -> None:
    assert sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.json")) \
        == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_file_follows_its_schema(name: str) -> None:
    Draft202012Validator.check_schema(schema(name))
    assert schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert errors(name, load(name)) == []


def _first_list_item(doc: dict[str, Any]) -> dict[str, Any]:
    return next(v[0] for k, v in doc.items() if isinstance(v, list) and v
                and isinstance(v[0], dict))


def _drop_a_required_field(doc: dict[str, Any]) -> None:
    item = _first_list_item(doc)
    del item[next(iter(item))]


def _add_a_field(doc: dict[str, Any]) -> None:
    _first_list_item(doc)["surprise"] = 1


def _format_2(doc: dict[str, Any]) -> None:
    doc["format"] = 2


def _empty_a_list(doc: dict[str, Any]) -> None:
    key = next(k for k, v in doc.items() if isinstance(v, list))
    doc[key] = []


DAMAGE: dict[str, Callable[[dict[str, Any]], None]] = {
    "a field missing": _drop_a_required_field,
    "an unknown field": _add_a_field,
    "another format": _format_2,
    "an emptied list": _empty_a_list,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", NAMES)
def test_schema_rejects_a_damaged_file(name: str, damage: str) -> None:
    doc = copy.deepcopy(load(name))
    DAMAGE[damage](doc)
    assert errors(name, doc), f"{name}.json with {damage} passed its schema"


@pytest.mark.parametrize(("name", "path", "value"), [
    ("kdf", ("kdf_ck", 0, "chain_key"), "AB" * 32),           # upper-case hex
    ("kdf", ("kdf_ck", 0, "chain_key"), "abc"),               # odd length
    ("kdf", ("aead_failures", 0, "error"), "Oops"),           # no such error class
    ("sealed", ("cases", 0, "sealed"), "zz"),                 # not hex
    ("kt_directory", ("steps", 0, "kind"), "REGISTERED"),     # no such entry kind
    ("safety_numbers", ("cases", 0, "safety_number"), "1234"),  # not 60 digits
    ("keys", ("ed25519", 0, "public"), "00" * 31),            # a key one byte short
])
def test_schema_rejects_a_damaged_value(name: str, path: tuple[str | int, ...],
                                        value: object) -> None:
    doc = copy.deepcopy(load(name))
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    found = errors(name, doc)
    assert found and found[0].startswith("/".join(map(str, path))), found
