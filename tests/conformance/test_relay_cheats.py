"""The four relay cheats of issue 11 item 9, each caught by `conformance` with the
right options, while the honest relay passes with the very same options.

Each cheat answers every frame like our relay (tests/adversarial/cheating_relays.py),
so the black-box checks alone pass it: what catches it is the storage audit
(--data) or the tester's bars."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from conformance.relay import Bars, Probe, RunOptions, run_checks
from conformance.relay.registry import fresh_username
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Limits
from server.config import ServerConfig, default_limits
from server.relay import Relay
from server.serve import running_relay
from server.sqlite_store import DB_FILENAME
from tests.adversarial.cheating_relays import (
    HUGE_LIMITS,
    ArchivingRelay,
    NeverExpiringRelay,
    SenderStoringRelay,
)
from tests.support import ROOT, relay_process

SIXTY_DAYS = 60 * 24 * 3600


@dataclass(frozen=True)
class Cheat:
    name: str
    relay: Callable[..., Relay]
    only: str
    caught_by: frozenset[str]
    limits: Limits = field(default_factory=default_limits)
    bars: Bars = field(default_factory=Bars)
    data: bool = True
    old_envelope: bool = False
    """Plant an envelope 60 days old before the run (what a relay that never expires
    would still hold)."""


CHEATS = [
    Cheat("stores senders", SenderStoringRelay, "messages.,storage.",
          frozenset({"storage.inventory"})),
    Cheat("archives acknowledged envelopes", ArchivingRelay, "messages.,storage.",
          frozenset({"storage.inventory", "storage.nothing_left"})),
    Cheat("never expires under the default TTL", NeverExpiringRelay, "register.success,storage.",
          frozenset({"storage.expiry"}), old_envelope=True),
    Cheat("announces huge limits", Relay, "hello.,bars.",
          frozenset({"bars.limits", "bars.rate_limit"}), limits=HUGE_LIMITS,
          bars=Bars(max_ttl=30 * 24 * 3600, max_queue=10_000, require_rate_limit=True),
          data=False),
]


async def _plant_old_envelope(url: str, data_dir: Path) -> None:
    """A user of the relay with one envelope queued, made 60 days old on disk."""
    owner, identity = fresh_username("seed"), IdentityKeyPair.generate()
    probe = await Probe.open(url)
    await probe.register(owner, identity)
    await probe.send([(owner, b"old" * 20)])
    await probe.close()
    db = sqlite3.connect(data_dir / DB_FILENAME, timeout=10)
    with db:
        db.execute("UPDATE envelopes SET received_at = received_at - ?", (SIXTY_DAYS,))
    db.close()
    await asyncio.sleep(1.5)  # a sweep (every 0.5 s here) would have deleted it


async def _run(tmp_path: Path, cheat: Cheat, relay: Callable[..., Relay],
               limits: Limits) -> dict[str, str]:
    data = tmp_path / relay.__name__
    config = ServerConfig(port=0, data_dir=data, limits=limits, expiry_interval=0.5)
    async with running_relay(config, relay) as running:
        if cheat.old_envelope:
            await _plant_old_envelope(running.url, data)
        options = RunOptions(cheat.bars, data if cheat.data else None)
        results = await run_checks(running.url, cheat.only, options=options)
    assert results
    return {r.name: r.line() for r in results if not r.passed and not r.skipped}


@pytest.mark.parametrize("cheat", CHEATS, ids=[c.name for c in CHEATS])
async def test_each_cheat_is_caught_and_the_honest_relay_passes(tmp_path: Path,
                                                                cheat: Cheat) -> None:
    caught = await _run(tmp_path, cheat, cheat.relay, cheat.limits)
    assert set(caught) == cheat.caught_by, caught
    honest = await _run(tmp_path, cheat, Relay, default_limits())
    assert honest == {}, honest


async def test_without_the_audit_the_storage_cheats_pass(tmp_path: Path) -> None:
    """Why --data exists: from outside, the archive is invisible."""
    cheat = replace(CHEATS[1], data=False)
    assert await _run(tmp_path, cheat, ArchivingRelay, default_limits()) == {}


def test_bars_on_the_command_line(tmp_path: Path) -> None:
    """`--max-ttl`, `--max-queue` and `--require-rate-limit` against a relay process
    announcing huge limits; --strict alone catches it too (its checks skip)."""
    with relay_process(tmp_path / "data", "--envelope-ttl", str(2**32 - 1), "--max-queue",
                       str(2**32 - 1), "--rate", "65535", "--burst", "65535",
                       "--log-level", "WARNING") as rp:
        def conformance(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "blindrelay", "conformance", rp.url,
                                   *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=120, check=False)

        plain = conformance("-k", "hello.,limits.rate_limited")
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert "SKIP limits.rate_limited" in plain.stdout
        barred = conformance("-k", "hello.,bars.", "--max-ttl", "2592000", "--max-queue",
                             "10000", "--require-rate-limit")
        assert barred.returncode == 1
        lines = barred.stdout.splitlines()
        assert lines[0] == "PASS hello.first_frame"
        assert lines[1].startswith("FAIL bars.limits: envelope_ttl 4294967295 is over the bar "
                                   "2592000; max_queue 4294967295 is over the bar 10000")
        assert lines[2].startswith("FAIL bars.rate_limit:")
        strict = conformance("-k", "hello.,limits.rate_limited", "--strict")
        assert strict.returncode == 1
        start = time.monotonic()
        assert rp.stop() == 0
        assert time.monotonic() - start < 15
