"""The client conformance kit: a hostile relay that drives any client through a small
command-line contract (docs/CONFORMANCE.md) and checks what the client shows, sends
and acknowledges.

    blindrelay conformance-client [--list] [-k FILTER] [--json] [--junit FILE] -- CMD...
"""

from conformance.client.checks import CHECKS, ClientCheck, select
from conformance.client.runner import main, run_checks
from conformance.report import Outcome as ClientResult

__all__ = ["CHECKS", "ClientCheck", "ClientResult", "main", "run_checks", "select"]
