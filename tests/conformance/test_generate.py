"""The generator reproduces the committed vector files byte for byte, notices a file that
differs, and makes files the checker accepts even when it records fresh values."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

import conformance.vectors
from conformance.vectors import NAMES
from conformance.vectors.check import check_all
from conformance.vectors.context import Context
from conformance.vectors.generate import builder, generate, main, render
from conformance.vectors.recorded import Recorded

VECTORS = Path(conformance.vectors.__file__).parent

# Files with no recorded value (section 17.1): --refresh must leave them as they are.
DETERMINISTIC = {"bundle", "content", "drbg", "frames", "kdf", "kt_directory", "padding",
                 "safety_numbers", "sender_certificate", "usernames"}


def copy_vectors(directory: Path) -> None:
    for name in NAMES:
        shutil.copy(VECTORS / f"{name}.json", directory / f"{name}.json")


def test_generator_reproduces_the_committed_files() -> None:
    rec = Recorded(refresh=False, directory=VECTORS)
    files = generate(Context(rec))
    assert list(files) == list(NAMES)
    for name, data in files.items():
        assert render(data) == (VECTORS / f"{name}.json").read_text(), name
    assert rec.fresh == 0 and rec.kept > 0


def test_check_mode_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "would change: none" in capsys.readouterr().out


def test_check_mode_names_a_changed_file_and_writing_restores_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_vectors(tmp_path)
    path = tmp_path / "padding.json"
    doc = json.loads(path.read_text())
    doc["valid"][0]["padded"] = "00"
    path.write_text(render(doc))
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "would change: padding.json;" in capsys.readouterr().out
    assert json.loads(path.read_text())["valid"][0]["padded"] == "00"  # --check writes nothing

    assert main(["--dir", str(tmp_path)]) == 0
    assert path.read_bytes() == (VECTORS / "padding.json").read_bytes()
    assert main(["--check", "--dir", str(tmp_path)]) == 0


def test_refresh_records_new_values_the_checker_accepts(tmp_path: Path) -> None:
    copy_vectors(tmp_path)
    assert main(["--refresh", "--dir", str(tmp_path)]) == 0
    changed = {name for name in NAMES
               if (tmp_path / f"{name}.json").read_bytes()
               != (VECTORS / f"{name}.json").read_bytes()}
    assert changed.isdisjoint(DETERMINISTIC)
    assert {"keys", "pqxdh", "conversation", "sealed"} <= changed
    results = list(check_all(directory=tmp_path))
    assert [(r.name, r.failures) for r in results if not r.ok] == []
    # A second run keeps every value just recorded.
    assert main(["--check", "--dir", str(tmp_path)]) == 0


def test_every_name_has_a_generator_taking_the_context_or_nothing() -> None:
    """NAMES, gen_<name> modules and the files agree; build() may skip the context."""
    modules = sorted(p.stem[len("gen_"):] for p in VECTORS.glob("gen_*.py"))
    assert modules == sorted(NAMES)
    ctx = Context(Recorded(refresh=False, directory=VECTORS))
    drbg = importlib.import_module("conformance.vectors.gen_drbg")
    assert builder("drbg")(ctx) == drbg.build()
