"""`blindrelay audit --data DIR [--storage URL]`: everything a relay's data directory
(and, for a relay on PostgreSQL, its database) holds.

Reads the database read-only (server/audit_sources.py: SQLite or PostgreSQL) and
prints, per table, the row count, the metadata columns in the clear and every key or
ciphertext as its length and SHA-256 only, then the files on disk and a summary. An
operator, or a class, can see that there is nothing else.

`--json` prints the same inventory for machines (one document, schema 1: files,
tables with their row counts and columns, what is not in docs/DATA.md, the oldest
queued envelope). `blindrelay conformance --data DIR` runs it as a process before
and after its checks: the conformance kit is a black box that imports no relay
code, and the audit is the operator-side tool that knows this relay's storage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import TextIO

from protocol.wire.certificates import signer_from_seed
from protocol.wire.kt.directory import Binding, Directory
from protocol.wire.kt.note import parse_signer_key
from server.audit_sources import Source, SourceUnavailable, open_source
from server.certificates import CERT_KEY_FILENAME
from server.kt import LOG_KEY_FILENAME, VRF_KEY_FILENAME
from server.sqlite_store import BODIES_FILENAME, DB_FILENAME, SCHEMA_VERSION
from server.storage import RECEIVED_AT_GRANULARITY

INVENTORY: dict[str, tuple[str, ...]] = {
    "accounts": ("username", "identity_key"),
    "signed_prekeys": ("username", "signed_prekey", "last_resort_kem_prekey"),
    "one_time_prekeys": ("username", "key_id", "record"),
    "kem_one_time_prekeys": ("username", "key_id", "record"),
    "envelopes": ("id", "envelope_id", "recipient", "seq", "body", "received_at", "shared",
                  "body_apart"),
    "envelope_bodies": ("id", "body"),
    "group_bodies": ("id", "body", "refs"),
    "group_epochs": ("group_hash", "epoch", "at"),
    "key_packages": ("username", "id", "body", "last_resort"),
    "envelope_usage": ("id", "bytes", "count"),
    "kt_updates": ("idx", "username", "value", "opening"),
    "delivery_capabilities": ("username", "capability_hash", "allow_anyone", "set_at"),
    "queue_heads": ("username", "seq"),
}
"""Every table and column docs/DATA.md lists (tests/server/test_inventory.py keeps
the two in step)."""
POSTGRES_ONLY = ("queue_heads",)
"""Tables only the PostgreSQL storage has (docs/DATA.md marks them so)."""
SQLITE_ONLY: dict[str, tuple[str, ...]] = {"envelope_bodies": ("id", "body"),
                                           "envelopes": ("body_apart",)}
"""Tables (every column listed) and columns only the SQLite storage has: bodies of
16 KiB and more kept out of line, in relay-bodies.sqlite3 (docs/DATA.md marks them so;
PostgreSQL keeps large values out of line by itself, TOAST)."""
KNOWN_TABLES = tuple(INVENTORY)
KNOWN_FILES = (*(name + suffix for name in (DB_FILENAME, BODIES_FILENAME)
                 for suffix in ("", "-wal", "-shm", "-journal")),
               LOG_KEY_FILENAME, VRF_KEY_FILENAME, CERT_KEY_FILENAME, "relay.lock")
"""The files docs/DATA.md lists ('-journal': SQLite's, for a moment, outside WAL mode)."""
IDENTIFYING = re.compile(r"sender|from|source|origin|author|ip|addr|host|peer|plain",
                         re.IGNORECASE)
"""Column names that would mean a promise in docs/DATA.md is broken outright."""
ROWS_SHOWN = 20


def _blob(value: bytes) -> str:
    return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:16]}>"


def _when(stamp: int) -> str:
    moment = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    age = max(0, int(time.time()) - stamp)
    return f"{moment} ({age} s ago)"


def _cell(column: str, value: object) -> str:
    if isinstance(value, bytes):
        if column in ("signed_prekey", "last_resort_kem_prekey", "record"):
            key_id = int.from_bytes(value[:4], "big")
            return f"id {key_id} {_blob(value)}"
        if column == "envelope_id":
            return value.hex()
        if column == "value":  # a directory binding: public once looked up (19.6)
            try:
                binding = Binding.decode(value)
            except Exception:
                return _blob(value)
            return f"{binding.kind.name} v{binding.version} {_blob(value)}"
        return _blob(value)
    if column in ("received_at", "set_at") and isinstance(value, int):
        return _when(value)
    return str(value)


