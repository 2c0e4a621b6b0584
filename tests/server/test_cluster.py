"""Several relays sharing one storage (server/cluster.py, server/bus.py, issue 14 item
4), in the in-process model of tests/cluster_support.py: two Relay objects, each with
its own WebSocket server, memory and bus, over one storage. Each test runs with the
in-process bus (LocalHub) and with NATS (skipped, with the reason, when NATS is not
reachable; a failure under CI), and on PostgreSQL with NATS, each relay with a
PgStorage of its own (skipped likewise without PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from client.connection import ConnectionLost, RelayConnection
from protocol.e2e.keys import (
    IdentityKeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.wire.frames import (
    Deliver,
    Frame,
    KtInfo,
    KtInfoAnswer,
    KtLookup,
    KtLookupAnswer,
    PrekeysLow,
    QueueDone,
)
from protocol.wire.kt.checkpoint import open_checkpoint
from protocol.wire.kt.directory import verify_answer
from protocol.wire.kt.note import parse_verifier_key
from server.bus import Bus, NatsBus
from tests.cluster_support import ModelCluster, local_buses, model_cluster
from tests.pgdb import fresh_database
from tests.services import need_nats


def _nats_buses(count: int) -> list[Bus]:
    url = need_nats()
    name = f"test-{uuid.uuid4().hex[:12]}"  # apart from any other test's cluster
    return [NatsBus(f"{url}/{name}") for _ in range(count)]


Model = Callable[[Path], contextlib.AbstractAsyncContextManager[ModelCluster]]


@pytest.fixture(params=["sqlite+local", "sqlite+nats", "postgresql+nats"])
def model(request: pytest.FixtureRequest) -> Model:
    """Two relays: on one SQLite storage with the in-process bus or NATS, or each on
    its own PostgreSQL pool (a fresh database) with NATS."""
    setup = str(request.param)

    @contextlib.asynccontextmanager
    async def start(tmp_path: Path) -> AsyncIterator[ModelCluster]:
        buses = local_buses(2) if setup == "sqlite+local" else _nats_buses(2)
        if setup.startswith("sqlite"):
            async with model_cluster(tmp_path, buses) as cluster:
                yield cluster
            return
        async with fresh_database() as url, model_cluster(tmp_path, buses,
                                                           storage_url=url) as cluster:
            yield cluster

    return start


async def _user(url: str, name: str, identity: IdentityKeyPair | None = None,
                login: bool = False) -> tuple[RelayConnection, IdentityKeyPair]:
    identity = identity or IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    if login:
        await conn.login(name, identity)
    else:
        await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn, identity


async def _delivers(conn: RelayConnection, count: int, timeout: float = 5) -> list[Deliver]:
    got: list[Deliver] = []
    while len(got) < count:
        frame = await conn.next_push(timeout)
        if isinstance(frame, Deliver):
            got.append(frame)
    return got


async def _nothing_more(conn: RelayConnection) -> list[Frame]:
    extra: list[Frame] = []
    try:
        while True:
            extra.append(await conn.next_push(0.3))
    except TimeoutError:
        return extra


async def test_a_user_on_a_gets_at_once_what_a_sender_stored_through_b(
        tmp_path: Path, model: Model) -> None:
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        bob, bob_id = await _user(a, "bob")
        bob_on_b, _ = await _user(b, "bob", bob_id, login=True)
        alice, _ = await _user(b, "alice")
        carol, _ = await _user(a, "carol")
        try:
            sent = [await alice.send([("bob", f"from b {i}".encode())]) for i in range(5)]
            sent += [await carol.send([("bob", f"from a {i}".encode())]) for i in range(5)]
            ids = [eid for (eid,) in sent]
            for conn in (bob, bob_on_b):  # each connection: every envelope, once, in order
                got = await _delivers(conn, 10)
                assert [d.envelope_id for d in got] == ids
                assert [d.body for d in got[:2]] == [b"from b 0", b"from b 1"]
                assert await _nothing_more(conn) == []
        finally:
            for conn in (bob, bob_on_b, alice, carol):
                await conn.close()


async def test_envelopes_stored_while_the_recipient_logs_in_elsewhere_arrive_once(
        tmp_path: Path, model: Model) -> None:
    """Senders on B keep storing while bob logs in on A and drains his queue: each
    envelope reaches him once, in order, before or after QUEUE_DONE."""
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        bob, bob_id = await _user(a, "bob")
        await bob.close()
        alice, _ = await _user(b, "alice")
        acked: list[bytes] = []

        async def keep_sending() -> None:
            for i in range(300):
                (eid,) = await alice.send([("bob", b"%d" % i)])
                acked.append(eid)

        sender = asyncio.create_task(keep_sending())
        try:
            while len(acked) < 100:
                await asyncio.sleep(0.01)
            bob = await RelayConnection.open(a)
            await bob.login("bob", bob_id)
            got: list[bytes] = []
            while len(got) < 300:
                frame = await bob.next_push(5)
                if isinstance(frame, Deliver):
                    got.append(frame.envelope_id)
            await sender
            assert got == acked
            assert [f for f in await _nothing_more(bob) if isinstance(f, Deliver)] == []
        finally:
            sender.cancel()
            await alice.close()
            await bob.close()


async def test_the_directory_stays_one_log_when_registrations_alternate(
        tmp_path: Path, model: Model) -> None:
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        identities = {f"user{i}": IdentityKeyPair.generate() for i in range(12)}
        users = await asyncio.gather(*(
            _user((a, b)[i % 2], name, identity)
            for i, (name, identity) in enumerate(identities.items())))
        try:
            conns = [users[0][0], users[1][0]]  # one on A, one on B
            infos = [await c.request(KtInfo(), KtInfoAnswer) for c in conns]
            assert infos[0] == infos[1]  # the same keys and the same signed head
            verifier = parse_verifier_key(infos[0].log_key)
            checkpoint, _ = open_checkpoint(infos[0].checkpoint, verifier)
            assert checkpoint.size == len(identities)
            for conn in conns:
                for name, identity in identities.items():
                    answer = await conn.request(KtLookup(name), KtLookupAnswer)
                    head, _ = open_checkpoint(answer.checkpoint, verifier)
                    verified = verify_answer(answer.answer, name, infos[0].vrf_public_key,
                                             head)
                    assert verified.identity == identity.public
            stored = await cluster.storage.directory_updates()
            assert [u.index for u in stored] == list(range(len(identities)))
            assert sorted(u.username for u in stored) == sorted(identities)
        finally:
            for conn, _ in users:
                await conn.close()


async def test_a_name_registered_through_b_is_served_by_a_at_once(
        tmp_path: Path, model: Model) -> None:
    """No waiting for the bus: a directory read catches up from storage first."""
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        alice, _ = await _user(a, "alice")
        try:
            for i in range(5):
                name, identity = f"new{i}", IdentityKeyPair.generate()
                conn, _ = await _user(b, name, identity)
                await conn.close()
                answer = await alice.request(KtLookup(name), KtLookupAnswer)
                info = await alice.request(KtInfo(), KtInfoAnswer)
                head, _ = open_checkpoint(answer.checkpoint, parse_verifier_key(info.log_key))
                assert verify_answer(answer.answer, name, info.vrf_public_key,
                                     head).identity == identity.public
        finally:
            await alice.close()


async def test_one_time_prekeys_are_handed_out_once_across_relays(
        tmp_path: Path, model: Model) -> None:
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        bob, bob_id = await _user(a, "bob")
        fetchers = [(await _user((a, b)[i % 2], f"fetcher{i}"))[0] for i in range(6)]
        try:
            await bob.upload_signed_prekeys(make_signed_prekey(bob_id, 1)[1],
                                            make_kem_prekey(bob_id, 2)[1])
            await bob.upload_one_time_prekeys(
                [make_one_time_prekey(100 + i)[1] for i in range(20)], [])
            bundles = await asyncio.gather(*(f.fetch_bundle("bob") for f in fetchers
                                             for _ in range(5)))
            taken = [bundle.one_time_prekey.key_id for bundle in bundles
                     if bundle.one_time_prekey is not None]
            assert sorted(taken) == list(range(100, 120))  # each once, then none
            assert await bob.prekey_counts() == (0, 0)
            low = [f for f in await _nothing_more(bob) if isinstance(f, PrekeysLow)]
            assert low, "the owner on A was told its prekeys ran low"
        finally:
            for conn in (bob, *fetchers):
                await conn.close()


async def test_the_owner_hears_prekeys_low_on_the_relay_it_is_connected_to(
        tmp_path: Path, model: Model) -> None:
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        bob, bob_id = await _user(a, "bob")
        fetcher, _ = await _user(b, "fetcher")
        try:
            await bob.upload_signed_prekeys(make_signed_prekey(bob_id, 1)[1],
                                            make_kem_prekey(bob_id, 2)[1])
            await bob.upload_one_time_prekeys(
                [make_one_time_prekey(100 + i)[1] for i in range(3)], [])
            await _nothing_more(bob)
            await fetcher.fetch_bundle("bob")  # through B; bob is on A only
            frame = await bob.next_push(5)
            assert isinstance(frame, PrekeysLow) and frame.one_time == 2
        finally:
            await bob.close()
            await fetcher.close()


async def test_deleting_an_account_closes_its_connections_on_every_relay(
        tmp_path: Path, model: Model) -> None:
    async with model(tmp_path) as cluster:
        a, b = cluster.urls
        bob, bob_id = await _user(a, "bob")
        bob_on_b, _ = await _user(b, "bob", bob_id, login=True)
        try:
            await bob.delete_account(bob_id)
            with pytest.raises(ConnectionLost):
                for _ in range(50):
                    await bob_on_b.prekey_counts()
                    await asyncio.sleep(0.1)
        finally:
            await bob.close()
            await bob_on_b.close()


async def test_a_stray_publisher_on_the_bus_crashes_nothing(tmp_path: Path) -> None:
    """Anything on the subject that is not a bus message is dropped; the relays keep
    delivering."""
    import nats

    buses = _nats_buses(2)
    assert isinstance(buses[0], NatsBus)
    async with model_cluster(tmp_path, buses) as cluster:
        a, b = cluster.urls
        bob, _ = await _user(a, "bob")
        alice, _ = await _user(b, "alice")
        stray = await nats.connect(need_nats())
        try:
            for junk in (b"", b"\xff\xfe", b"[]", b'{"k":"env"}', b'{"k":"env","v":7}',
                         b'{"k":"kt","v":-1}', b'{"k":"kt","v":"9"}', b'{"k":"zz","v":"x"}',
                         b'{"k":"del","v":""}', b'{"k":"kt","v":1e999}', b"{" * 100_000,
                         b'{"k":"env","v":"' + b"x" * 5000 + b'"}'):
                await stray.publish(buses[0].subject, junk)
            await stray.publish(buses[0].subject, b'{"k":"env","v":"nobody-here"}')
            await stray.flush()
            (eid,) = await alice.send([("bob", b"still here")])
            (got,) = await _delivers(bob, 1)
            assert got.envelope_id == eid
        finally:
            await stray.close()
            await bob.close()
            await alice.close()
