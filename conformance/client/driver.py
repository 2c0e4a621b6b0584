"""Runs the client under test through the command-line contract (docs/CONFORMANCE.md,
"The client contract"): one process per command, a fresh profile directory per check,
the passphrase in the environment, nothing on standard input, a timeout on each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOME_ENV = "BLINDRELAY_HOME"
PASSPHRASE_ENV = "BLINDRELAY_PASSPHRASE"
COMMAND_TIMEOUT = 30.0


class CheckFailed(Exception):
    """The client did something the check forbids (the reason is one line)."""


class ContractBroken(CheckFailed):
    """The client did not follow the command-line contract."""


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    stdout: bytes
    stderr: bytes

    def tail(self) -> str:
        """The last line of stderr, for a reason line (controls shown as escapes)."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return ascii(lines[-1])[1:-1] if lines else "(nothing on stderr)"

    def messages(self) -> list[dict[str, Any]]:
        """`recv --json`'s lines: one JSON object each."""
        out = []
        for line in self.stdout.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise ContractBroken(f"'recv --json' printed a line that is not JSON: "
                                     f"{line[:80]!a}") from None
            if not isinstance(item, dict):
                raise ContractBroken("'recv --json' printed JSON that is not an object")
            out.append(item)
        return out


class Driver:
    """The client under test: `command` is its argv prefix (`blindrelay`, or an
    adapter script), run with BLINDRELAY_HOME set to `home`."""

    def __init__(self, command: list[str], home: Path,
                 timeout: float = COMMAND_TIMEOUT) -> None:
        self.command = command
        self.home = home
        self.timeout = timeout
        self.passphrase = secrets.token_urlsafe(12)
        self.runs: list[Outcome] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[HOME_ENV] = str(self.home)
        env[PASSPHRASE_ENV] = self.passphrase
        return env

    async def run(self, *args: str) -> Outcome:
        argv = (*self.command, *args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env(), start_new_session=True)
        except OSError as exc:
            raise ContractBroken(f"cannot run {argv[0]!r}: {exc}") from exc
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            raise CheckFailed(f"'{' '.join(args[:1])}' did not finish within "
                              f"{self.timeout:g} s (killed)") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await proc.wait()
        assert proc.returncode is not None
        outcome = Outcome(argv, proc.returncode, stdout, stderr)
        self.runs.append(outcome)
        return outcome
