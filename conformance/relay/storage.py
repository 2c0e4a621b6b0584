"""The storage audit of a relay run on this machine (`conformance --data DIR`).

The kit imports no relay code (it is a black box: tests/test_layering.py), and only
the relay's own tooling knows how it stores things. So the audit runs as a process,
`blindrelay audit --data DIR --json` by default, whose JSON document (server/audit.py
`inventory`) is read here into a StorageAudit. Another implementation can give its
own command that prints the same document.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

AUDIT_TIMEOUT = 60.0


class AuditUnavailable(Exception):
    """The audit command could not run or printed no audit."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    rows: int
    columns: tuple[str, ...]
    documented: bool


@dataclass(frozen=True, slots=True)
class StorageAudit:
    tables: dict[str, Table]
    findings: tuple[str, ...]
    envelopes: int | None
    oldest_envelope: int | None
    """received_at (unix seconds) of the oldest envelope stored, if any."""
    audited_at: int

    def rows(self, table: str) -> int:
        found = self.tables.get(table)
        return 0 if found is None else found.rows


def default_command(data: Path) -> tuple[str, ...]:
    return (sys.executable, "-m", "blindrelay", "audit", "--data", str(data), "--json")


def parse(text: str) -> StorageAudit:
    """The audit's JSON document (schema 1), checked field by field."""
    try:
        doc = json.loads(text)
        if doc.get("schema") != 1:
            raise ValueError(f"schema {doc.get('schema')!r}, expected 1")
        tables = {
            t["name"]: Table(str(t["name"]), int(t["rows"]), tuple(map(str, t["columns"])),
                             bool(t["documented"]))
            for t in doc["tables"]}
        env = doc.get("envelopes") or {}
        oldest = env.get("oldest_received_at")
        return StorageAudit(
            tables, tuple(str(f) for f in doc["findings"]),
            None if env.get("count") is None else int(env["count"]),
            None if oldest is None else int(oldest), int(doc["audited_at"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuditUnavailable(f"the audit printed no valid audit document: {exc}") from None


async def run_audit(command: tuple[str, ...]) -> StorageAudit:
    """Runs the audit command; exit status 0 or 3 (findings) both carry a document."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise AuditUnavailable(f"cannot run {command[0]}: {exc}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), AUDIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AuditUnavailable(f"the audit took over {AUDIT_TIMEOUT:g} s") from None
    if proc.returncode not in (0, 3):
        why = err.decode(errors="replace").strip().splitlines()
        raise AuditUnavailable(f"the audit exited with {proc.returncode}"
                               + (f": {why[-1]}" if why else ""))
    return parse(out.decode(errors="replace"))