def audit(data_dir: Path, out: TextIO = sys.stdout, rows_shown: int = ROWS_SHOWN,
          storage_url: str = "") -> int:
    try:
        source = open_source(data_dir, storage_url)
    except SourceUnavailable as exc:
        print(f"blindrelay audit: {exc}", file=sys.stderr)
        return 1
    print(f"blindrelay audit of {data_dir.resolve()}\n", file=out)
    if storage_url:
        print(f"Tables in {source.name}\n", file=out)
    print("Files in the data directory:", file=out)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(data_dir)}  {path.stat().st_size} bytes", file=out)
    try:
        tables = source.tables()
        counts: dict[str, int] = {}
        unexpected = [t for t in tables if t not in KNOWN_TABLES]
        for table in tables:
            columns = source.columns(table)
            count = source.count(table)
            counts[table] = count
            flag = "   <-- NOT IN THE DATA INVENTORY" if table in unexpected else ""
            print(f"\nTable {table}: {count} rows{flag}", file=out)
            print("  columns: " + ", ".join(f"{n} ({t})" for n, t in columns), file=out)
            extra = [n for n, _ in columns if n not in INVENTORY.get(table, (n,))]
            if extra:
                unexpected.append(f"{table}.{'/'.join(extra)}")
                print(f"  <-- columns NOT IN THE DATA INVENTORY: {', '.join(extra)}",
                      file=out)
            names = [n for n, _ in columns]
            for row in source.rows(table, rows_shown):
                print("  " + "  ".join(f"{n}={_cell(n, v)}" for n, v in zip(names, row,
                                                                            strict=True)),
                      file=out)
            if count > rows_shown:
                print(f"  ... {count - rows_shown} more rows", file=out)
        print("\nIndexes (copies of columns listed above): " + ", ".join(source.indexes()),
              file=out)
        print("\nSummary:", file=out)
        if "envelopes" in tables:
            summary = source.envelopes()
            print(f"  {summary.total} envelopes queued for {summary.recipients} recipients, "
                  f"{summary.size} bytes of ciphertext", file=out)
            if summary.oldest is not None:
                print(f"  oldest queued envelope received {_when(summary.oldest)}", file=out)
            _envelope_rows_summary(source, summary.total, summary.coarse, out)
        print(f"  {counts.get('accounts', 0)} accounts; "
              f"{counts.get('one_time_prekeys', 0)} one-time X25519 prekeys and "
              f"{counts.get('kem_one_time_prekeys', 0)} one-time ML-KEM prekeys waiting",
              file=out)
        print("  No sender, no IP address, no plaintext: the schema has no column for them.",
              file=out)
        version = source.schema_version()
        if version < SCHEMA_VERSION:
            print(f"  Schema version {version}: the relay migrates it to {SCHEMA_VERSION} "
                  "at its next start (docs/DATA.md)", file=out)
        if "kt_updates" in tables:
            _directory_summary(data_dir, source, out)
        _cert_key_summary(data_dir, out)
        if unexpected:
            print(f"  WARNING: tables or columns not in docs/DATA.md: {', '.join(unexpected)}",
                  file=out)
            return 3
    finally:
        source.close()
    return 0


def _envelope_rows_summary(source: Source, total: int, coarse: int, out: TextIO) -> None:
    """What links envelope rows, checked on the rows themselves (docs/DATA.md, "Table
    envelopes"): received_at coarse, and no AUTOINCREMENT counter."""
    if total:
        if coarse == total:
            print(f"  every received_at is a multiple of {RECEIVED_AT_GRANULARITY} s",
                  file=out)
        else:
            print(f"  {total - coarse} of {total} received_at times are not multiples of "
                  f"{RECEIVED_AT_GRANULARITY} s (a TTL under 20 minutes coarsens less; "
                  "schema 3 kept exact times)",
                  file=out)
    print(f"  {source.counters()}", file=out)


