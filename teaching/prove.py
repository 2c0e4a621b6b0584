"""`blindrelay prove`: check, from the outside, that the relay never held plaintext.

It starts a real `blindrelay serve` process and two clients, sends messages that carry
fresh random canary strings, then searches everything the relay could have kept: its
data directory (database, WAL and journal files), its log output and its process
memory (/proc/PID/mem). Each canary is searched as UTF-8, UTF-16 (both byte orders),
base64 (all three alignments) and hex. As a positive control the same scanner must
find the canaries in the receiving client's process memory, where the plaintext
legitimately is: that proves the scan would have caught a leak.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

READY = "PROVE-RECEIVER-READY"
LISTENING = re.compile(r"listening on (wss?://\S+)")
MAX_REGION = 1 << 30


def make_canaries() -> list[str]:
    """Fresh random markers of several lengths, one multi-kilobyte."""
    def word(n: int) -> str:
        return secrets.token_urlsafe(n)[:n]

    return [
        f"CANARY-{word(12)}",
        f"canary {word(40)} in a sentence of ordinary length",
        "long canary " + " ".join(word(16) for _ in range(300)),  # about 5 KiB
    ]


def encodings(canary: str) -> dict[str, list[bytes]]:
    """The byte patterns a leak of `canary` would leave, per encoding. Long canaries are
    searched by a 48-character probe from their middle, so a leak of any large part
    is found too."""
    text = canary if len(canary) <= 64 else canary[len(canary) // 2 - 24:len(canary) // 2 + 24]
    raw = text.encode("utf-8")
    b64: list[bytes] = []
    for shift in range(3):
        # base64 of the text at each alignment, trimmed to the characters that do not
        # depend on neighbouring bytes
        encoded = base64.b64encode(b"\x00" * shift + raw)
        b64.append(encoded[4 if shift else 0:-4])
    return {
        "utf-8": [raw],
        "utf-16": [text.encode("utf-16-le"), text.encode("utf-16-be")],
        "base64": b64,
        "hex": [raw.hex().encode(), raw.hex().upper().encode()],
    }


@dataclass
class Place:
    name: str
    scanned: int = 0
    hits: list[str] = field(default_factory=list)
    skipped: str = ""


def scan_bytes(place: Place, data: bytes, patterns: dict[str, dict[str, list[bytes]]],
               where: str = "") -> None:
    place.scanned += len(data)
    for index, by_encoding in patterns.items():
        for encoding, needles in by_encoding.items():
            if any(needle in data for needle in needles):
                hit = f"canary {index} as {encoding}" + (f" in {where}" if where else "")
                if hit not in place.hits:
                    place.hits.append(hit)


def scan_files(place: Place, root: Path, patterns: dict[str, dict[str, list[bytes]]]) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        scan_bytes(place, path.read_bytes(), patterns, str(path.relative_to(root)))


def readable_regions(pid: int) -> Iterator[tuple[int, int, str]]:
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if parts[1][0] == "r" and end - start <= MAX_REGION:
                yield start, end, parts[5] if len(parts) > 5 else ""


def scan_process(place: Place, pid: int, patterns: dict[str, dict[str, list[bytes]]]) -> None:
    """Reads every readable mapping of a live process through /proc/PID/mem."""
    if not sys.platform.startswith("linux"):
        place.skipped = "process memory can only be read through /proc on Linux"
        return
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as exc:
        place.skipped = f"cannot open /proc/{pid}/mem: {exc.strerror} (ptrace not permitted)"
        return
    try:
        for start, end, _name in readable_regions(pid):
            try:
                data = os.pread(fd, end - start, start)
            except OSError:
                continue  # guard pages and device mappings
            scan_bytes(place, data, patterns)
    finally:
        os.close(fd)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_line(proc: subprocess.Popen[str], pattern: re.Pattern[str] | str,
               timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if (pattern.search(line) if isinstance(pattern, re.Pattern) else pattern in line):
            return line
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"process {proc.args!r} did not report ready: "
                       f"{proc.stderr.read() if proc.stderr else ''}")


async def _send_all(home: Path, url: str, canaries: list[str]) -> None:
    from client.client import Client
    from client.store import KdfParams

    fast = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
    client = Client.create(home, "alice", url, None, fast)
    try:
        await client.connect()
        for canary in canaries:
            await client.send_text("bob", canary)
        await client.flush_outbox()
    finally:
        await client.disconnect()
        client.close()


def receiver_main(home: str, url: str, count: int) -> None:
    """The control process: registers bob, receives `count` messages, keeps their text
    in memory, prints READY and waits for its standard input to close."""
    from client.client import Client
    from client.store import KdfParams

    async def run() -> list[str]:
        client = Client.create(Path(home), "bob", url, None,
                               KdfParams(opslimit=1, memlimit=8 * 1024 * 1024))
        await client.connect()
        print("REGISTERED", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = [m.text for m in client.history("alice") if m.text and m.unread]
            if len(got) >= count:
                await client.disconnect()
                return got
            await asyncio.sleep(0.05)
        raise SystemExit("timed out waiting for messages")

    texts = asyncio.run(run())
    print(READY, len(texts), flush=True)
    sys.stdin.read()
    print(len(texts))  # keep the plaintext alive until here


def prove(keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="blindrelay-prove-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDRELAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    canaries = make_canaries()
    patterns = {str(i + 1): encodings(c) for i, c in enumerate(canaries)}
    data_dir = work / "relay"
    server = _spawn(["blindrelay", "serve", "--port", "0", "--data", str(data_dir),
                     "--log-level", "DEBUG"], env)
    receiver: subprocess.Popen[str] | None = None
    places = [Place("relay data directory"), Place("relay log output"),
              Place("relay process memory"), Place("receiving client's memory (control)")]
    try:
        url = LISTENING.search(_wait_line(server, LISTENING)).group(1)  # type: ignore[union-attr]
        print(f"relay started (pid {server.pid}) at {url}, data in {data_dir}")
        receiver = _spawn(["teaching.prove", str(work / "bob"), url, str(len(canaries))], env)
        _wait_line(receiver, "REGISTERED")
        asyncio.run(_send_all(work / "alice", url, canaries))
        print(f"alice sent {len(canaries)} messages carrying fresh canaries of "
              f"{', '.join(str(len(c)) for c in canaries)} characters")
        _wait_line(receiver, READY)
        print("bob received and decrypted them; scanning...")
        scan_files(places[0], data_dir, patterns)
        scan_process(places[2], server.pid, patterns)
        scan_process(places[3], receiver.pid, patterns)
    finally:
        if receiver is not None:
            receiver.communicate(timeout=10)
        server.terminate()
        server_out, server_err = server.communicate(timeout=15)
    scan_bytes(places[1], (server_out + server_err).encode(), patterns)
    print()
    width = max(len(p.name) for p in places)
    for place in places:
        if place.skipped:
            print(f"  {place.name:<{width}}  SKIPPED: {place.skipped}")
            continue
        result = ", ".join(place.hits) if place.hits else "no canary found"
        print(f"  {place.name:<{width}}  {place.scanned:>12,} bytes  {result}")
    server_places, control = places[:3], places[3]
    leaked = [p for p in server_places if p.hits]
    found = {hit.split()[1] for hit in control.hits}
    control_ok = not control.skipped and found == set(patterns)
    print()
    if leaked:
        print("FAIL: the relay held plaintext: " + "; ".join(
            f"{p.name}: {', '.join(p.hits)}" for p in leaked))
    elif not control_ok:
        print("INCONCLUSIVE: the control scan did not find every canary in the receiving "
              "client, so a miss on the relay side proves nothing")
    else:
        print("PASS: no canary in anything the relay kept or held, while the same scan "
              "found every one of them in the receiving client's memory.")
    if keep:
        print(f"kept the work directory {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not leaked and control_ok else 1


if __name__ == "__main__":
    receiver_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
