"""The storage audit (--data DIR, for a relay run on this machine): what the relay
keeps, seen from the operator's side, because no frame can show it.

The runner audits the data directory before the first check; these checks audit it
again after every other check has run and deleted its accounts (they come last)."""

from __future__ import annotations

from conformance.relay.options import RunOptions
from conformance.relay.probe import CheckFailed
from conformance.relay.registry import Context, check
from conformance.relay.storage import AuditUnavailable, StorageAudit, default_command, run_audit

GROWS_BY_DESIGN = frozenset({"kt_updates", "envelope_usage"})
"""Tables that may keep a trace of the run: the key directory is an append-only
public log (a registration and its deletion are two entries, PROTOCOL.md 19.6),
envelope_usage one row of totals."""

EXPIRY_SLACK = 60
"""Seconds an expired envelope may outlive its TTL beyond the sweep's own period."""


def _with_data(options: RunOptions) -> bool:
    return options.data is not None


async def _audits(ctx: Context) -> tuple[StorageAudit, StorageAudit]:
    options = ctx.options
    assert options.data is not None
    if options.before is None:
        raise CheckFailed("the data directory could not be audited before the run")
    command = options.audit_command or default_command(options.data)
    try:
        return options.before, await run_audit(command)
    except AuditUnavailable as exc:
        raise CheckFailed(str(exc)) from None


@check("storage.inventory", when=_with_data, timeout=90.0)
async def inventory(ctx: Context) -> None:
    """(--data) Every file, table and column in the data directory is in the documented
    inventory (docs/DATA.md): no sender column, no archive table."""
    _, after = await _audits(ctx)
    if after.findings:
        raise CheckFailed("; ".join(after.findings))


@check("storage.nothing_left", when=_with_data, timeout=90.0)
async def nothing_left(ctx: Context) -> None:
    """(--data) After the run, whose accounts were all deleted, no table holds more rows
    than before it (but the key directory's public log): acknowledged and deleted
    envelopes are gone, not archived."""
    before, after = await _audits(ctx)
    grew = [f"{name} {before.rows(name)} -> {table.rows} rows"
            for name, table in after.tables.items()
            if name not in GROWS_BY_DESIGN and table.rows > before.rows(name)]
    if grew:
        raise CheckFailed("the run left rows behind: " + ", ".join(grew))


@check("storage.expiry", when=_with_data, timeout=90.0)
async def expiry(ctx: Context) -> None:
    """(--data) No stored envelope is older than the announced envelope_ttl (plus a
    quarter of it, the sweep's period, and a minute): expiry deletes."""
    _, after = await _audits(ctx)
    if after.oldest_envelope is None:
        return
    ttl = ctx.limits.envelope_ttl
    age = after.audited_at - after.oldest_envelope
    allowed = ttl + ttl // 4 + EXPIRY_SLACK
    if age > allowed:
        raise CheckFailed(f"an envelope received {age} s ago is still stored "
                          f"(envelope_ttl {ttl} s; at most {allowed} s allowed)")
