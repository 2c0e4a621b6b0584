"""Runs the registered checks against a server URL and reports them."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from conformance.relay.probe import CheckFailed, Probe, SkipCheck
from conformance.relay.registry import FAIL, PASS, SKIP, Check, CheckResult, Context, ordered
from protocol.wire.frames import Limits, normalize_url

DEFAULT_REQUEST_TIMEOUT = 5.0


def select(only: str | None = None) -> list[Check]:
    """The checks whose name contains `only` (all of them for None), in run order."""
    return [c for c in ordered() if only is None or only in c.name]


async def run_one(check: Check, url: str, limits: Limits,
                  request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> CheckResult:
    """Runs one check under its timeout; never raises (but for cancellation)."""
    ctx = Context(url, limits, request_timeout)
    timeout = check.timeout_for(limits)
    start = time.monotonic()
    status, reason = PASS, ""
    try:
        await asyncio.wait_for(check.func(ctx), timeout)
    except SkipCheck as exc:
        status, reason = SKIP, str(exc)
    except CheckFailed as exc:
        status, reason = FAIL, str(exc)
    except TimeoutError:
        status, reason = FAIL, f"did not finish within {timeout:g} s"
    except Exception as exc:
        status, reason = FAIL, f"{type(exc).__name__}: {exc}"
    finally:
        violations = ctx.violations()
        await ctx.close_all()
    if violations and status != FAIL:
        status, reason = FAIL, "; ".join(violations)
    return CheckResult(check.name, status, reason, time.monotonic() - start)


async def read_limits(url: str, timeout: float = DEFAULT_REQUEST_TIMEOUT) -> Limits:
    probe = await Probe.open(url, timeout)
    try:
        return probe.limits
    finally:
        await probe.close()


async def run_checks(
    url: str,
    only: str | None = None,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> list[CheckResult]:
    """Runs every check (or those whose name contains `only`) against the server at
    `url`, in order; `on_result` hears each result as soon as it is reported."""
    checks = select(only)
    results: list[CheckResult] = []

    def report(result: CheckResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    if not checks:
        return results
    try:
        limits = await read_limits(url, request_timeout)
    except CheckFailed as exc:
        for c in checks:
            report(CheckResult(c.name, FAIL, str(exc)))
        return results
    background = {
        c.name: asyncio.get_running_loop().create_task(
            run_one(c, url, limits, request_timeout))
        for c in checks if c.background
    }
    try:
        for c in checks:
            task = background.get(c.name)
            report(await task if task is not None else
                   await run_one(c, url, limits, request_timeout))
    finally:
        for task in background.values():
            task.cancel()
        await asyncio.gather(*background.values(), return_exceptions=True)
    return results


def summary(results: list[CheckResult]) -> str:
    """The closing line: 'N passed, M failed' and ', K skipped' when any were."""
    passed = sum(r.status == PASS for r in results)
    failed = sum(r.status == FAIL for r in results)
    skipped = sum(r.status == SKIP for r in results)
    line = f"{passed} passed, {failed} failed"
    return line + (f", {skipped} skipped" if skipped else "")


def main(url: str, only: str | None = None) -> int:
    """`blindrelay conformance URL [-k FILTER]`: a line per check, then the summary.
    Exit status 0 only if no check failed (and at least one ran)."""
    try:
        normalize_url(url)
    except ValueError as exc:
        print(f"blindrelay conformance: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(run_checks(url, only,
                                     on_result=lambda r: print(r.line(), flush=True)))
    print(summary(results), flush=True)
    if not results:
        print(f"blindrelay conformance: no check name contains {only!r}", file=sys.stderr)
        return 2
    return 1 if any(r.failed for r in results) else 0
