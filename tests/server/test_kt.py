"""The relay's key directory (server/kt.py, the KT_* frames in server/relay.py,
docs/PROTOCOL.md 19.10), checked from the outside: what a client can verify, what
survives a restart, and what the relay refuses."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import stat
from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import (
    ErrorCode,
    KtConsistency,
    KtConsistencyProof,
    KtEntries,
    KtEntryRange,
    KtInfo,
    KtInfoAnswer,
    KtLookup,
    KtLookupAnswer,
    KtOwn,
    KtOwnEntries,
    QueueDone,
    encode_frame,
)
from protocol.wire.kt.checkpoint import Checkpoint, open_checkpoint
from protocol.wire.kt.directory import (
    Binding,
    EntryKind,
    LogEntry,
    RangeVerifier,
    Verified,
    label_of,
    verify_answer,
)
from protocol.wire.kt.merkle import EMPTY_ROOT
from protocol.wire.kt.note import Verifier, parse_signer_key, parse_verifier_key
from server import admin
from server.audit import audit
from server.config import ServerConfig
from server.kt import LOG_KEY_FILENAME, VRF_KEY_FILENAME
from server.lookups import LookupBudget
from server.serve import running_relay as serve_relay
from server.sqlite_store import DB_FILENAME, SqliteStorage
from tests.support import RunningRelay, running_relay


async def _user(url: str, name: str,
                identity: IdentityKeyPair | None = None) -> tuple[RelayConnection,
                                                                  IdentityKeyPair]:
    identity = identity or IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn, identity


async def _info(conn: RelayConnection) -> tuple[KtInfoAnswer, Checkpoint]:
    info = await conn.request(KtInfo(), KtInfoAnswer)
    checkpoint, _ = open_checkpoint(info.checkpoint, parse_verifier_key(info.log_key))
    return info, checkpoint


async def _lookup(conn: RelayConnection, name: str) -> tuple[Verified, KtLookupAnswer]:
    info, _ = await _info(conn)
    answer = await conn.request(KtLookup(name), KtLookupAnswer)
    checkpoint, _ = open_checkpoint(answer.checkpoint, parse_verifier_key(info.log_key))
    return verify_answer(answer.answer, name, info.vrf_public_key, checkpoint), answer


def _stored_kinds(data_dir: Path) -> list[tuple[int, str, EntryKind]]:
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return [(idx, name, Binding.decode(bytes(value)).kind) for idx, name, value in
                db.execute("SELECT idx, username, value FROM kt_updates ORDER BY idx")]
    finally:
        db.close()


async def test_registration_appends_and_the_lookup_verifies(relay: RunningRelay) -> None:
    alice, alice_id = await _user(relay.url, "alice")
    bob, bob_id = await _user(relay.url, "bob")
    try:
        for conn in (alice, bob):
            for name, identity in (("alice", alice_id), ("bob", bob_id)):
                verified, _ = await _lookup(conn, name)
                assert verified.identity == identity.public
                assert verified.binding is not None
                assert verified.binding.kind is EntryKind.REGISTER
                assert verified.checkpoint.size == 2
        nobody, _ = await _lookup(alice, "carol")
        assert nobody.binding is None  # not an error: the answer proves absence
        own = await alice.request(KtOwn(), KtOwnEntries)
        info, _ = await _info(alice)
        label = label_of(info.vrf_public_key, own.vrf_proof, "alice")
        assert [(e.index, Binding.decode(e.value).identity) for e in own.entries] == \
            [(0, alice_id.public)]
        assert LogEntry.decode(relay.relay.directory.entries[0].encode()).label == label
    finally:
        await alice.close()
        await bob.close()
    assert [(i, n, k) for i, n, k in _stored_kinds(relay.config.data_dir)] == \
        [(0, "alice", EntryKind.REGISTER), (1, "bob", EntryKind.REGISTER)]


async def test_delete_then_register_again_logs_delete_then_reset(relay: RunningRelay) -> None:
    first, first_id = await _user(relay.url, "alice")
    await first.delete_account(first_id)
    await first.close()
    again, again_id = await _user(relay.url, "alice")
    watcher, _ = await _user(relay.url, "bob")
    try:
        verified, _ = await _lookup(watcher, "alice")
        assert verified.binding == Binding(EntryKind.RESET, 2, again_id.public)
        assert verified.index == 2
        own = await again.request(KtOwn(), KtOwnEntries)
        assert [Binding.decode(e.value).kind for e in own.entries] == \
            [EntryKind.REGISTER, EntryKind.DELETE, EntryKind.RESET]
    finally:
        await again.close()
        await watcher.close()
    assert [k for _, _, k in _stored_kinds(relay.config.data_dir)] == \
        [EntryKind.REGISTER, EntryKind.DELETE, EntryKind.RESET, EntryKind.REGISTER]


async def test_a_refused_registration_changes_nothing(relay: RunningRelay) -> None:
    alice, alice_id = await _user(relay.url, "alice")
    try:
        before = relay.relay.directory.checkpoint()
        other = await RelayConnection.open(relay.url)
        with pytest.raises(RelayError) as taken:
            await other.register("alice", IdentityKeyPair.generate())
        assert taken.value.code == ErrorCode.USERNAME_TAKEN
        await other.close()
        other = await RelayConnection.open(relay.url)
        with pytest.raises(RelayError) as in_use:
            await other.register("mallory", alice_id)
        assert in_use.value.code == ErrorCode.IDENTITY_IN_USE
        await other.close()
        assert relay.relay.directory.size == 1
        assert relay.relay.directory.checkpoint() == before
        nobody, _ = await _lookup(alice, "mallory")
        assert nobody.binding is None
    finally:
        await alice.close()
    assert len(_stored_kinds(relay.config.data_dir)) == 1


async def test_restart_keeps_the_directory(tmp_path: Path, unused_port: int) -> None:
    config = ServerConfig(port=unused_port, data_dir=tmp_path)
    names = ("alice", "bob", "carol", "nobody")
    seen = []
    for restart in range(2):
        async with serve_relay(config) as running:
            if restart == 0:
                for name in names[:3]:
                    conn, identity = await _user(running.url, name)
                    if name == "bob":
                        await conn.delete_account(identity)
                    await conn.close()
            anonymous = await RelayConnection.open(running.url)
            try:
                info, head = await _info(anonymous)
            finally:
                await anonymous.close()
            directory = running.relay.directory
            seen.append((info.log_key, info.vrf_public_key, head,
                         [directory.lookup(n).encode() for n in names]))
    assert seen[0] == seen[1]  # same keys, same signed head, byte-identical lookups
    log_key, vrf_public_key, head, lookups = seen[1]
    assert log_key.startswith(f"127.0.0.1:{unused_port}+")
    assert head.size == 4
    bound = [verify_answer(a, n, vrf_public_key, head).identity for n, a in zip(names, lookups,
                                                                               strict=True)]
    assert [b is not None for b in bound] == [True, False, True, False]
    for name in (LOG_KEY_FILENAME, VRF_KEY_FILENAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    signer = parse_signer_key((tmp_path / LOG_KEY_FILENAME).read_text().strip())
    assert signer.verifier.encode() == log_key


async def test_a_new_port_renames_the_log_key_and_keeps_its_key(tmp_path: Path) -> None:
    keys: list[tuple[Verifier, bytes, int]] = []
    for _ in range(2):
        async with running_relay(tmp_path) as running:
            conn, _ = await _user(running.url, f"user{len(keys)}")
            info, _ = await _info(conn)
            await conn.close()
            keys.append((parse_verifier_key(info.log_key), info.vrf_public_key, running.port))
    (first, vrf0, port0), (second, vrf1, port1) = keys
    assert (first.name, second.name) == (f"127.0.0.1:{port0}", f"127.0.0.1:{port1}")
    assert first.public_key == second.public_key and vrf0 == vrf1


async def test_public_reads_before_login_and_lookups_after(relay: RunningRelay) -> None:
    alice, _ = await _user(relay.url, "alice")
    await alice.close()
    anonymous = await RelayConnection.open(relay.url)
    try:
        _, head = await _info(anonymous)
        entries = await anonymous.request(KtEntries(0, 10), KtEntryRange)
        assert len(entries.entries) == head.size == 1
        verifier = RangeVerifier(0, entries.frontier, EMPTY_ROOT)
        for raw in entries.entries:
            verifier.add(LogEntry.decode(raw).leaf())
        verifier.finish(head.size, head.root_hash)
        proof = await anonymous.request(KtConsistency(1, 1), KtConsistencyProof)
        assert proof.old_root == head.root_hash and proof.proof == ()
        for frame in (KtLookup("alice"), KtOwn()):
            answer = await anonymous.request_raw(encode_frame(frame, anonymous.next_id()))
            assert getattr(answer, "code", None) == ErrorCode.NOT_AUTHENTICATED
    finally:
        await anonymous.close()


async def test_kt_lookup_shares_the_lookup_budget(relay: RunningRelay) -> None:
    relay.relay.lookups = LookupBudget(rate=0.001, burst=3)
    alice, _ = await _user(relay.url, "alice")
    try:
        await alice.lookup_identity("alice")
        await alice.request(KtLookup("alice"), KtLookupAnswer)
        await alice.request(KtLookup("nobody"), KtLookupAnswer)
        for ask in (alice.request(KtLookup("alice"), KtLookupAnswer),
                    alice.lookup_identity("alice")):
            with pytest.raises(RelayError) as limited:
                await ask
            assert limited.value.code == ErrorCode.RATE_LIMITED
        # the public reads are not lookups of a name: not charged
        await alice.request(KtInfo(), KtInfoAnswer)
    finally:
        await alice.close()


async def test_bad_ranges_are_kt_out_of_range(relay: RunningRelay) -> None:
    for name in ("alice", "bob"):
        conn, _ = await _user(relay.url, name)
        await conn.close()
    anonymous = await RelayConnection.open(relay.url)
    try:
        for frame in (KtConsistency(0, 1), KtConsistency(2, 1), KtConsistency(1, 3),
                      KtEntries(3, 1)):
            with pytest.raises(RelayError) as refused:
                await anonymous.request(frame, KtConsistencyProof)
            assert refused.value.code == ErrorCode.KT_OUT_OF_RANGE, frame
        at_end = await anonymous.request(KtEntries(2, 5), KtEntryRange)
        assert (at_end.start, at_end.entries, len(at_end.frontier)) == (2, (), 1)
        clipped = await anonymous.request(KtEntries(1, 2000), KtEntryRange)
        assert len(clipped.entries) == 1
        await anonymous.request(KtConsistency(1, 2), KtConsistencyProof)
    finally:
        await anonymous.close()


async def test_accounts_from_before_the_directory_are_registered_at_start(
        tmp_path: Path) -> None:
    identity = IdentityKeyPair.generate()
    store = await SqliteStorage.open(tmp_path)
    await store.register("olduser", identity.public)  # as a relay without a directory did
    await store.close()
    async with running_relay(tmp_path) as running:
        conn, _ = await _user(running.url, "newuser")
        try:
            verified, _ = await _lookup(conn, "olduser")
            assert verified.binding == Binding(EntryKind.REGISTER, 0, identity.public)
        finally:
            await conn.close()


async def test_admin_delete_account_logs_a_delete(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as running:
        conn, _ = await _user(running.url, "alice")
        await conn.close()
    assert await admin.delete_account(tmp_path, "alice") == 0
    assert [k for _, _, k in _stored_kinds(tmp_path)] == [EntryKind.REGISTER,
                                                          EntryKind.DELETE]
    async with running_relay(tmp_path) as running:  # nothing left to reconcile
        assert running.relay.directory.size == 2


async def test_audit_shows_the_directory(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as running:
        conn, _ = await _user(running.url, "alice")
        info, head = await _info(conn)
        await conn.close()
    out = io.StringIO()
    assert await asyncio.to_thread(audit, tmp_path, out) == 0
    report = out.getvalue()
    assert "Table kt_updates: 1 rows" in report
    assert f"Key directory: 1 updates, head root {head.root_hash.hex()}" in report
    assert f"Key directory log key: {info.log_key}" in report
    assert "PRIVATE+KEY" not in report
    assert (tmp_path / VRF_KEY_FILENAME).read_bytes().hex() not in report
