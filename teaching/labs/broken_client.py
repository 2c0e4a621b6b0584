"""Lab 2's check: fix the broken client.

The student's kdf.py and aead.py (copies of protocol/e2e's, with flaws planted) run in
a fresh interpreter (teaching/labs/student_client.py) in place of the real modules:
there the test vectors are checked, and a real client built on them talks to the
reference client, unmodified, in this process, through a real relay.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from client.history import UNKNOWN_SENDER
from client.records import State
from server.relay import Relay
from teaching.labs.grading import Report
from teaching.labs.world import lab_world, wait_until

TEACHER = "teacher"
MESSAGES = 3
TIMEOUT = 180.0
PATIENCE = 15.0
"""Seconds either side waits for the other's messages (generous: a loaded machine)."""


async def _lines(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The next JSON line of the student side (EOF: an empty dict)."""
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            return {}
        try:
            parsed: dict[str, Any] = json.loads(line)
            return parsed
        except json.JSONDecodeError:
            continue  # not ours (a warning printed by a library)


async def check(lab_dir: Path) -> Report:
    report = Report(2)
    texts = [f"hello {i} from the student {secrets.token_hex(4)}" for i in range(MESSAGES)]
    with tempfile.TemporaryDirectory(prefix="blindrelay-lab2-") as tmp:
        async with lab_world(Path(tmp), Relay, (TEACHER,)) as world:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "teaching.labs.student_client", str(lab_dir),
                world.url, TEACHER, *texts, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                await asyncio.wait_for(_converse(report, proc, world, texts), TIMEOUT)
            except TimeoutError:
                report.grade("interop", False, f"the student side did not finish in "
                             f"{TIMEOUT:.0f} s")
            finally:
                if proc.returncode is None:
                    proc.kill()
                stderr = (await proc.communicate())[1].decode(errors="replace").strip()
    if not report.criteria or (proc.returncode and not any(
            c.name.startswith("interop") for c in report.criteria)):
        last = stderr.splitlines()[-1] if stderr else f"exit code {proc.returncode}"
        report.grade("your code runs", False, f"the student side stopped: {last}")
    return report


async def _converse(report: Report, proc: asyncio.subprocess.Process, world: Any,
                    texts: list[str]) -> None:
    assert proc.stdin is not None
    while True:
        line = await _lines(proc)
        if not line:
            return
        if "name" in line:
            report.grade(str(line["name"]), bool(line["passed"]), str(line["why"]))
            continue
        if line.get("registered"):
            break
    def settled() -> bool:  # every message decrypted, or failed to (no need to wait)
        failed = sum(m.state is State.UNDECRYPTABLE
                     for peer in ("student", UNKNOWN_SENDER)
                     for m in world.history(TEACHER, peer))
        return len(world.texts(TEACHER, "student")) + failed >= len(texts)

    await wait_until(settled, PATIENCE)
    got = world.texts(TEACHER, "student")
    report.grade("interop, the reference client reads yours", got == texts,
                 f"it decrypted all {len(texts)} messages, in order" if got == texts else
                 f"it decrypted {len(got)} of {len(texts)} messages your client sent"
                 + (" (the others failed authentication: your keys are not the "
                    "protocol's)" if len(got) < len(texts) else f": {got!r}"))
    replies = [f"reply to {t}" for t in got]
    teacher = world.clients[TEACHER]
    for reply in replies:
        await teacher.send_text("student", reply)
    proc.stdin.write(f"{len(replies)}\n".encode())
    await proc.stdin.drain()
    answer = await _lines(proc)
    received = answer.get("received", [])
    if not replies:
        report.grade("interop, your client reads the reference's", False,
                     "nothing to read: the reference client could not read your messages, "
                     "so it did not answer")
    else:
        ok = received == replies
        report.grade("interop, your client reads the reference's", ok,
                     f"it decrypted all {len(replies)} replies, in order" if ok else
                     f"it decrypted {len(received)} of {len(replies)} replies")
