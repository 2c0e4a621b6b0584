"""The conformance suite: black-box checks of a relay, given only its URL.

    blindrelay conformance ws://127.0.0.1:8765 [-k FILTER]

Each check opens its own connections, uses fresh random usernames starting with
'cf' (so the suite can run again and again against the same server), speaks only the
documented frames, respects the rate the server announces, closes every connection
it opened, deletes every account it registered (DELETE_ACCOUNT, which takes the
account's queued envelopes with it: cleanup.py), and is bounded by a timeout, so a
hanging server makes it FAIL rather than hang. Checks that the announced limits make
impractical (an envelope TTL over a minute, say) are reported as SKIP; the tester's
bars (options.py: --max-ttl, --max-queue, --require-rate-limit, ...) and --strict
turn such a relay into a failed run. What a relay stores cannot be seen from
outside: `--data DIR` adds the operator-side audit (checks_storage.py).

`main(url, only, options=, outputs=)` prints a line per check and a closing 'N passed,
M failed' line (or --json, --junit FILE); `run_checks(url, only)` returns the results;
`CHECKS` holds every check by name and `ordered()` lists them in run order.
"""

# importing the check modules registers their checks
from conformance.relay import (  # noqa: F401
    checks_accounts,
    checks_bars,
    checks_certificates,
    checks_directory,
    checks_groups,
    checks_limits,
    checks_malformed,
    checks_messages,
    checks_prekeys,
    checks_sealed,
    checks_storage,
)
from conformance.relay.options import Bars, RunOptions
from conformance.relay.probe import CheckFailed, Probe, Received, SkipCheck
from conformance.relay.registry import CHECKS, Check, CheckResult, Context, check, ordered
from conformance.relay.runner import (
    Outputs,
    Run,
    Unreachable,
    list_checks,
    main,
    run_checks,
    run_one,
    select,
)
from conformance.report import summary

__all__ = [
    "CHECKS",
    "Bars",
    "Outputs",
    "Run",
    "RunOptions",
    "Unreachable",
    "list_checks",
    "Check",
    "CheckFailed",
    "CheckResult",
    "Context",
    "Probe",
    "Received",
    "SkipCheck",
    "check",
    "main",
    "ordered",
    "run_checks",
    "run_one",
    "select",
    "summary",
]
