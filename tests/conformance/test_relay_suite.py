"""The conformance suite (conformance/relay) against our own relay: in-process, with
hypothesis-generated frames, and as real processes (`blindrelay serve` and
`blindrelay conformance`); plus the suite's own behaviour when a server is broken,
hangs or is not there."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from client.connection import RelayConnection
from conformance.relay import CHECKS, Outputs, Probe, main, ordered, run_checks, select
from conformance.relay.fuzz import answer_expected_by_id, judge, nonzero_request_id
from conformance.relay.registry import fresh_username, make_prekeys
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import codec
from protocol.wire.connection import ServerConnection as ServerCore
from protocol.wire.frames import (
    Ack,
    Deliver,
    FetchBundle,
    Frame,
    Hello,
    Outgoing,
    PrekeyCount,
    Send,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    encode_frame,
)
from server.config import ServerConfig, default_limits
from server.connections import ConnectionLimits
from server.relay import Relay
from server.serve import running_relay as serve_relay
from server.sqlite_store import DB_FILENAME, SqliteStorage
from server.storage import StoredEnvelope
from tests.support import ROOT, relay_process, running_relay

SMALL: dict[str, Any] = dict(max_queue=200, envelope_ttl=2, max_prekeys=20, rate_per_second=200,
                             rate_burst=100, expiry_interval=0.5,
                             connections=ConnectionLimits(login_timeout=3))
"""Limits small enough that every check is practical (and none is skipped)."""

SERVE_ARGS = ("--max-queue", "200", "--envelope-ttl", "2", "--expiry-interval", "0.5",
              "--max-prekeys", "20", "--rate", "200", "--burst", "100", "--log-level", "WARNING",
              "--login-timeout", "3")

SUMMARY = re.compile(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?")


async def _all_closed(relay: Relay, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while relay.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return relay.connections == 0


# ---- the suite against our relay ------------------------------------------------


async def test_every_check_passes_against_our_relay(tmp_path: Path) -> None:
    async with running_relay(tmp_path, **SMALL) as relay:
        start = time.monotonic()
        results = await run_checks(relay.url)
        elapsed = time.monotonic() - start
        assert [r.name for r in results] == [c.name for c in select()]
        assert len(results) == len(CHECKS) - 5  # bars.* and storage.* need options
        not_passed = [r.line() for r in results if not r.passed]
        assert not not_passed, "\n".join(not_passed)
        assert elapsed < 30, f"the suite took {elapsed:.1f} s"
        assert await _all_closed(relay.relay), "the suite left connections open"


async def test_the_suite_can_run_again_on_the_same_server(tmp_path: Path) -> None:
    async with running_relay(tmp_path, **SMALL) as relay:
        for _ in range(2):
            results = await run_checks(relay.url, "register")
            assert results and all(r.passed for r in results), [r.line() for r in results]


async def test_filter_selects_by_substring(tmp_path: Path) -> None:
    async with running_relay(tmp_path, **SMALL) as relay:
        results = await run_checks(relay.url, "login.")
        assert results and all(r.name.startswith("login.") for r in results)
        assert await run_checks(relay.url, "no-such-check") == []


async def test_envelopes_stored_during_the_login_sequence_are_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with a slow hand-back of the queue's last (empty) page, envelopes
    stored meanwhile were delivered before QUEUE_DONE but not counted by it."""
    queued = SqliteStorage.queued

    async def slow_queued(self: SqliteStorage, recipient: str, after_seq: int,
                          limit: int, not_before: int = 0) -> list[StoredEnvelope]:
        page = await queued(self, recipient, after_seq, limit, not_before)
        if not page:
            await asyncio.sleep(0.05)
        return page

    monkeypatch.setattr(SqliteStorage, "queued", slow_queued)
    async with running_relay(tmp_path, **SMALL) as relay:
        results = await run_checks(relay.url, "messages.push_during_login")
        assert [r.line() for r in results] == ["PASS messages.push_during_login"]


# ---- hypothesis: arbitrary frames ------------------------------------------------


