"""`blindrelay vectors check -- CMD`: the reference adapter passes through the same
contract another implementation would use; an adapter that flips one output fails
with a line naming the file, the op and the request; the vector files are installed
with the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conformance.vectors import NAMES, load
from tests.support import ROOT

CLI = [sys.executable, "-m", "blindrelay", "vectors", "check"]

WRONG = '''
import json, sys
from conformance.vectors.reference import answer
for line in sys.stdin:
    request = json.loads(line)
    out = answer(request)
    if request["op"] == "kdf_ck":
        key = out["output"]["message_key"]
        out["output"]["message_key"] = ("0" if key[0] != "0" else "1") + key[1:]
    if request["op"] == "pad":
        out = {"unsupported": True}
    if request["op"] == "seal":  # a box that no longer opens
        box = out["output"]["sealed"]
        out["output"]["sealed"] = box[:-2] + ("00" if box[-2:] != "00" else "01")
    if request["op"] == "verify_answer" and "error" in out:  # accepts a forged answer
        out = {"output": {"found": False, "kind": None, "version": None, "index": None,
                          "label": "", "identity": None}}
    print(json.dumps(out), flush=True)
'''


def test_reference_adapter_passes_the_contract() -> None:
    done = subprocess.run([*CLI, "--strict", "--", sys.executable, "-m",
                           "conformance.vectors.reference"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for file, op in [("kdf", "kdf_ck"), ("padding", "unpad"), ("usernames", "username"),
                     ("safety_numbers", "safety_number"), ("drbg", "drbg"),
                     ("keys", "x25519_dh"), ("messages", "decode_header"),
                     ("sealed", "encode_content"), ("sealed", "seal"), ("sealed", "unseal"),
                     ("kt_directory", "verify_answer")]:
        assert any(x.startswith(f"{file}.json") and f" {op} " in x and x.endswith("ok")
                   for x in lines), done.stdout


def test_wrong_adapter_fails_with_a_clear_line(tmp_path: Path) -> None:
    adapter = tmp_path / "wrong.py"
    adapter.write_text(WRONG)
    done = subprocess.run([*CLI, "--", sys.executable, str(adapter)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stdout + done.stderr
    bad = [x for x in done.stdout.splitlines() if "FAIL" in x and "kdf_ck" in x]
    assert bad and "message_key" in bad[0], done.stdout
    assert any(" pad " in x and x.endswith("SKIP") for x in done.stdout.splitlines())
    seal = next(x for x in done.stdout.splitlines() if " seal " in x)
    assert "FAIL" in seal and "does not open (DecryptionFailed)" in seal, seal
    verify = next(x for x in done.stdout.splitlines() if " verify_answer " in x)
    forged = len(load("kt_directory")["failures"])  # every refusal became an acceptance
    assert "FAIL" in verify and f"{forged} failed" in verify, verify
    assert '"error": "VrfError"' in verify, verify
    # a SKIP alone is not a failure, unless --strict
    as_json = subprocess.run([*CLI, "--json", "--", sys.executable, str(adapter)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False,
                             env={"PYTHONPATH": str(ROOT)})
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    statuses = {(r["file"], r["op"]): r["status"] for r in report["results"]}
    assert statuses[("kdf", "kdf_ck")] == "FAIL"
    assert statuses[("kdf", "kdf_rk")] == "ok"
    assert statuses[("sealed", "unseal")] == "ok"
    assert statuses[("sealed", "seal")] == statuses[("kt_directory", "verify_answer")] == "FAIL"


def test_vector_files_are_installed_with_the_package(tmp_path: Path) -> None:
    """Builds a wheel of this checkout (through pip's configured index for setuptools)
    and lists it."""
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("blindrelay-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in NAMES:
        assert f"conformance/vectors/{name}.json" in names, name
        assert f"conformance/vectors/schemas/{name}.schema.json" in names, name
    assert "conformance/vectors/reference.py" in names
    assert "conformance/vectors/contract.py" in names
