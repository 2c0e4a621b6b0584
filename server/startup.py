"""What `run_server` checks and claims before it serves: the process's open-file limit
and the listening address (the data directory's lock is the storage's,
server/sqlite_store.py). Failures are `RelayStartError`s, one clear line each,
which `blindrelay serve` prints without a traceback (PROTOCOL.md 16.8, docs/DATA.md)."""

from __future__ import annotations

import errno
import logging

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("blindrelay.server")


class RelayStartError(Exception):
    """The relay cannot start; the message is one line meant for the operator."""


def raise_open_file_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit, so the connection cap, not the
    kernel, decides when connections are refused. Returns the soft limit now in force
    (0 where the platform has none)."""
    if resource is None:  # pragma: no cover
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # pragma: no cover - keep what we have
            log.warning("could not raise the open-file limit above %d", soft)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def bind_error(exc: OSError, host: str, port: int) -> RelayStartError:
    """The one line to print when the listening socket cannot be opened."""
    if exc.errno == errno.EADDRINUSE:
        return RelayStartError(f"{host}:{port} is already in use (another relay or program "
                               "listens there); pick another --port")
    if exc.errno == errno.EACCES:
        return RelayStartError(f"not allowed to listen on {host}:{port}")
    return RelayStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
