"""Lab 1's check: the provider that keeps everything.

Runs a real relay built from the student's `KeepingRelay`, two real clients exchange
messages carrying fresh canaries, every envelope is acknowledged, the relay stops, and
then three tools look at its data directory: the audit (server/audit.py), the data
inventory (every table, column and file must be one the honest relay has, which
tests/server/test_inventory.py holds to docs/DATA.md) and prove's canary scan
(teaching/prove.py). The lesson is in which of them can see an archive of ciphertext.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import secrets
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from server.audit import KNOWN_FILES, audit
from server.events import RelayEvent, Stored
from server.relay import Relay
from server.sqlite_store import DB_FILENAME, SqliteStorage
from teaching.labs.grading import Report, StudentCodeError, load_student_module
from teaching.labs.world import arrived, lab_world, wait_until
from teaching.prove import Place, encodings, scan_files

STUDENT_FILE = "keeper.py"
PEOPLE = ("alice", "bob")
DOCUMENTED_FILES = frozenset(KNOWN_FILES)
"""Every file the honest relay may have in its data directory (docs/DATA.md)."""


@dataclass
class Run:
    """What the exchange produced: the envelope bodies the relay was given for Alice
    and Bob, the canaries, and whether every message arrived and was acknowledged."""

    bodies: list[bytes] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    delivered: int = 0
    sent: int = 0
    acknowledged: bool = False


def needles(body: bytes) -> list[bytes]:
    """Byte patterns a copy of `body` would leave on disk: 32-byte windows from several
    places (a long blob can straddle SQLite pages), raw, as hex and as base64."""
    found: list[bytes] = []
    for start in sorted({0, len(body) // 3, len(body) // 2, 2 * len(body) // 3}):
        start -= start % 3  # base64 of an aligned window is part of the whole's base64
        window = body[start:start + 33]
        if len(window) < 33:
            continue
        found += [window, window.hex().encode(), window.hex().upper().encode(),
                  base64.b64encode(window)]
    return found


def archived(data_dir: Path, bodies: list[bytes]) -> dict[str, int]:
    """File (relative to the data directory) -> how many of `bodies` it holds a copy of."""
    hits: dict[str, int] = {}
    patterns = [needles(body) for body in bodies]
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        count = sum(any(n in data for n in pattern) for pattern in patterns)
        if count:
            hits[str(path.relative_to(data_dir))] = count
    return hits


def schema(db_path: Path) -> dict[str, set[str]]:
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type='table'")]
        return {t: {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}
    finally:
        db.close()


async def documented_schema() -> dict[str, set[str]]:
    """The honest relay's schema, made fresh (the one docs/DATA.md documents)."""
    with tempfile.TemporaryDirectory(prefix="blindrelay-lab1-") as tmp:
        store = await SqliteStorage.open(Path(tmp))
        await store.close()
        return schema(Path(tmp) / DB_FILENAME)


async def inventory_findings(data_dir: Path) -> list[str]:
    """What the data directory holds that the data inventory does not list."""
    findings = [f"file {p.relative_to(data_dir)}" for p in sorted(data_dir.rglob("*"))
                if p.is_file() and str(p.relative_to(data_dir)) not in DOCUMENTED_FILES]
    findings += [f"directory {p.relative_to(data_dir)}" for p in sorted(data_dir.rglob("*"))
                 if p.is_dir()]
    db_path = data_dir / DB_FILENAME
    if db_path.exists():
        expected, actual = await documented_schema(), schema(db_path)
        for table, columns in sorted(actual.items()):
            if table not in expected:
                findings.append(f"table {table}")
            elif extra := sorted(columns - expected[table]):
                findings.append(f"columns {', '.join(extra)} of table {table}")
    return findings


