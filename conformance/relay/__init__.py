"""The conformance suite: black-box checks of a relay, given only its URL.

    blindrelay conformance ws://127.0.0.1:8765 [-k FILTER]

Each check opens its own connections, uses fresh random usernames (so the suite can
run again and again against the same server), speaks only the documented frames,
respects the rate the server announces, closes every connection it opened, and is
bounded by a timeout, so a hanging server makes it FAIL rather than hang. Checks
that the announced limits make impractical (an envelope TTL over a minute, say)
are reported as SKIP.

`main(url, only)` prints a line per check and a closing 'N passed, M failed' line;
`run_checks(url, only)` returns the results; `CHECKS` holds every check by name and
`ordered()` lists them in run order.
"""

# importing the check modules registers their checks
from conformance.relay import (  # noqa: F401
    checks_accounts,
    checks_directory,
    checks_limits,
    checks_malformed,
    checks_messages,
    checks_prekeys,
)
from conformance.relay.probe import CheckFailed, Probe, Received, SkipCheck
from conformance.relay.registry import CHECKS, Check, CheckResult, Context, check, ordered
from conformance.relay.runner import main, run_checks, run_one, select, summary

__all__ = [
    "CHECKS",
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
