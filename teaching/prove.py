"""`blindrelay prove`: a self-test of THIS code on THIS machine that the relay never held
plaintext and that what it carried was really encrypted.

It is evidence about the relay you just ran, built from this checkout, nothing more:
whether someone else's relay behaves comes from key transparency (`blindrelay kt`), the
black-box conformance suite (`blindrelay conformance URL`) and the operator-side audit
(`blindrelay audit`). SELF_TEST says so in the output.

It starts a real `blindrelay serve` process (in a session of its own, so every process
it starts can be found) and two clients that reach it through a recording loopback
proxy, sends messages that carry fresh random canary strings, then checks:

- the relay's data directory while it runs and again after it shut down (a relay could
  write what it kept only at exit), its log output, its process memory and the memory of
  every other process in its session (children it started), while running and after;
- every regular file created or modified anywhere on the machine during the run, except
  the short exclusion list printed with the result (/proc, /sys, /dev but not /dev/shm,
  read-only mounts, the Python installation, and the two clients' homes, where the
  plaintext legitimately is);
- a known answer on every captured envelope: none opens as a sealed box under a fixed
  key (all-zero and other trivial X25519 keys, the test vectors' identities) or as a
  secretbox under the all-zero key, and none holds a run of repeated bytes or
  compresses (ciphertext does neither), and none contains a canary.

Each canary is searched as UTF-8, UTF-16 (both byte orders), base64 (all three
alignments) and hex. As a positive control the same scanner must find the canaries in
the receiving client's process memory, where the plaintext legitimately is: that proves
the scan would have caught a leak.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SELF_TEST = ("This is a self-test of this code on this machine. Evidence about someone "
             "else's relay comes from key transparency (blindrelay kt) and from the "
             "conformance and audit tools (blindrelay conformance, blindrelay audit).")
READY = "PROVE-RECEIVER-READY"
LISTENING = re.compile(r"listening on (wss?://\S+)")
MAX_REGION = 1 << 30
CHUNK = 16 << 20
PSEUDO_FS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "mqueue",
                       "debugfs", "tracefs", "securityfs", "pstore", "bpf", "configfs",
                       "fusectl", "hugetlbfs", "binfmt_misc", "autofs", "nsfs", "rpc_pipefs"})
LONGEST_RUN = 12
"""Ciphertext has no run of this many equal bytes (chance about 2**-88 per position)."""


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
    name_pids: list[int] = field(default_factory=list)


def scan_bytes(place: Place, data: bytes, patterns: dict[str, dict[str, list[bytes]]],
               where: str = "") -> None:
    place.scanned += len(data)
    for index, by_encoding in patterns.items():
        for encoding, needles in by_encoding.items():
            if any(needle in data for needle in needles):
                hit = f"canary {index} as {encoding}" + (f" in {where}" if where else "")
                if hit not in place.hits:
                    place.hits.append(hit)


def scan_file(place: Place, path: Path, patterns: dict[str, dict[str, list[bytes]]],
              where: str) -> None:
    """Reads in chunks that overlap by more than the longest needle, so a file of any
    size is scanned whole without holding it in memory."""
    overlap = 4096
    with open(path, "rb") as f:
        tail = b""
        while chunk := f.read(CHUNK):
            scan_bytes(place, tail + chunk, patterns, where)
            place.scanned -= len(tail)
            tail = chunk[-overlap:]


def scan_files(place: Place, root: Path, patterns: dict[str, dict[str, list[bytes]]]) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        scan_file(place, path, patterns, str(path.relative_to(root)))


KERNEL_FS = ("/proc", "/sys")
"""Kernel pseudo-filesystems: no regular file there holds what a process wrote."""


@dataclass
class Exclusions:
    """What the machine-wide scan leaves out, as full paths (`paths`, for the walk) and as
    the short list printed with the result (`summary()`, so a reader can judge it)."""

    homes: list[str]
    python: list[str]
    other_pseudo: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        out = sorted({*KERNEL_FS, "/dev", *self.other_pseudo, *self.read_only, *self.python,
                      *self.homes})
        return [e for e in out
                if not any(e.startswith(other.rstrip("/") + "/") for other in out if other != e)]

    def summary(self) -> list[str]:
        out = [f"{', '.join(KERNEL_FS)} (kernel pseudo-filesystems)",
               "/dev except /dev/shm (device nodes)"]
        if self.other_pseudo:
            out.append(f"{len(self.other_pseudo)} other pseudo-filesystem mount(s)")
        if self.read_only:
            out.append(f"{len(self.read_only)} read-only mount(s) (nothing can be written "
                       f"there: {_first(self.read_only)})")
        out.append(f"{', '.join(self.python)} (the Python installation)")
        out.append(f"{', '.join(self.homes)} (the two clients' homes, where the plaintext "
                   "legitimately is)")
        return out


def _first(paths: list[str]) -> str:
    return ", ".join(paths[:2]) + (", ..." if len(paths) > 2 else "")


def exclusions(homes: list[Path]) -> Exclusions:
    """The machine-wide scan leaves out the kernel's pseudo-filesystems, /dev (its only
    writable place, /dev/shm, is scanned), read-only mounts (no file can change there),
    the Python installation (prove's own interpreter and venv) and the clients' homes."""
    python = [sys.prefix] + ([sys.base_prefix] if sys.base_prefix != sys.prefix else [])
    found = Exclusions([str(h) for h in homes], python)
    covered = [*KERNEL_FS, "/dev", *python]
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                _dev, point, fstype, options = line.split()[:4]
                point = point.replace("\\040", " ")
                if point == "/" or any(point == c or point.startswith(c.rstrip("/") + "/")
                                       for c in covered):
                    continue
                if fstype in PSEUDO_FS:
                    found.other_pseudo.append(point)
                elif "ro" in options.split(","):
                    found.read_only.append(point)
    except OSError:
        pass
    found.other_pseudo = sorted(set(found.other_pseudo))
    found.read_only = sorted(set(found.read_only))
    return found


def changed_files(since: float, excluded: list[str], root: str = "/") -> Iterator[Path]:
    """Every regular file under `root` (symlinks not followed) whose content or inode
    changed at or after `since`, outside `excluded`."""
    skip = {os.path.normpath(e) for e in excluded}
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            it = os.scandir(directory)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if os.path.normpath(entry.path) not in skip:
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if (stat.S_ISREG(st.st_mode)
                                and max(st.st_mtime, st.st_ctime) >= since):
                            yield Path(entry.path)
                except OSError:
                    continue


def scan_machine(place: Place, since: float, excluded: list[str],
                 patterns: dict[str, dict[str, list[bytes]]]) -> int:
    """Scans every file changed since `since`; returns how many it read."""
    count = 0
    roots = ["/"] + [r for r in ("/dev/shm",) if os.path.isdir(r)]  # writable, under /dev
    for path in (p for root in roots for p in changed_files(since, excluded, root)):
        try:
            scan_file(place, path, patterns, str(path))
            count += 1
        except OSError:
            continue  # vanished, or not ours to read
    return count


def session_processes(sid: int, but: tuple[int, ...] = ()) -> list[int]:
    """The processes of session `sid` (the relay's: it leads a session of its own, so
    whatever it starts stays in it unless it calls setsid itself)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in but:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


# --------------------------------------------------------------- known-answer checks


def fixed_x25519_keys() -> list[tuple[str, bytes]]:
    """X25519 private keys a lazy or broken client might seal to: trivial patterns and
    the published test-vector identities."""
    from conformance.vectors.common import identity

    keys = [("the all-zero key", bytes(32)), ("the all-one-bytes key", b"\x01" * 32),
            ("the all-0xff key", b"\xff" * 32), ("the key 00 01 02 ..", bytes(range(32)))]
    for name in ("alice", "bob", "carol"):
        keys.append((f"the test vectors' {name} identity", identity(name).dh_private()))
    return keys


def longest_run(data: bytes) -> int:
    best = run = 0
    previous = -1
    for byte in data:
        run = run + 1 if byte == previous else 1
        previous = byte
        best = max(best, run)
    return best


def known_answer(place: Place, envelopes: list[bytes],
                 patterns: dict[str, dict[str, list[bytes]]]) -> None:
    """Every captured envelope must look like ciphertext under a key nobody else has."""
    import nacl.bindings as sodium

    keys = [(name, sodium.crypto_scalarmult_base(private), private)
            for name, private in fixed_x25519_keys()]
    for number, body in enumerate(envelopes, 1):
        place.scanned += len(body)
        label = f"envelope {number} ({len(body)} bytes)"
        scan_bytes(place, body, patterns, label)
        for name, public, private in keys:
            try:
                sodium.crypto_box_seal_open(body, public, private)
            except Exception:
                continue
            place.hits.append(f"{label} opens as a sealed box under {name}")
        nonce, box = body[:24], body[24:]
        for what, n, c in (("a zero nonce", bytes(24), body), ("its first 24 bytes", nonce, box)):
            try:
                sodium.crypto_secretbox_open(c, n, bytes(32))
            except Exception:
                continue
            place.hits.append(f"{label} opens as a secretbox under the all-zero key "
                              f"with {what} as nonce")
        run = longest_run(body)
        if run >= LONGEST_RUN:
            place.hits.append(f"{label} has a run of {run} equal bytes")
        if len(body) >= 256 and len(zlib.compress(body, 9)) < 0.95 * len(body):
            place.hits.append(f"{label} compresses to {len(zlib.compress(body, 9))} bytes")


class Recorder:
    """A loopback WebSocket proxy in front of the relay that keeps every envelope body
    the clients send (SEND frames), as a network observer would see them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.upstream = ""
        self.envelopes: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, upstream: str) -> None:
        self.upstream = upstream
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _keep(self, data: bytes) -> None:
        from protocol.wire.frames import Send, decode_client_frame

        try:
            _request, frame = decode_client_frame(data)
        except Exception:
            return
        if isinstance(frame, Send):
            self.envelopes.extend(env.body for env in frame.envelopes)

    def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.asyncio.server import ServerConnection, serve

        async def pipe(source: object, sink: object, record: bool) -> None:
            async for message in source:  # type: ignore[attr-defined]
                if record and isinstance(message, bytes):
                    self._keep(message)
                await sink.send(message)  # type: ignore[attr-defined]

        async def handler(client: ServerConnection) -> None:
            async with connect(self.upstream, max_size=None) as relay:
                tasks = [asyncio.ensure_future(pipe(client, relay, True)),
                         asyncio.ensure_future(pipe(relay, client, False))]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(handler, sock=self.sock, max_size=None):
                self._started.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())


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


def _spawn(args: list[str], env: dict[str, str],
           session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=session)


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


def _scan_session(place: Place, sid: int, but: tuple[int, ...],
                  patterns: dict[str, dict[str, list[bytes]]]) -> list[int]:
    pids = session_processes(sid, but)
    for pid in pids:
        scan_process(place, pid, patterns)
        place.name_pids.append(pid)
    return pids


def prove(keep: bool = False) -> int:
    print(SELF_TEST)
    print()
    since = time.time() - 2  # file times are coarse on some filesystems
    work = Path(tempfile.mkdtemp(prefix="blindrelay-prove-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDRELAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    canaries = make_canaries()
    patterns = {str(i + 1): encodings(c) for i, c in enumerate(canaries)}
    data_dir = work / "relay"
    recorder = Recorder()
    server = _spawn(["blindrelay", "serve", "--port", "0", "--data", str(data_dir),
                     "--log-level", "DEBUG", "--public-url", recorder.url], env, session=True)
    receiver: subprocess.Popen[str] | None = None
    data_live, log, memory = (Place("relay data directory"), Place("relay log output"),
                              Place("relay process memory"))
    children = Place("processes the relay started")
    data_after = Place("relay data directory after shutdown")
    lingering = Place("relay's processes left after shutdown")
    machine = Place("files changed on this machine during the run")
    envelopes = Place("captured envelopes (known answer)")
    control = Place("receiving client's memory (control)")
    excluded = exclusions([work / "alice", work / "bob"])
    try:
        url = LISTENING.search(_wait_line(server, LISTENING)).group(1)  # type: ignore[union-attr]
        recorder.start(url)
        print(f"relay started (pid {server.pid}, its own session) at {url}, data in {data_dir};"
              f" the clients reach it through a recording proxy at {recorder.url}")
        receiver = _spawn(["teaching.prove", str(work / "bob"), recorder.url,
                           str(len(canaries))], env)
        _wait_line(receiver, "REGISTERED")
        asyncio.run(_send_all(work / "alice", recorder.url, canaries))
        print(f"alice sent {len(canaries)} messages carrying fresh canaries of "
              f"{', '.join(str(len(c)) for c in canaries)} characters")
        _wait_line(receiver, READY)
        print("bob received and decrypted them; scanning...")
        scan_files(data_live, data_dir, patterns)
        scan_process(memory, server.pid, patterns)
        _scan_session(children, server.pid, (server.pid,), patterns)
        scan_process(control, receiver.pid, patterns)
    finally:
        if receiver is not None:
            receiver.communicate(timeout=10)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        # Whatever the relay started and left behind (it may hold the log pipes open):
        # scan it, then end it; these processes are ours, started by the relay we started.
        left = _scan_session(lingering, server.pid, (), patterns)
        for pid in left:
            lingering.hits.append(f"process {pid} still running")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        server_out, server_err = server.communicate(timeout=15)
        recorder.stop()
    print("relay stopped; scanning again...")
    scan_bytes(log, (server_out + server_err).encode(), patterns)
    if data_dir.exists():
        scan_files(data_after, data_dir, patterns)
    files = scan_machine(machine, since, excluded.paths, patterns)
    known_answer(envelopes, recorder.envelopes, patterns)
    if not recorder.envelopes:
        envelopes.skipped = "the proxy captured no envelope"
    print()
    places = [data_live, data_after, log, memory, children, lingering, machine, envelopes,
              control]
    width = max(len(p.name) for p in places)
    notes = {children.name: f"{len(children.name_pids)} process(es)",
             machine.name: f"{files} file(s)",
             envelopes.name: f"{len(recorder.envelopes)} envelope(s)"}
    for place in places:
        if place.skipped:
            print(f"  {place.name:<{width}}  SKIPPED: {place.skipped}")
            continue
        result = ", ".join(place.hits) if place.hits else "no canary found"
        if place is envelopes and not place.hits:
            result = "none opens under a fixed key, none has low-entropy runs, no canary"
        note = f" [{notes[place.name]}]" if place.name in notes else ""
        print(f"  {place.name:<{width}}  {place.scanned:>12,} bytes  {result}{note}")
    print()
    print("not scanned on this machine (printed so you can judge):")
    for entry in excluded.summary():
        print(f"  - {entry}")
    leaked = [p for p in places[:-1] if p.hits]
    found = {hit.split()[1] for hit in control.hits}
    control_ok = not control.skipped and found == set(patterns)
    complete = not envelopes.skipped
    print()
    if leaked:
        print("FAIL: " + "; ".join(f"{p.name}: {', '.join(p.hits)}" for p in leaked))
    elif not control_ok or not complete:
        print("INCONCLUSIVE: " + ("the control scan did not find every canary in the "
                                  "receiving client, so a miss on the relay side proves "
                                  "nothing" if not control_ok else envelopes.skipped))
    else:
        print("PASS: no canary in anything the relay kept, held or started, nor in any file "
              "changed on this machine during the run, and every envelope looked like "
              "ciphertext under a key nobody else has, while the same scan found every "
              "canary in the receiving client's memory.")
    print(SELF_TEST)
    if keep:
        print(f"kept the work directory {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not leaked and control_ok and complete else 1


if __name__ == "__main__":
    receiver_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
