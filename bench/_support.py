"""Process plumbing shared by bench/relay.py and bench/connections.py.

Every process a benchmark starts is a `Child`: its own session (so a Ctrl-C in the
terminal reaches only the benchmark, which then stops its children in order), told
by the kernel to die with the benchmark (PR_SET_PDEATHSIG) even if the benchmark is
killed outright, and spoken to line by line over stdin/stdout with timeouts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (ws://\S+)")
PR_SET_PDEATHSIG = 1


def raise_nofile() -> int:
    """Raises the soft limit on open files to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def exit_on_sigterm() -> None:
    """SIGINT, SIGTERM and SIGHUP unwind like Ctrl-C, so `finally` blocks clean up (SIGINT
    too, since a shell starting us in the background may have set it to be ignored)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildFailed(RuntimeError):
    pass


class Child:
    """A subprocess whose stdout we read line by line, with a deadline."""

    def __init__(self, name: str, argv: Sequence[str], log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self._log_file: IO[bytes] | None = log.open("wb") if log is not None else None
        self.proc = subprocess.Popen(
            list(argv), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log_file, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
            start_new_session=True, preexec_fn=_die_with_parent)
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = self.log.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(f"    {line}" for line in lines)

    def readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"{self.name}: no answer within {timeout:.0f} s\n"
                                  f"{self.log_tail()}")
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                code = self.proc.wait(5)
                raise ChildFailed(f"{self.name} exited ({code}) early\n{self.log_tail()}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with `prefix` (others are echoed)."""
        while True:
            line = self.readline(timeout)
            if line.startswith(prefix):
                return line[len(prefix):].strip()
            print(f"  [{self.name}] {line}", flush=True)

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._log_file is not None:
            self._log_file.close()
        return self.proc.returncode


@contextlib.contextmanager
def child(name: str, argv: Sequence[str], log: Path | None = None,
          stop_timeout: float = 10.0) -> Iterator[Child]:
    proc = Child(name, argv, log)
    try:
        yield proc
    finally:
        proc.stop(stop_timeout)


BENCH_SERVE_ARGS = (
    "--send-budget", "off", "--send-bytes-budget", "off", "--pair-budget", "off",
    "--pair-bytes-budget", "off", "--fetch-budget", "off", "--fetch-pair-budget", "off",
    "--register-budget", "off", "--register-global-budget", "off", "--queue-share", "1",
    "--storage-share", "1", "--max-connections-per-address", "1000000",
)
"""The abuse budgets and the per-address connection cap (docs/PROTOCOL.md 16.7-16.8)
off: one machine plays thousands of users from one address as fast as it can, which is
what they exist to stop. The throughput measured is the relay's own."""


@contextlib.contextmanager
def relay_server(data_dir: Path, *args: str, log: Path) -> Iterator[tuple[Child, str]]:
    """`blindrelay serve` as its own process on a free loopback port, with its URL.
    With BLINDRELAY_BENCH_PROFILE=FILE in the environment the relay runs under cProfile
    and writes its statistics to FILE when it stops (each relay the bench starts
    overwrites it: profile one configuration, one round)."""
    profile = os.environ.get("BLINDRELAY_BENCH_PROFILE")
    argv = [sys.executable, *(("-m", "cProfile", "-o", profile) if profile else ()),
            "-m", "blindrelay", "serve", "--host", "127.0.0.1", "--port", "0",
            "--data", str(data_dir), "--log-level", "WARNING", *BENCH_SERVE_ARGS, *args]
    with child("relay", argv, log) as proc:
        line = proc.expect("blindrelay relay listening on ", 60)
        yield proc, line


def script_role(script: Path, name: str, *args: str, log: Path | None = None,
                stop_timeout: float = 10.0) -> contextlib.AbstractContextManager[Child]:
    """This benchmark script again, in a helper role (forwarder, load generator...)."""
    return child(name, [sys.executable, str(script), *args], log, stop_timeout)


def listening_url(line: str) -> str:
    match = LISTENING.search(line)
    if not match:
        raise ChildFailed(f"no URL in {line!r}")
    return match.group(1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent by all processes on all CPUs (user, nice, system, irq, softirq,
    steal), from /proc/stat: with cpu_seconds of our own processes, it tells how much
    of the machine other work took during a measurement."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def machine_note() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}"
