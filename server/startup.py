"""What `run_server` checks and claims before it serves: the data directory's lock and
the process's open-file limit. Failures are `RelayStartError`s, one clear line each,
which `blindrelay serve` prints without a traceback (PROTOCOL.md 16.8, docs/DATA.md)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl; the lock is then skipped
    fcntl = None  # type: ignore[assignment]

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("blindrelay.server")

LOCK_FILENAME = "relay.lock"
"""Held (flock, exclusive) for as long as a relay serves from the directory: two relays
writing one database would each believe its own queue and counters."""


class RelayStartError(Exception):
    """The relay cannot start; the message is one line meant for the operator."""


class DataDirLock:
    """An exclusive, non-blocking flock on `data_dir/relay.lock`, released by `release`
    (or when the process exits)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = data_dir / LOCK_FILENAME
        self._fd: int | None = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RelayStartError(
                    f"another relay is already using the data directory {data_dir}") from None
            raise RelayStartError(f"cannot lock {self.path}: {exc.strerror}") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


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