def _mutations() -> st.SearchStrategy[list[tuple[str, int, int, bytes]]]:
    op = st.tuples(st.sampled_from(["flip", "truncate", "append", "insert", "delete", "set",
                                    "type"]),
                   st.integers(0, 10_000), st.integers(0, 255), st.binary(max_size=12))
    return st.lists(op, min_size=1, max_size=4)


def _mutate(base: bytes, ops: list[tuple[str, int, int, bytes]]) -> bytes:
    data = bytearray(base)
    for name, at, value, extra in ops:
        where = at % (len(data) + 1)
        if name == "flip" and data:
            data[at % len(data)] ^= 1 << (value % 8)
        elif name == "truncate":
            del data[where:]
        elif name == "append":
            data += extra or b"\x00"
        elif name == "insert":
            data[where:where] = extra or b"\x00"
        elif name == "delete":
            del data[where:where + 1 + value % 40]
        elif name == "set" and data:
            data[at % len(data)] = value
        elif name == "type" and len(data) > 1:
            data[1] = value
    return bytes(data)


def _frames(bases: list[bytes]) -> st.SearchStrategy[bytes | str]:
    header_and_junk = st.builds(lambda v, t, p: bytes((v, t)) + b"\x00\x00\x00\x07" + p,
                                st.sampled_from([1, 1, 1, 0, 2]), st.integers(0, 255),
                                st.binary(max_size=120))
    as_is = st.sampled_from(bases)
    mutated = st.builds(_mutate, as_is, _mutations())
    raw: st.SearchStrategy[bytes | str] = st.one_of(
        st.binary(max_size=64), header_and_junk, as_is, mutated, mutated, st.text(max_size=16))
    return raw.map(lambda d: nonzero_request_id(d) if isinstance(d, bytes) else d)


async def _exercise(url: str, sink: str, data: st.DataObject) -> None:
    probe = await Probe.open(url)
    try:
        identity = IdentityKeyPair.generate()
        if data.draw(st.booleans(), label="logged in"):
            await probe.register(fresh_username(), identity)
        keys = make_prekeys(identity, one_time=1, kem=1)
        frames: list[Frame] = [
            probe.register_frame(fresh_username(), IdentityKeyPair.generate()),
            probe.login_frame(sink, identity),
            UploadSignedPrekeys(keys.signed, keys.last_resort),
            UploadOneTimePrekeys(tuple(keys.one_time), tuple(keys.kem)),
            FetchBundle(sink),
            PrekeyCount(),
            Send((Outgoing(sink, b"hypothesis"),)),
            Ack((bytes(16),)),
        ]
        bases = [encode_frame(f, 1000 + i) for i, f in enumerate(frames)]
        for message in data.draw(st.lists(_frames(bases), min_size=1, max_size=10),
                                 label="frames"):
            rec = await probe.roundtrip(message, zero_ok=not answer_expected_by_id(message))
            problem = judge(message, rec)
            assert problem is None, f"{message!r}: {problem}"
        await probe.alive("hypothesis frames")
        assert not probe.violations, probe.violations
    finally:
        await probe.close()


def _hypothesis_frames(url: str, sink: str) -> None:
    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def each_example(data: st.DataObject) -> None:
        asyncio.run(_exercise(url, sink, data))

    each_example()


async def _still_served(url: str) -> None:
    """Two clients of the client library: register, send, receive, acknowledge."""
    alice_name, bob_name = fresh_username(), fresh_username()
    alice = await RelayConnection.open(url)
    bob = await RelayConnection.open(url)
    try:
        await alice.register(alice_name, IdentityKeyPair.generate())
        await bob.register(bob_name, IdentityKeyPair.generate())
        (envelope_id,) = await alice.send([(bob_name, b"still served")])
        while not isinstance(frame := await bob.next_push(5), Deliver):
            pass
        assert (frame.envelope_id, frame.body) == (envelope_id, b"still served")
        await bob.ack([envelope_id])
    finally:
        await alice.close()
        await bob.close()


