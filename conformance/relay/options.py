"""What a tester adds to a run: minimum bars the announced limits must meet, and
(for a relay run on this machine) its data directory to audit.

A relay may announce any limits it likes, and checks that would take too long under
huge ones are skipped: a relay announcing a 136-year TTL and a four-billion-envelope
queue would otherwise pass with a handful of SKIPs. The bars say what the tester
accepts; each one set becomes a check (`bars.*`) that fails when HELLO does not meet
it. `--strict` makes any SKIP fail the run as well.

Storage promises (no sender stored, nothing kept after ACK, expiry actually
deleting) cannot be seen from outside at all: a relay that keeps everything answers
every frame exactly like one that keeps nothing. Only an audit of what it stores can
tell, which needs the operator's side: `--data DIR` (see checks_storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.relay.storage import StorageAudit


@dataclass(frozen=True, slots=True)
class Bars:
    """Upper bounds on HELLO's limits (None: no bar), and whether the announced rate
    limit must be one the suite can see enforced."""

    max_ttl: int | None = None
    max_queue: int | None = None
    max_frame: int | None = None
    max_envelope: int | None = None
    max_prekeys: int | None = None
    max_rate: int | None = None
    max_burst: int | None = None
    require_rate_limit: bool = False

    def limit_bars(self) -> dict[str, int]:
        """{HELLO field: bar} for every numeric bar set."""
        fields = {"envelope_ttl": self.max_ttl, "max_queue": self.max_queue,
                  "max_frame": self.max_frame, "max_envelope": self.max_envelope,
                  "max_prekeys": self.max_prekeys, "rate_per_second": self.max_rate,
                  "rate_burst": self.max_burst}
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(slots=True)
class RunOptions:
    """Everything about a run besides the URL and the filter."""

    bars: Bars = field(default_factory=Bars)
    data: Path | None = None
    """The relay's data directory, when it runs on this machine: adds the storage
    audit (`blindrelay audit --data DIR --json`, run before and after the checks)."""
    before: StorageAudit | None = None
    """The audit taken before the first check (set by the runner)."""
    audit_command: tuple[str, ...] | None = None
    """The command that audits `data` (default: this Python's `-m blindrelay audit`)."""
