"""Runs a command under a pseudo-terminal and takes apart what it wrote, byte by byte:
the escape sequences (CSI, OSC, DCS, two-byte ESC sequences) and the text between
them. The tests compare the sequences of a run fed hostile text with those of the
same run fed harmless text: the app's own sequences are the only ones allowed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT

ESCAPE = re.compile(
    rb"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    rb"|\x1b[P_^X][^\x1b]*\x1b\\"  # DCS, APC, PM, SOS
    rb"|\x1b[\x20-\x2f]*[\x30-\x7e]",  # two-byte (and nF) sequences
    re.DOTALL)


def shape(sequence: bytes) -> bytes:
    """A sequence with its numbers blanked: cursor positions and sizes vary from run
    to run, the kind of sequence does not."""
    if sequence.startswith(b"\x1b]"):
        return sequence  # OSC: the whole thing (a title, a clipboard write) matters
    return re.sub(rb"\d+", b"#", sequence)


@dataclass
class Screen:
    """Everything a program wrote to its terminal."""

    raw: bytes
    sequences: list[bytes] = field(default_factory=list)
    text: str = ""
    """What is left once every well-formed escape sequence is removed."""

    @classmethod
    def parse(cls, raw: bytes) -> Screen:
        sequences = ESCAPE.findall(raw)
        rest = ESCAPE.sub(b"", raw)
        return cls(raw, sequences, rest.decode("utf-8", "replace"))

    def shapes(self) -> set[bytes]:
        return {shape(s) for s in self.sequences}


def run_in_pty(argv: Sequence[str], env: dict[str, str], *,
               steps: Sequence[tuple[Callable[[bytes], bool], bytes]] = (),
               size: tuple[int, int] = (120, 40), timeout: float = 60) -> tuple[int, bytes]:
    """Runs `argv` (a `python -m blindrelay ...`) with a pseudo-terminal as its stdin,
    stdout and stderr. `steps`: (wait until this holds of the output so far, then type
    these bytes). Returns (exit code, every byte written)."""
    master, slave = os.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDRELAY_")}
    full_env.update({"TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows),
                     **env})
    full_env.pop("TEXTUAL", None)
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=full_env, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True,
                            close_fds=True)
    os.close(slave)
    out = bytearray()
    pending = list(steps)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0](bytes(out)):
                os.write(master, pending.pop(0)[1])
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                # drain what is left, then stop
                with contextlib.suppress(OSError):
                    while select.select([master], [], [], 0.2)[0]:
                        chunk = os.read(master, 65536)
                        if not chunk:
                            break
                        out += chunk
                break
        else:
            raise AssertionError(f"{argv} did not finish in {timeout} s; steps left: "
                                 f"{len(pending)}; output: {bytes(out)[-2000:]!r}")
        return proc.wait(15), bytes(out)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(master)


def blindrelay_argv(*args: str | Path) -> list[str]:
    return ["-m", "blindrelay", *(str(a) for a in args)]