async def test_hypothesis_frames_get_errors_or_answers_and_others_are_served(
        tmp_path: Path) -> None:
    async with running_relay(tmp_path, **SMALL) as relay:
        sink = await RelayConnection.open(relay.url)
        sink_name, sink_id = fresh_username(), IdentityKeyPair.generate()
        await sink.register(sink_name, sink_id)
        keys = make_prekeys(sink_id, one_time=5, kem=5)
        await sink.upload_signed_prekeys(keys.signed, keys.last_resort)
        await sink.upload_one_time_prekeys(keys.one_time, keys.kem)
        # the examples run in a worker thread, each in its own event loop
        await asyncio.to_thread(_hypothesis_frames, relay.url, sink_name)
        await _still_served(relay.url)
        await sink.close()
        assert await _all_closed(relay.relay)


# ---- as real processes ------------------------------------------------------------


def _stored(data_dir: Path) -> dict[str, int]:
    """Rows per table of a stopped relay's database."""
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()


def test_blindrelay_conformance_against_blindrelay_serve_leaves_nothing_behind(
        tmp_path: Path) -> None:
    """The whole suite as a process, --strict (no SKIP under these limits), with the
    storage audit and JUnit: everything passes, and afterwards the relay holds no
    account, no prekey and no envelope (only the key directory's public log)."""
    data, junit = tmp_path / "data", tmp_path / "junit.xml"
    with relay_process(data, *SERVE_ARGS) as rp:
        result = subprocess.run(
            [sys.executable, "-m", "blindrelay", "conformance", rp.url, "--strict",
             "--data", str(data), "--junit", str(junit)],
            cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        match = SUMMARY.fullmatch(lines[-1])
        assert match, lines[-1]
        expected = [c.name for c in ordered() if not c.name.startswith("bars.")]
        assert (int(match.group(1)), int(match.group(2))) == (len(expected), 0)
        assert lines[:-1] == [f"PASS {name}" for name in expected]
        assert rp.stop() == 0
    stored = _stored(data)
    assert stored["accounts"] == 0 and stored["envelopes"] == 0, stored
    assert stored["signed_prekeys"] == stored["one_time_prekeys"] == 0, stored
    assert stored["kem_one_time_prekeys"] == 0, stored
    assert stored["kt_updates"] > 0  # the public log keeps registrations and deletions
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(len(expected)), "0", "0")


async def test_blindrelay_conformance_against_a_relay_on_postgresql(tmp_path: Path) -> None:
    """The whole suite, --strict, against `blindrelay serve --storage postgresql://...`,
    with the storage audit reading PostgreSQL's tables (--storage): every check
    passes, and the run leaves no account, envelope or prekey in the database."""
    from server.audit_sources import PostgresSource
    from tests.pgdb import fresh_database

    data = tmp_path / "data"
    async with fresh_database() as url:
        with relay_process(data, *SERVE_ARGS, "--storage", url) as rp:
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "blindrelay", "conformance", rp.url, "--strict",
                 "--data", str(data), "--storage", url],
                cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            expected = [c.name for c in ordered() if not c.name.startswith("bars.")]
            assert result.stdout.splitlines()[:-1] == [f"PASS {name}" for name in expected]
            assert rp.stop() == 0

        def stored() -> dict[str, int]:
            source = PostgresSource(url)
            try:
                return {t: source.count(t) for t in source.tables()}
            finally:
                source.close()

        rows = await asyncio.to_thread(stored)
    assert rows["accounts"] == rows["envelopes"] == rows["queue_heads"] == 0, rows
    assert rows["one_time_prekeys"] == rows["kem_one_time_prekeys"] == 0, rows
    assert not (data / DB_FILENAME).exists()


