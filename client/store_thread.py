"""The store's SQLite connection, with its COMMITs off the event loop.

A COMMIT in WAL mode with `synchronous=FULL` waits for an fsync: run on the event loop
it stalls every frame arriving meanwhile (issue 14). `Connection.commit_soon` runs the
COMMIT of the open transaction on one dedicated thread, and the caller awaits it
before doing anything that depends on it being durable (acknowledging an envelope,
say: docs/CLIENT.md, "Never lose, never desync").

The sqlite3 connection is shared between the event loop's thread and that one thread,
never used by both at once: every other use of the connection (`execute`,
`executescript`, `close`) first waits for a COMMIT in flight to finish. Code that
touches the store while a commit is in flight therefore blocks for its remainder, as
it always did; code that does not (reading the socket, sending, decrypting) runs on.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


class Connection:
    """A sqlite3 connection opened with check_same_thread=False, and the one thread its
    COMMITs run on."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.raw = db
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        self._then: Callable[[], None] | None = None
        self.on_failed: Callable[[BaseException], None] | None = None
        """Called (on the caller's thread) when a COMMIT in flight failed and was rolled
        back, before anything else uses the connection: the row engine re-reads the
        record of row versions there."""

    def settle(self) -> None:
        """Waits for a COMMIT in flight, if any (a failed one is reported once to
        `on_failed`; the awaiting caller raises it)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        exc = inflight.exception()
        if exc is not None:
            self._then = None
            if self.on_failed is not None:
                self.on_failed(exc)
        else:
            self._run_then()

    def _run_then(self) -> None:
        then, self._then = self._then, None
        if then is not None:
            then()

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        if self._inflight is not None:
            self.settle()
        return self.raw.execute(sql, tuple(args))

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self.settle()
        return self.raw.executescript(sql)

    def commit_soon(self, then: Callable[[], None] | None = None
                    ) -> concurrent.futures.Future[None]:
        """Runs COMMIT of the open transaction on the store's thread (ROLLBACK there if
        it fails); the connection is not used by anyone else until it is done. `then`
        runs once it succeeded, before anyone else uses the connection: whoever comes
        first, the caller awaiting it (`done`) or another user of the store (so no one
        reads what it committed before, say, the events it raised were shown)."""
        self.settle()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="blindrelay-store")
        self._then = then
        self._inflight = self._executor.submit(self._commit)
        return self._inflight

    def done(self, future: concurrent.futures.Future[None]) -> None:
        """The caller awaited `future` (it succeeded): it is no longer in flight."""
        if self._inflight is future:
            self._inflight = None
            self._run_then()

    def settling(self, future: concurrent.futures.Future[None]) -> bool:
        """The caller awaited `future` and it failed: True if no one else has dealt
        with that yet (the caller then does), and it is no longer in flight."""
        if self._inflight is not future:
            return False
        self._inflight, self._then = None, None
        return True

    def _commit(self) -> None:
        try:
            self.raw.execute("COMMIT")
        except BaseException:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.settle()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.raw.close()
