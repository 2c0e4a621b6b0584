"""`blindrelay conformance-client -- CMD...`: runs every client check against the
client started by CMD and reports a line per check (or --json, --junit FILE)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conformance import report
from conformance.client.checks import ClientCheck, run_check, select
from conformance.client.driver import COMMAND_TIMEOUT, CheckFailed
from conformance.report import Outcome as ClientResult

CHECK_TIMEOUT = 180.0
SUITE = "client"


async def run_one(check: ClientCheck, command: list[str], timeout: float) -> ClientResult:
    """Runs a check in its own temporary directory (removed afterwards, whatever
    happened); never raises but for cancellation."""
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="blindrelay-conformance-client-"))
    status, reason = report.PASS, ""
    try:
        await asyncio.wait_for(run_check(check, command, work, timeout), CHECK_TIMEOUT)
    except CheckFailed as exc:
        status, reason = report.FAIL, str(exc)
    except TimeoutError:
        status, reason = report.FAIL, f"did not finish within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        status, reason = report.FAIL, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ClientResult(check.name, status, reason, time.monotonic() - start)


async def run_checks(command: list[str], only: str | None = None,
                     timeout: float = COMMAND_TIMEOUT,
                     on_result: Callable[[ClientResult], None] | None = None
                     ) -> list[ClientResult]:
    results = []
    for check in select(only):
        result = await run_one(check, command, timeout)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def main(command: list[str], only: str | None = None, *, list_only: bool = False,
         as_json: bool = False, junit: Path | None = None,
         timeout: float = COMMAND_TIMEOUT) -> int:
    """Exit status 0 only if every selected check passed (and at least one ran)."""
    checks = select(only)
    if list_only:
        for row in report.listing((c.name, c.doc) for c in checks):
            print(row)
        return 0
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("blindrelay conformance-client: name the client to test after '--', e.g. "
              "'blindrelay conformance-client -- blindrelay'", file=sys.stderr)
        return 2
    if not checks:
        print(f"blindrelay conformance-client: no check name contains {only!r}",
              file=sys.stderr)
        return 2

    def show(result: ClientResult) -> None:
        if not as_json:
            print(result.line(), flush=True)

    results = asyncio.run(run_checks(command, only, timeout, show))
    run = report.Report(SUITE, " ".join(command), results)
    if as_json:
        report.write_json(sys.stdout, run)
    else:
        print(report.summary(results), flush=True)
    if junit is not None:
        report.write_junit(junit, run)
    return report.exit_status(results)