def test_json_output_and_strict_skips(tmp_path: Path) -> None:
    """--json is one document with every check and the clean-up's tally; under the
    default 30-day TTL messages.expiry is skipped, which passes the run, but not with
    --strict."""
    with relay_process(tmp_path / "data", "--log-level", "WARNING") as rp:
        base = [sys.executable, "-m", "blindrelay", "conformance", rp.url, "-k",
                "messages.", "--json"]
        result = subprocess.run(base, cwd=ROOT, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        (line,) = result.stdout.splitlines()
        doc = json.loads(line)
        assert doc["suite"] == "relay" and doc["target"] == rp.url and doc["passed"]
        statuses = {c["name"]: c["status"] for c in doc["checks"]}
        assert statuses["messages.expiry"] == "SKIP"
        assert set(statuses) == {c.name for c in ordered() if c.name.startswith("messages.")}
        assert doc["cleanup"]["left"] == [] and doc["cleanup"]["deleted"] > 0
        strict = subprocess.run([*base, "--strict", "-k", "messages.expiry"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=False)
        assert strict.returncode == 1
        assert json.loads(strict.stdout)["passed"] is False
        assert rp.stop() == 0
    stored = _stored(tmp_path / "data")
    assert stored["accounts"] == stored["envelopes"] == 0, stored


def test_unreachable_relay_fails_fast_with_one_line(unused_port: int) -> None:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "blindrelay", "conformance", f"ws://127.0.0.1:{unused_port}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"blindrelay conformance: cannot connect to ws://127.0.0.1:{unused_port}")
    assert time.monotonic() - start < 15


def test_unreachable_relay_in_json(capsys: pytest.CaptureFixture[str], unused_port: int) -> None:
    assert main(f"ws://127.0.0.1:{unused_port}", outputs=Outputs(json=True)) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    assert [c["name"] for c in doc["checks"]] == ["relay.reachable"]


def test_list_prints_one_line_per_check() -> None:
    result = subprocess.run([sys.executable, "-m", "blindrelay", "conformance", "--list"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [c.name for c in ordered()]
    assert all(len(line.split(None, 1)) == 2 for line in lines), "a check without description"


def test_blindrelay_conformance_rejects_a_filter_matching_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main("ws://127.0.0.1:9", "no-such-check") == 2
    assert capsys.readouterr().out.splitlines() == ["0 passed, 0 failed"]


# ---- the suite has teeth ------------------------------------------------------------


class AnySignatureConnection(ServerCore):
    """Broken on purpose: accepts any REGISTER or LOGIN signature."""

    def check_statement(self, *args: Any) -> None:
        return None


class AnySignatureRelay(Relay):
    connection_class = AnySignatureConnection


async def test_a_relay_accepting_any_signature_fails_the_signature_checks(
        tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path)
    async with serve_relay(config, AnySignatureRelay) as running:
        results = {r.name: r for r in await run_checks(running.url, "signature")}
        assert results["register.bad_signature"].failed
        assert results["login.bad_signature"].failed
        assert "expected ERROR BAD_SIGNATURE, got OK" in results["login.bad_signature"].reason
        assert results["prekeys.bad_signed_prekey_signature"].passed


@pytest.fixture
async def mute_server() -> AsyncIterator[str]:
    """A WebSocket server that sends HELLO and then never answers anything."""
    limits = default_limits()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(encode_frame(Hello(bytes(range(32)), limits)))
        async for _ in ws:
            pass

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_hanging_server_makes_checks_fail_not_hang(mute_server: str) -> None:
    start = time.monotonic()
    results = await run_checks(mute_server, "login.s", request_timeout=0.3)
    assert results and all(r.failed for r in results)
    assert any("no answer within 0.3 s" in r.reason for r in results)
    assert time.monotonic() - start < 10


async def test_a_server_whose_first_frame_is_no_hello_fails(tmp_path: Path) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(codec.u8(1) + b"not a hello")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        results = await run_checks(url, "hello", request_timeout=0.5)
    assert [r.status for r in results] == ["FAIL"]
    assert "does not decode" in results[0].reason


async def test_certificate_checks_pass_against_our_relay(tmp_path: Path) -> None:
    async with running_relay(tmp_path, **SMALL) as relay:
        results = await run_checks(relay.url, "certificates.")
    assert [r.name for r in results] == ["certificates.issued_certificate_verifies",
                                         "certificates.need_login_key_does_not"]
    assert all(r.status == "PASS" for r in results), results
