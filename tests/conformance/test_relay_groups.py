"""The group checks catch a relay that orders no commits, and the key package check
one that hands a KeyPackage out twice; our relay passes both (docs/PROTOCOL.md 21)."""

from __future__ import annotations

from pathlib import Path

from conformance.relay import run_checks
from protocol.wire.connection import check_send
from protocol.wire.frames import (
    FetchKeyPackage,
    Frame,
    GroupSend,
    KeyPackageAnswer,
    Sent,
    UploadKeyPackages,
)
from server.config import ServerConfig, default_limits
from server.relay import Connection, Relay
from server.serve import running_relay
from server.storage import coarse_time


class UnorderedRelay(Relay):
    """Stores every group message, commits included, without the per-epoch check."""

    async def _group_send(self, frame: GroupSend, sender: str) -> Sent:
        check_send(frame, self.limits)
        stored = await self.storage.store_group_message(
            list(frame.recipients), frame.message,
            coarse_time(self.clock(), self.received_at_granularity), self.limits.max_queue)
        self._pushed(stored)
        return Sent(tuple(env.envelope_id for env in stored))


class ReusingRelay(Relay):
    """Hands out a one-time KeyPackage and keeps it."""

    kept: bytes | None = None

    async def _carry_out(self, conn: Connection, frame: Frame) -> Frame:
        if isinstance(frame, UploadKeyPackages) and not frame.last_resort:
            self.kept = frame.key_packages[0]
        if isinstance(frame, FetchKeyPackage) and self.kept is not None:
            return KeyPackageAnswer(self.kept)
        return await super()._carry_out(conn, frame)


async def _results(tmp_path: Path, relay: type[Relay]) -> dict[str, bool]:
    config = ServerConfig(port=0, data_dir=tmp_path / relay.__name__, limits=default_limits())
    async with running_relay(config, relay) as running:
        results = await run_checks(running.url, "groups.")
    return {r.name: r.passed for r in results}


async def test_our_relay_passes_every_group_check(tmp_path: Path) -> None:
    results = await _results(tmp_path, Relay)
    assert len(results) == 4 and all(results.values()), results


async def test_a_relay_that_orders_no_commits_is_caught(tmp_path: Path) -> None:
    results = await _results(tmp_path, UnorderedRelay)
    assert not results["groups.one_commit_per_epoch"]
    assert results["groups.delivered_to_named_recipients"]


async def test_a_relay_that_reuses_key_packages_is_caught(tmp_path: Path) -> None:
    results = await _results(tmp_path, ReusingRelay)
    assert not results["groups.key_packages_single_use"]