def _directory_summary(data_dir: Path, source: Source, out: TextIO) -> None:
    """The key directory as the relay would rebuild it (PROTOCOL.md 19.10): its size,
    head root and public log key. Reads the key files, writes nothing, prints no
    secret."""
    log_path, vrf_path = data_dir / LOG_KEY_FILENAME, data_dir / VRF_KEY_FILENAME
    if not (log_path.exists() and vrf_path.exists()):
        print("  Key directory: no keys yet (the relay creates them at start)", file=out)
        return
    try:
        signer = parse_signer_key(log_path.read_text("ascii").strip())
        directory = Directory(signer, vrf_path.read_bytes())
        for _, username, value, opening in source.directory_rows():
            directory.replay(username, value, opening)
    except Exception as exc:
        print(f"  Key directory: cannot be rebuilt: {type(exc).__name__}: {exc}", file=out)
        return
    print(f"  Key directory: {directory.size} updates, head root "
          f"{directory.log.root().hex()}", file=out)
    print(f"  Key directory log key: {signer.verifier.encode()}", file=out)


def _cert_key_summary(data_dir: Path, out: TextIO) -> None:
    """The sender-certificate public key (PROTOCOL.md 20.3), what CERT_KEY announces;
    never the seed. Certificates themselves are kept nowhere."""
    path = data_dir / CERT_KEY_FILENAME
    if not path.exists():
        print("  Sender-certificate key: none yet (the relay creates it at start)", file=out)
        return
    try:
        public = signer_from_seed(path.read_bytes())[1]
    except ValueError as exc:
        print(f"  Sender-certificate key: unreadable: {exc}", file=out)
        return
    print(f"  Sender-certificate key: {public.hex()} (issued certificates are not kept)",
          file=out)


def inventory(data_dir: Path, storage_url: str = "") -> dict[str, object]:
    """The `--json` document: what the data directory (and the database) holds, and
    `findings`, one sentence per thing docs/DATA.md does not list. Raises
    SourceUnavailable when there is no relay database."""
    source = open_source(data_dir, storage_url)
    findings: list[str] = []
    files = [{"path": str(p.relative_to(data_dir)), "bytes": p.stat().st_size}
             for p in sorted(p for p in data_dir.rglob("*") if p.is_file())]
    for f in files:
        if f["path"] not in KNOWN_FILES:
            findings.append(f"file {f['path']} is not in the data inventory")
    try:
        tables: list[dict[str, object]] = []
        for name in source.tables():
            columns = [c for c, _ in source.columns(name)]
            rows = source.count(name)
            documented = name in INVENTORY
            extra = [c for c in columns if documented and c not in INVENTORY[name]]
            tables.append({"name": name, "rows": rows, "columns": columns,
                           "documented": documented, "undocumented_columns": extra})
            if not documented:
                findings.append(f"table {name} ({rows} rows; columns {', '.join(columns)}) "
                                "is not in the data inventory")
            for column in extra:
                findings.append(f"column {name}.{column} is not in the data inventory")
            for column in columns:
                if (not documented or column in extra) and IDENTIFYING.search(column):
                    findings.append(f"column {name}.{column} looks like it stores who sent "
                                    "or from where, which docs/DATA.md says is never stored")
        envelopes: dict[str, object] = {}
        if any(t["name"] == "envelopes" for t in tables):
            summary = source.envelopes()
            envelopes = {"count": summary.total, "oldest_received_at": summary.oldest}
    finally:
        source.close()
    doc: dict[str, object] = {"schema": 1, "data_dir": str(data_dir.resolve()), "files": files,
                              "tables": tables, "envelopes": envelopes, "findings": findings,
                              "audited_at": int(time.time())}
    if storage_url:
        doc["storage"] = source.name
    return doc


def main(data_dir: Path, as_json: bool = False, storage_url: str = "") -> int:
    """Exit status: 0, 1 (no database), 3 (something not in docs/DATA.md)."""
    if not as_json:
        return audit(data_dir, storage_url=storage_url)
    try:
        doc = inventory(data_dir, storage_url)
    except SourceUnavailable as exc:
        print(f"blindrelay audit: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, ensure_ascii=True))
    return 3 if doc["findings"] else 0
