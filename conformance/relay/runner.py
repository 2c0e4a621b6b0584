"""Runs the registered checks against a server URL and reports them."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conformance.relay.cleanup import Tally, delete_accounts
from conformance.relay.options import RunOptions
from conformance.relay.probe import CheckFailed, Probe, SkipCheck
from conformance.relay.registry import FAIL, PASS, SKIP, Check, CheckResult, Context, ordered
from conformance.relay.storage import AuditUnavailable, default_command, run_audit
from conformance.report import Report, exit_status, listing, summary, write_json, write_junit
from protocol.wire.frames import Limits, normalize_url

DEFAULT_REQUEST_TIMEOUT = 5.0
CLEANUP_TIMEOUT = 60.0


class Unreachable(Exception):
    """Nothing answers at the URL: no check can run."""


def matches(name: str, only: str | None) -> bool:
    """`only` is one substring or several separated by commas ('messages.,storage.')."""
    return only is None or any(part and part in name for part in only.split(","))


def select(only: str | None = None, options: RunOptions | None = None) -> list[Check]:
    """The checks whose name contains `only` (all of them for None) and that run with
    these options (bars set, --data given), in run order."""
    options = options if options is not None else RunOptions()
    return [c for c in ordered() if matches(c.name, only) and c.runs_with(options)]


async def run_one(check: Check, url: str, limits: Limits,
                  request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                  options: RunOptions | None = None,
                  tally: Tally | None = None) -> CheckResult:
    """Runs one check under its timeout, then deletes every account it may have
    registered; never raises (but for cancellation). A check that leaves an account
    it cannot delete fails."""
    ctx = Context(url, limits, request_timeout, options)
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
        cleaned = await _clean_up(url, ctx, request_timeout)
        if tally is not None:
            tally.add(cleaned)
    if violations and status != FAIL:
        status, reason = FAIL, "; ".join(violations)
    if cleaned.left and status != FAIL:
        status, reason = FAIL, cleaned.problem()
    return CheckResult(check.name, status, reason, time.monotonic() - start)


async def _clean_up(url: str, ctx: Context, request_timeout: float) -> Tally:
    pending = list(ctx.ledger.candidates)
    try:
        return await asyncio.wait_for(delete_accounts(url, ctx.ledger, request_timeout),
                                      CLEANUP_TIMEOUT)
    except TimeoutError:
        return Tally(left=[(name, f"clean-up did not finish within {CLEANUP_TIMEOUT:g} s")
                           for name, _ in pending])


async def read_limits(url: str, timeout: float = DEFAULT_REQUEST_TIMEOUT) -> Limits:
    probe = await Probe.open(url, timeout)
    try:
        return probe.limits
    finally:
        await probe.close()


@dataclass(slots=True)
class Run:
    """What a run produced besides the results: its clean-up."""

    tally: Tally = field(default_factory=Tally)


async def run_checks(
    url: str,
    only: str | None = None,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    options: RunOptions | None = None,
    run: Run | None = None,
) -> list[CheckResult]:
    """Runs every check (or those whose name contains `only`) against the server at
    `url`, in order; `on_result` hears each result as soon as it is reported. Raises
    Unreachable when nothing accepts a connection at `url`; a server that answers but
    sends no proper HELLO fails every check."""
    options = options if options is not None else RunOptions()
    run = run if run is not None else Run()
    checks = select(only, options)
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
        if str(exc).startswith("cannot connect"):
            raise Unreachable(str(exc)) from None
        for c in checks:
            report(CheckResult(c.name, FAIL, str(exc)))
        return results
    if options.data is not None and any(c.name.startswith("storage.") for c in checks):
        try:
            options.before = await run_audit(options.audit_command
                                             or default_command(options.data))
        except AuditUnavailable:
            options.before = None  # the storage checks say so
    background = {
        c.name: asyncio.get_running_loop().create_task(
            run_one(c, url, limits, request_timeout, options, run.tally))
        for c in checks if c.background
    }
    try:
        for c in checks:
            task = background.get(c.name)
            report(await task if task is not None else
                   await run_one(c, url, limits, request_timeout, options, run.tally))
    finally:
        for task in background.values():
            task.cancel()
        await asyncio.gather(*background.values(), return_exceptions=True)
    return results


def list_checks(only: str | None = None) -> list[str]:
    """`--list`: one line per check (every check, whatever options would enable it):
    its name and its description's first sentence."""
    return listing((c.name, _first_sentence(c.doc)) for c in ordered()
                   if matches(c.name, only))


def _first_sentence(doc: str) -> str:
    return _SENTENCE_END.split(doc, maxsplit=1)[0].rstrip(".") + "."


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)])\.\s+(?=[A-Z(])")


@dataclass(frozen=True, slots=True)
class Outputs:
    """Where the results go besides the terminal."""

    json: bool = False
    """One JSON document on stdout instead of the lines (conformance.report)."""
    junit: Path | None = None
    strict: bool = False


def main(url: str, only: str | None = None, *, options: RunOptions | None = None,
         outputs: Outputs | None = None) -> int:
    """`blindrelay conformance URL [-k FILTER]`: a line per check, then the summary.
    Exit status 0 only if no check failed (nor, with --strict, was skipped) and at
    least one ran; 2 when the URL is wrong, nothing listens there, or the filter
    matches nothing."""
    outputs = outputs if outputs is not None else Outputs()
    options = options if options is not None else RunOptions()
    try:
        normalize_url(url)
    except ValueError as exc:
        print(f"blindrelay conformance: {exc}", file=sys.stderr)
        return 2

    def show(result: CheckResult) -> None:
        if not outputs.json:
            print(result.line(), flush=True)

    run = Run()
    started = time.time()
    try:
        results = asyncio.run(run_checks(url, only, on_result=show, options=options, run=run))
    except Unreachable as exc:
        print(f"blindrelay conformance: {exc}", file=sys.stderr)
        unreachable = [CheckResult("relay.reachable", FAIL, str(exc))]
        _machine_outputs(url, unreachable, outputs, run, started)
        return 2
    if not outputs.json:
        print(summary(results, outputs.strict), flush=True)
        if run.tally.left:
            print(f"blindrelay conformance: {run.tally.problem()}", file=sys.stderr)
    _machine_outputs(url, results, outputs, run, started)
    if not results:
        print(f"blindrelay conformance: no check name contains {only!r}", file=sys.stderr)
        return 2
    return exit_status(results, outputs.strict)


def _machine_outputs(url: str, results: list[CheckResult], outputs: Outputs, run: Run,
                     started: float) -> None:
    if not (outputs.json or outputs.junit):
        return
    report = Report("relay", url, results, outputs.strict,
                    {"cleanup": run.tally.to_json()}, started)
    if outputs.json:
        write_json(sys.stdout, report)
    if outputs.junit is not None:
        write_junit(outputs.junit, report)
