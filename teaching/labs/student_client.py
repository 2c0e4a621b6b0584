"""Lab 2's student side, run in a fresh interpreter by teaching/labs/broken_client.py:

    python -m teaching.labs.student_client LAB_DIR URL PEER TEXT...

It puts the student's kdf.py and aead.py in place of protocol.e2e.kdf and
protocol.e2e.aead before anything else of protocol.e2e is imported, so the vectors'
checkers, the ratchet, the session and the whole client run on the student's code.
Then it prints one JSON object per line: a graded result ({"name", "passed", "why"}),
"registered" once its client is on the relay, and "received" with the peer's texts.
After "registered" it sends each TEXT to PEER, and waits on standard input for the
number of replies the peer sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STUDENT_MODULES = ("kdf", "aead")  # kdf first: the student's aead imports it


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def grade(name: str, passed: bool, why: str) -> None:
    say(name=name, passed=passed, why=why)


def swap_in(lab_dir: Path) -> None:
    import protocol.e2e
    from teaching.labs.grading import load_student_module

    if any(f"protocol.e2e.{m}" in sys.modules for m in STUDENT_MODULES):
        raise RuntimeError("protocol.e2e was imported before the student's code")
    for name in STUDENT_MODULES:
        module = load_student_module(lab_dir / f"{name}.py", f"protocol.e2e.{name}")
        setattr(protocol.e2e, name, module)


def vector_checks() -> None:
    from conformance.errors import ConformanceError
    from conformance.vectors.check import CHECKERS, check_file

    def run(file: str, *prefixes: str) -> tuple[int, list[str]]:
        checker = CHECKERS[file]
        chosen = [e for e in checker.entries() if e.id.startswith(prefixes)]
        failed: list[str] = []
        for entry in chosen:
            try:
                checker.check(entry)
            except ConformanceError as exc:
                failed.append(str(exc))
            except Exception as exc:
                failed.append(f"{file}.json {entry.id}: {type(exc).__name__}: {exc}")
        return len(chosen), failed

    def report(name: str, checked: int, failed: list[str], ok: str) -> None:
        grade(name, checked > 0 and not failed,
              ok if not failed else f"{len(failed)} of {checked} entries fail; first: "
              f"{failed[0]}")

    checked, failed = run("kdf", "info")
    report("KDF labels (kdf.json info)", checked, failed,
           "the HKDF info strings are the ones docs/PROTOCOL.md gives")
    checked, failed = run("kdf", "kdf_rk", "kdf_ck", "message_keys", "pqxdh_kdf", "aead[")
    report("KDF vectors (kdf.json)", checked, failed,
           f"all {checked} entries reproduce KDF_RK, KDF_CK, the message keys and ENCRYPT")
    fresh_keys()
    checked, failed = run("kdf", "aead_failures")
    failed += tampering_refused()
    report("MAC checked (kdf.json aead_failures)", checked + 3, failed,
           f"all {checked + 3} damaged ciphertexts are refused before decryption")
    result = check_file("conversation")
    report("ratchet vectors (conversation.json)", result.checked,
           [str(f) for f in result.failures],
           "a whole scripted conversation replays byte for byte, live and restored")


def tampering_refused() -> list[str]:
    """What the vectors cannot show while the keys are wrong: the student's own
    ENCRYPT's output, damaged in ways that keep the padding valid, must be refused."""
    from protocol.e2e import aead
    from protocol.e2e.errors import DecryptionFailed

    key, ad = bytes(range(32)), b"associated data"
    sealed = aead.encrypt(key, b"attack at dawn", ad)
    cases = {"associated data changed": (sealed, b"associated datA"),
             "last MAC bit flipped": (sealed[:-1] + bytes([sealed[-1] ^ 1]), ad),
             "MAC replaced by zeros": (sealed[:-32] + bytes(32), ad)}
    failed: list[str] = []
    for what, (data, associated) in cases.items():
        try:
            aead.decrypt(key, data, associated)
        except DecryptionFailed:
            continue
        except Exception as exc:
            failed.append(f"{what}: raised {type(exc).__name__}, not DecryptionFailed")
            continue
        failed.append(f"your own ciphertext with the {what} decrypted without complaint")
    return failed


def fresh_keys() -> None:
    """Message keys are never reused: a chain of 1000 steps gives 1000 different chain
    keys and 1000 different message keys, none equal to a chain key."""
    from protocol.e2e import kdf

    chain, seen_chain, seen_mk = bytes(range(32)), set(), set()
    for _ in range(1000):
        seen_chain.add(chain)
        chain, mk = kdf.kdf_ck(chain)
        seen_mk.add(mk)
    fresh = len(seen_chain) == 1000 and len(seen_mk) == 1000 and not seen_chain & seen_mk
    grade("fresh message keys", fresh,
          "1000 steps of KDF_CK gave 1000 different chain keys and message keys" if fresh
          else f"1000 steps of KDF_CK gave {len(seen_chain)} different chain keys and "
          f"{len(seen_mk)} different message keys: keys are reused, so two messages are "
          "encrypted under the same key")


async def talk(home: Path, url: str, peer: str, texts: list[str]) -> None:
    import asyncio

    from client.client import Client
    from client.records import Direction
    from client.store import KdfParams

    client = Client.create(home, "student", url, None,
                           KdfParams(opslimit=1, memlimit=8 * 1024 * 1024))
    try:
        await client.connect()
        await asyncio.wait_for(client.queue_done.wait(), 15)
        say(registered=True)
        for text in texts:
            await client.send_text(peer, text)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        expected = int(line.strip() or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        def got() -> list[str]:
            return [m.text for m in client.history(peer)
                    if m.direction is Direction.IN and m.text]

        while len(got()) < expected and loop.time() < deadline:
            await asyncio.sleep(0.05)
        say(received=got())
    finally:
        await client.disconnect()
        client.close()


def main(argv: list[str]) -> int:
    import asyncio
    import tempfile

    lab_dir, url, peer, texts = Path(argv[0]), argv[1], argv[2], argv[3:]
    try:
        swap_in(lab_dir)
    except Exception as exc:
        grade("your code imports", False, str(exc))
        return 1
    vector_checks()
    with tempfile.TemporaryDirectory(prefix="blindrelay-lab2-") as home:
        asyncio.run(talk(Path(home), url, peer, texts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
