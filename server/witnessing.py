"""The relay's side of witnessing (PROTOCOL.md 19.11): each new checkpoint is sent to
the configured witnesses, and the note the relay serves carries their cosignatures.

Why: a witness cosigns a head only if it extends the last one it cosigned for this log,
so clients that require its cosignature all see one history. A witness that cannot be
reached costs its cosignature, not the relay's service: the relay serves the head with
the cosignatures it got, and clients that require a missing one refuse it (they say
so), which is the point.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocol.wire.kt.cosignature import add_cosignatures
from protocol.wire.kt.directory import Directory
from server.witness import WitnessConflict, WitnessError, witness_checkpoint

log = logging.getLogger("blindrelay.server")


@dataclass
class Witnesses:
    """The witnesses a relay submits to, what each has cosigned, and the served note."""

    urls: tuple[str, ...] = ()
    timeout: float = 10.0
    sizes: dict[str, int] = field(default_factory=dict)
    """The size each witness last cosigned (0 before the first; a 409 corrects it)."""
    _served: tuple[int, bytes] | None = None

    def note(self, directory: Directory) -> bytes:
        """The newest signed checkpoint, with the cosignatures it has."""
        if self._served is not None and self._served[0] == directory.size:
            return self._served[1]
        return directory.checkpoint()

    async def publish(self, directory: Directory) -> None:
        """Asks every witness to cosign the current head (call under the directory's
        lock, after each append): one at a time, in order; a failure is logged and
        skipped."""
        if not self.urls:
            return
        size, note = directory.size, directory.checkpoint()
        lines: list[str] = []
        for url in self.urls:
            got = await self._ask(url, directory, size, note)
            lines += got
        self._served = (size, add_cosignatures(note, lines) if lines else note)

    async def _ask(self, url: str, directory: Directory, size: int, note: bytes
                   ) -> Sequence[str]:
        for _ in range(2):  # a 409 tells us the witness's size: one retry from there
            old = min(self.sizes.get(url, 0), size)
            proof = directory.consistency(old, size) if 0 < old < size else []
            try:
                lines = await witness_checkpoint(url, old, proof, note, self.timeout)
            except WitnessConflict as exc:
                if exc.latest_size > size or exc.latest_size == old:
                    log.warning("witness %s has cosigned a head of %d entries, beyond "
                                "or off ours (%d): it will not cosign", url,
                                exc.latest_size, size)
                    return []
                self.sizes[url] = exc.latest_size
                continue
            except WitnessError as exc:
                log.warning("witness %s did not cosign the head of %d entries: %s",
                            url, size, exc)
                return []
            self.sizes[url] = size
            return lines
        return []