async def exchange(workdir: Path, factory: type[Relay], run: Run) -> None:
    """Alice and Bob talk through the student's relay until every envelope for them has
    been acknowledged; the relay has stopped when this returns."""
    run.canaries = [f"CANARY-{secrets.token_urlsafe(12)}" for _ in range(4)]

    def observe(event: RelayEvent) -> None:
        if isinstance(event, Stored) and event.recipient in PEOPLE:
            run.bodies.append(event.body)

    async with lab_world(workdir, factory, PEOPLE) as world:
        world.relay.observers.append(observe)
        alice, bob = world.clients["alice"], world.clients["bob"]
        script = [(alice, "bob", run.canaries[0]), (alice, "bob", run.canaries[1]),
                  (bob, "alice", run.canaries[2]), (alice, "bob", run.canaries[3])]
        for client, peer, text in script:
            run.sent += 1
            await client.send_text(peer, text)
            if await wait_until(functools.partial(arrived, world, peer, client.username,
                                                  text), 10):
                run.delivered += 1
        storage = world.relay.storage

        async def queued() -> int:
            return sum([len(await storage.queued(name, 0, 100)) for name in PEOPLE])

        def outboxes_empty() -> bool:  # a receipt may still be on its way (sealed, on a
            return all(not c.store.outbox() for c in world.clients.values())  # new connection)

        for _ in range(500):  # up to 10 s for the receipts and their acknowledgements
            if outboxes_empty() and await queued() == 0:
                run.acknowledged = True
                break
            await asyncio.sleep(0.02)


async def check(lab_dir: Path) -> Report:
    report = Report(1)
    try:
        module = load_student_module(lab_dir / STUDENT_FILE, "blindrelay_lab1_keeper")
    except StudentCodeError as exc:
        report.grade("relay works", False, str(exc))
        return report
    factory = getattr(module, "KeepingRelay", None)
    if not (isinstance(factory, type) and issubclass(factory, Relay)):
        report.grade("relay works", False,
                     f"{STUDENT_FILE} must define class KeepingRelay(Relay)")
        return report
    with tempfile.TemporaryDirectory(prefix="blindrelay-lab1-") as tmp:
        workdir = Path(tmp)
        run = Run()
        try:
            await exchange(workdir, factory, run)
        except Exception as exc:  # the student's relay crashed: that is a grade, too
            report.grade("relay works", False,
                         f"the relay or a client failed: {type(exc).__name__}: {exc}")
            return report
        await grade(report, workdir / "relay", run)
    return report


async def grade(report: Report, data_dir: Path, run: Run) -> None:
    report.grade("relay works", run.delivered == run.sent and run.acknowledged,
                 f"{run.delivered} of {run.sent} messages arrived"
                 + ("" if run.acknowledged else
                    ", but the relay still holds envelopes their recipient acknowledged"
                    " (or it did not let them be acknowledged)"))
    hits = archived(data_dir, run.bodies)
    kept = max(hits.values(), default=0)
    where = ", ".join(f"{name} ({n})" for name, n in hits.items())
    report.grade("archive kept", kept > 0,
                 f"copies of {kept} of {len(run.bodies)} acknowledged envelopes are still "
                 f"on the relay's disk, in {where}" if kept else
                 f"none of the {len(run.bodies)} envelopes Alice and Bob acknowledged is "
                 "left in the data directory: the relay deleted them, as promised")
    out = io.StringIO()
    audit_rc = audit(data_dir, out)
    flagged = [line.strip() for line in out.getvalue().splitlines()
               if "NOT IN THE DATA INVENTORY" in line or "WARNING" in line]
    inventory = await inventory_findings(data_dir)
    caught_by = [name for name, seen in (("audit", audit_rc != 0), ("inventory", inventory))
                 if seen]
    if not kept:
        report.grade("caught", False, "there is no archive to catch yet")
    elif caught_by:
        report.grade("caught", True, f"flagged by the {' and the '.join(caught_by)}")
    else:
        report.grade("caught", False,
                     "neither the audit nor the inventory flags it: the archive hides "
                     "inside tables and files the inventory documents. Write down why the "
                     "tools cannot tell it apart (README.md), and what could")
    report.note("audit", f"exit code {audit_rc}: " + ("; ".join(flagged) if flagged else
                "it lists every file and table, and flags only tables docs/DATA.md does "
                "not list; nothing was flagged"))
    report.note("inventory", "not in docs/DATA.md: " + "; ".join(inventory) if inventory
                else "every file, table and column is one docs/DATA.md lists")
    place = Place("relay data directory")
    scan_files(place, data_dir, {str(i + 1): encodings(c) for i, c in enumerate(run.canaries)})
    report.note("prove's scan", (f"found plaintext: {', '.join(place.hits)}" if place.hits
                                 else f"no canary in {place.scanned:,} bytes: it looks for "
                                 "plaintext, and the relay never has any, so it cannot see "
                                 "an archive of ciphertext (question 1)"))
