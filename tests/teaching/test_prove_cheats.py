"""`blindrelay prove` fails on each cheat issue 11 item 13 names, planted in a patched
copy of this checkout (the real tree is never touched):

1. a client that "encrypts" under a fixed all-zero key (its envelopes are sealed boxes
   to the all-zero X25519 key) with an honest relay: caught by the known-answer check;
2. a relay that writes plaintext to a file outside its data directory: caught by the
   scan of every file changed on the machine;
3. a relay that writes plaintext into its data directory only at shutdown: caught by
   the rescan after shutdown;
4. a relay whose child process holds the plaintext: caught by the scan of the
   processes the relay started.

A relay cannot read a correct client's messages, so cheats 2-4 run with a client that
seals to the all-zero key and whose message cipher is a no-op: the relay then has
plaintext to leak. Each test asserts the line of the check that is meant to catch it,
not only that `prove` failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("protocol", "server", "client", "conformance", "teaching", "blindrelay")

ZERO_KEY_CLIENT = {
    "protocol/e2e/sealed.py": [
        ("    return bytes(sodium.crypto_box_seal(content.encode(limit),\n"
         "                                        identity_dh_public(recipient_identity)))",
         "    return bytes(sodium.crypto_box_seal(content.encode(limit),\n"
         "                                        sodium.crypto_scalarmult_base(bytes(32))))"),
        ("        opened = sodium.crypto_box_seal_open(data, identity.dh_public(), "
         "identity.dh_private())",
         "        opened = sodium.crypto_box_seal_open(\n"
         "            data, sodium.crypto_scalarmult_base(bytes(32)), bytes(32))"),
    ],
}

NULL_CIPHER = {
    "protocol/e2e/aead.py": [
        ("    ciphertext = encryptor.update(padded) + encryptor.finalize()",
         "    ciphertext = padded"),
        ("    padded = decryptor.update(ciphertext) + decryptor.finalize()",
         "    padded = ciphertext"),
    ],
}

# What the cheating relays do with an envelope: open it under the all-zero key.
OPEN = ("import nacl.bindings as _s\n"
        "def _cheat_open(body):\n"
        "    try:\n"
        "        return bytes(_s.crypto_box_seal_open(body, "
        "_s.crypto_scalarmult_base(bytes(32)), bytes(32)))\n"
        "    except Exception:\n"
        "        return b''\n")

SEND = "            items = [(e.recipient, e.body) for e in frame.envelopes]\n"

OUTSIDE_FILE = {
    "server/relay.py": [
        (SEND, SEND + "            import os as _os\n"
         "            _p = _os.path.join(_os.environ['PROVE_CHEAT_DIR'], 'leak.bin')\n"
         "            with open(_p, 'ab') as _f:\n"
         "                _f.write(b''.join(_cheat_open(b) for _r, b in items))\n"),
    ],
}

AT_SHUTDOWN = {
    "server/relay.py": [
        (SEND, SEND + "            _KEPT.extend(b for _r, b in items)\n"),
    ],
    "server/serve.py": [
        ('        log.info("stopped")',
         '        from server.relay import _KEPT, _cheat_open\n'
         '        (config.data_dir / "kept.bin").write_bytes(\n'
         '            b"".join(_cheat_open(b) for b in _KEPT))\n'
         '        log.info("stopped")'),
    ],
}

CHILD = {
    "server/relay.py": [
        (SEND, SEND + "            import subprocess as _sp, sys as _sys\n"
         "            _c = _sp.Popen([_sys.executable, '-c', 'import sys, nacl.bindings as s; "
         "k = bytes(32); p = s.crypto_scalarmult_base(k); "
         "kept = [s.crypto_box_seal_open(bytes.fromhex(l), p, k) for l in sys.stdin]; "
         "import time; time.sleep(600)'], stdin=_sp.PIPE)\n"
         "            _c.stdin.write(b''.join(b.hex().encode() + b'\\n' for _r, b in items))\n"
         "            _c.stdin.close()\n"
         "            _CHILDREN.append(_c)\n"),
    ],
}


def patched_copy(tmp: Path, *patches: dict[str, list[tuple[str, str]]]) -> Path:
    copy = tmp / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    relay = copy / "server/relay.py"
    relay.write_text(relay.read_text() + "\n" + OPEN + "_KEPT: list = []\n_CHILDREN: list = []\n")
    for patch in patches:
        for name, edits in patch.items():
            path = copy / name
            text = path.read_text()
            for old, new in edits:
                assert text.count(old) == 1, f"{name}: the cheat no longer applies: {old!r}"
                text = text.replace(old, new)
            path.write_text(text)
    return copy


def run_prove(copy: Path, cheat_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PROVE_CHEAT_DIR=str(cheat_dir))
    result = subprocess.run([sys.executable, "-m", "blindrelay", "prove"], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert "self-test of this code on this machine" in result.stdout
    return result


def line(output: str, place: str) -> str:
    return next(x for x in output.splitlines() if x.strip().startswith(place))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prove reads /proc")
def test_prove_catches_a_client_sealing_to_the_all_zero_key(tmp_path: Path) -> None:
    result = run_prove(patched_copy(tmp_path, ZERO_KEY_CLIENT), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "opens as a sealed box under the all-zero key" in line(
        result.stdout, "captured envelopes (known answer)")
    assert "FAIL" in result.stdout
    # an honest relay: nothing else in the report is a leak
    assert "no canary found" in line(result.stdout, "relay process memory")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prove reads /proc")
def test_prove_catches_a_relay_writing_plaintext_outside_its_data_directory(
        tmp_path: Path) -> None:
    cheat = tmp_path / "elsewhere"
    cheat.mkdir()
    result = run_prove(patched_copy(tmp_path, ZERO_KEY_CLIENT, NULL_CIPHER, OUTSIDE_FILE), cheat)
    assert result.returncode == 1, result.stdout + result.stderr
    found = line(result.stdout, "files changed on this machine")
    assert f"in {cheat / 'leak.bin'}" in found, result.stdout
    assert "no canary found" in line(result.stdout, "relay data directory  ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prove reads /proc")
def test_prove_catches_a_relay_writing_plaintext_only_at_shutdown(tmp_path: Path) -> None:
    result = run_prove(patched_copy(tmp_path, ZERO_KEY_CLIENT, NULL_CIPHER, AT_SHUTDOWN),
                       tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "in kept.bin" in line(result.stdout, "relay data directory after shutdown")
    assert "no canary found" in line(result.stdout, "relay data directory  ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prove reads /proc")
def test_prove_catches_a_relay_whose_child_holds_plaintext(tmp_path: Path) -> None:
    result = run_prove(patched_copy(tmp_path, ZERO_KEY_CLIENT, NULL_CIPHER, CHILD), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    children = line(result.stdout, "processes the relay started")
    assert "canary" in children and "no canary found" not in children, result.stdout
    assert "still running" in line(result.stdout, "relay's processes left after shutdown")
