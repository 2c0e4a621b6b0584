"""The client's key directory checks (client/directory.py; issue 10 items 3, 4, 6)
against a real relay: first contact verified with no extra step, a key the directory
does not have refused with evidence, pinned keys and head kept across a restart, no
rollback, and owner monitoring that is silent for an honest run and loud for a RESET
made behind the owner's back."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from client.client import Client
from client.errors import DirectoryRefused, KeyChangeBlocked
from client.events import KtAlertKind
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Bundle
from protocol.wire.kt.directory import EntryKind
from protocol.wire.kt.evidence import verify_evidence
from protocol.wire.kt.verifier import open_head
from teaching.hostile import FakeIdentity
from tests.client.helpers import alerts_of, make_client, notices, reopen, shut, wait_for, wait_last
from tests.support import ROOT, RunningRelay


def evidence_files(*clients: Client) -> list[Path]:
    return sorted(p for c in clients for p in c.home.glob("kt-evidence-*.json"))


async def test_first_contact_is_verified_with_no_extra_step(relay: RunningRelay,
                                                            tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    seen = alerts_of(alice) + alerts_of(bob)
    await alice.send_text("bob", "hello")
    await wait_last(bob, "alice", "hello")
    await bob.send_text("alice", "hi")
    await wait_last(alice, "bob", "hi")
    verified = alice.directory.confirmed["bob"]
    assert verified.identity == bob.identity.public
    assert verified.binding is not None and verified.binding.kind is EntryKind.REGISTER
    assert bob.directory.confirmed["alice"].identity == alice.identity.public
    state = alice.directory.state()
    assert state is not None and open_head(alice.directory.keys(state),
                                           state.head_note).size >= 2
    assert not seen and not evidence_files(alice, bob)
    await shut(alice, bob)


async def test_a_key_the_directory_does_not_bind_is_refused_with_evidence(
        relay: RunningRelay, tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    seen = alerts_of(alice)
    fake = FakeIdentity()

    async def hostile_bundle(username: str, requester: str) -> Bundle:
        return Bundle(fake.bundle().encode())  # the relay's own key in place of bob's

    relay.relay._fetch_bundle = hostile_bundle  # type: ignore[method-assign]
    with pytest.raises(DirectoryRefused) as refused:
        await alice.send_text("bob", "for bob only")
    assert refused.value.alert.kind is KtAlertKind.KEY_MISMATCH
    (path,) = evidence_files(alice)
    assert path.name.startswith("kt-evidence-") and path.name.endswith("-binding.json")
    assert str(path) in str(refused.value)
    assert alice.contact("bob") is None  # nothing pinned, nothing sent
    assert any("KEY DIRECTORY WARNING" in n and str(path) in n for n in notices(alice, "bob"))
    assert [a.kind for a in seen] == [KtAlertKind.KEY_MISMATCH]
    finding = verify_evidence(path.read_bytes())
    assert not finding.conclusive
    assert bob.identity.public.hex() in finding.proven[0]
    assert any(fake.identity.public.hex() in t for t in finding.testimony)
    # anyone can check the file without this client: the CLI, on its own
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "blindrelay", "kt", "verify-evidence", str(path), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "conclusive: no" in out.decode() and bob.identity.public.hex() in out.decode()
    await shut(alice, bob)


async def test_a_name_absent_from_the_directory_is_refused(relay: RunningRelay,
                                                           tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    fake = FakeIdentity()

    async def invented(username: str, requester: str) -> Bundle:
        return Bundle(fake.bundle().encode())

    relay.relay._fetch_bundle = invented  # type: ignore[method-assign]
    with pytest.raises(DirectoryRefused) as refused:
        await alice.send_text("nobody", "hello?")
    assert refused.value.alert.kind is KtAlertKind.NOT_IN_DIRECTORY
    (path,) = evidence_files(alice)
    finding = verify_evidence(path.read_text())
    assert "to no key" in finding.proven[0]
    await shut(alice, bob)


async def test_restart_keeps_the_pinned_keys_and_head(relay: RunningRelay,
                                                      tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hello")
    before = alice.directory.state()
    assert before is not None
    alice = await reopen(alice)
    after = alice.directory.state()
    assert after is not None
    assert (after.origin, after.log_key, after.vrf_public_key) == \
        (before.origin, before.log_key, before.vrf_public_key)
    keys = alice.directory.keys(after)
    assert open_head(keys, after.head_note).size >= open_head(keys, before.head_note).size
    assert after.checked_size is not None
    await shut(alice, bob)


async def test_a_rollback_is_refused(relay: RunningRelay, tmp_path: Path) -> None:
    directory = relay.relay.directory
    alice = await make_client(tmp_path, "alice", relay.url)
    old_note = directory.checkpoint()
    bob = await make_client(tmp_path, "bob", relay.url)
    carol = await make_client(tmp_path, "carol", relay.url)
    await alice.send_text("bob", "hello")  # alice now holds a head with bob in it
    seen = alerts_of(alice)
    directory.checkpoint = lambda: old_note  # type: ignore[method-assign]
    with pytest.raises(DirectoryRefused) as refused:
        await alice.send_text("carol", "hello")
    assert refused.value.alert.kind is KtAlertKind.ROLLBACK
    assert [a.kind for a in seen] == [KtAlertKind.ROLLBACK]
    assert alice.contact("carol") is None
    state = alice.directory.state()
    assert state is not None
    assert open_head(alice.directory.keys(state), state.head_note).size > \
        open_head(alice.directory.keys(state), old_note).size
    await shut(alice, bob, carol)


async def test_monitoring_an_honest_run_finds_nothing(relay: RunningRelay,
                                                      tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    seen = alerts_of(alice) + alerts_of(bob)
    await alice.send_text("bob", "hello")
    first = await alice.kt_monitor()
    assert not first.alerts and len(first.own_leaves) <= 1
    again = await alice.kt_monitor()
    assert not again.alerts and again.start == first.end
    assert not (await bob.kt_monitor()).alerts
    assert not seen and not evidence_files(alice, bob)
    await shut(alice, bob)


async def test_monitoring_runs_after_login_and_then_periodically(relay: RunningRelay,
                                                                 tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url, connect=False)
    alice.kt_monitor_interval = 0.05
    seen = alerts_of(alice)
    await alice.connect()
    await asyncio.wait_for(alice.queue_done.wait(), 10)

    def checked() -> int | None:
        state = alice.directory.state()
        return None if state is None else state.checked_size

    deadline = asyncio.get_running_loop().time() + 10
    while checked() != relay.relay.directory.size:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    await make_client(tmp_path, "bob", relay.url)  # the log grows; alice follows
    while checked() != relay.relay.directory.size:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert not seen
    await shut(alice)


async def test_monitoring_catches_a_reset_behind_the_owners_back(relay: RunningRelay,
                                                                 tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    assert not (await alice.kt_monitor()).alerts
    seen = alerts_of(alice)
    # the operator re-binds alice's name to a key of its own, and tells no one
    directory = relay.relay.directory
    mallory = IdentityKeyPair.generate().public
    directory.append("alice", directory.next_binding("alice", mallory), os.urandom(16))
    result = await alice.kt_monitor()
    (alert,) = result.alerts
    assert alert.kind is KtAlertKind.FOREIGN_BINDING and seen == [alert]
    assert "RESET" in alert.text and alert.evidence is not None
    assert evidence_files(alice) == [alert.evidence]
    finding = verify_evidence(alert.evidence.read_bytes())
    assert finding.kind == "entry"
    assert any(mallory.hex() in line for line in finding.proven)
    assert any("RESET" in line for line in finding.proven)
    assert any("the owner did not make this binding" in t for t in finding.testimony)
    assert not (await alice.kt_monitor()).alerts  # said once, with its evidence
    await shut(alice)


async def test_a_key_swapped_back_before_the_check_is_still_proven(
        relay: RunningRelay, tmp_path: Path) -> None:
    """The operator binds alice's name to its key, uses it, and restores alice's key
    before her next check: the log keeps the update, and her evidence is that update
    (an "entry" file), not the innocent-looking latest binding."""
    alice = await make_client(tmp_path, "alice", relay.url)
    assert not (await alice.kt_monitor()).alerts
    directory = relay.relay.directory
    mallory = IdentityKeyPair.generate().public
    directory.append("alice", directory.next_binding("alice", mallory), os.urandom(16))
    directory.append("alice", directory.next_binding("alice", alice.identity.public),
                     os.urandom(16))
    (alert,) = (await alice.kt_monitor()).alerts
    assert alert.evidence is not None
    finding = verify_evidence(alert.evidence.read_bytes())
    assert finding.kind == "entry" and any(mallory.hex() in p for p in finding.proven)
    await shut(alice)


async def test_a_key_change_names_its_kind_from_the_directory(relay: RunningRelay,
                                                              tmp_path: Path) -> None:
    alice = await make_client(tmp_path, "alice", relay.url)
    bob = await make_client(tmp_path, "bob", relay.url)
    await alice.send_text("bob", "hello")
    await wait_last(bob, "alice", "hello")
    await bob.link.require().delete_account(bob.identity)
    await shut(bob)
    bob2 = await make_client(tmp_path / "again", "bob", relay.url)
    await bob2.send_text("alice", "it is me, reinstalled")
    await wait_for(lambda: any("CHANGED" in n for n in notices(alice, "bob")))
    (warning,) = [n for n in notices(alice, "bob") if "CHANGED" in n]
    assert "RESET by the relay's operator" in warning
    contact = alice.contact("bob")
    assert contact is not None and contact.pending_identity == bob2.identity.public
    with pytest.raises(KeyChangeBlocked):
        await alice.send_text("bob", "are you there?")
    assert not evidence_files(alice, bob2)
    await shut(alice, bob2)
