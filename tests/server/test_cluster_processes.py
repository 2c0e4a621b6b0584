"""Two real `blindrelay serve` processes on one PostgreSQL database, one NATS bus and one
port (SO_REUSEPORT), as docs/DEPLOY.md runs them (issue 14 item 4): a user on one
process gets at once what a sender stored through the other, and SIGKILL of one
process under load loses no acknowledged envelope and delivers none twice
(tests/conformance/test_relay_cluster.py runs the whole conformance suite against
them). Skipped with the reason (a failure under CI) without PostgreSQL or NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from websockets.exceptions import WebSocketException

from client.connection import ConnectionLost, RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Deliver, QueueDone
from tests.cluster_support import cluster_args, start_in_cluster, stopped_at_exit
from tests.support import RelayProcess, drain_queue, start_relay_process

SENDERS = 6

GONE = (ConnectionLost, RelayError, OSError, EOFError, WebSocketException)
"""What dialling the port can meet right after a kill: a connection the dead process
had accepted into its backlog is reset or closed during the handshake. A client
dials again, as real clients do."""


def _process_of(conn: RelayConnection, procs: Sequence[RelayProcess]) -> int:
    """Which of `procs` (its index) holds the server side of `conn`: the socket whose
    peer is conn's local port (/proc/net/tcp), among each process's descriptors."""
    port = conn.ws.local_address[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for n, rp in enumerate(procs):
        for fd in Path(f"/proc/{rp.proc.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return n
    raise AssertionError("no relay process holds the connection")


async def _connected_to(url: str, procs: Sequence[RelayProcess], index: int
                        ) -> RelayConnection:
    """A connection that the kernel gave to procs[index] (dialling again until so)."""
    for _ in range(100):
        conn = await RelayConnection.open(url)
        if _process_of(conn, procs) == index:
            return conn
        await conn.close()
    raise AssertionError(f"100 connections and none reached process {index}")


async def test_a_user_on_one_process_gets_at_once_what_another_stored(
        tmp_path: Path) -> None:
    async with cluster_args() as cluster:
        one = start_in_cluster(tmp_path / "data", cluster, "--log-level", "WARNING")
        two = start_in_cluster(tmp_path / "data", cluster, "--log-level", "WARNING")
        with stopped_at_exit(one, two):
            procs = (one, two)
            bob = await _connected_to(one.url, procs, 0)
            alice = await _connected_to(one.url, procs, 1)
            try:
                await bob.register("bob", IdentityKeyPair.generate())
                await alice.register("alice", IdentityKeyPair.generate())
                assert isinstance(await bob.next_push(5), QueueDone)
                sent = [(await alice.send([("bob", b"%d" % i)]))[0] for i in range(20)]
                got: list[bytes] = []
                while len(got) < len(sent):
                    frame = await bob.next_push(2)  # live: no login in between
                    if isinstance(frame, Deliver):
                        got.append(frame.envelope_id)
                assert got == sent
            finally:
                await bob.close()
                await alice.close()
            assert one.stop() == 0 and two.stop() == 0


async def _sender(url: str, name: str, acked: dict[bytes, bytes], live: dict[bytes, bytes],
                  ready: asyncio.Event, enough: asyncio.Event, reconnects: list[str]) -> None:
    """Sends each body to bob (offline) and carol (online) until `enough`; a lost
    connection (its process was killed) is opened again (landing on the survivor) and
    sending goes on."""
    identity = IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    ready.set()
    counter = 0
    while not enough.is_set():
        body = f"{name}:{counter}:".encode() + os.urandom(64)
        try:
            envelope_id, carols = await conn.send([("bob", body), ("carol", body)])
        except (ConnectionLost, RelayError, OSError):
            reconnects.append(name)
            await conn.close()
            for _ in range(50):  # the survivor takes over the port at once
                with contextlib.suppress(*GONE):
                    conn = await RelayConnection.open(url)
                    await conn.login(name, identity)
                    break
                await asyncio.sleep(0.1)
            counter += 1  # an unacknowledged send may or may not be stored
            continue
        acked[envelope_id] = live[carols] = body
        counter += 1
    await conn.close()


class LiveReceiver:
    """carol: online throughout, ACKing each DELIVER; when her process is killed she
    logs in again (to the survivor) and goes on. Records what each connection got."""

    def __init__(self, url: str, identity: IdentityKeyPair) -> None:
        self.url, self.identity = url, identity
        self.connections: list[list[bytes]] = []
        self.acked: set[bytes] = set()  # ACKs the relay answered OK: deleted for good
        self.redelivered: list[bytes] = []

    async def run(self, stop: asyncio.Event) -> None:
        conn = await RelayConnection.open(self.url)
        await conn.login("carol", self.identity)
        while not stop.is_set():
            got: list[bytes] = []
            self.connections.append(got)
            try:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        frame = await conn.next_push(0.2)
                        if isinstance(frame, Deliver):
                            if frame.envelope_id in self.acked:
                                self.redelivered.append(frame.envelope_id)
                            got.append(frame.envelope_id)
                            await conn.ack([frame.envelope_id])
                            self.acked.add(frame.envelope_id)
            except (ConnectionLost, RelayError, OSError):
                await conn.close()
                for _ in range(50):
                    with contextlib.suppress(*GONE):
                        conn = await RelayConnection.open(self.url)
                        await conn.login("carol", self.identity)
                        break
                    await asyncio.sleep(0.1)
        await conn.close()


async def test_sigkill_of_one_process_under_load_loses_and_duplicates_nothing(
        tmp_path: Path) -> None:
    bob_id, carol_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    acked: dict[bytes, bytes] = {}
    live: dict[bytes, bytes] = {}
    reconnects: list[str] = []
    async with cluster_args() as cluster:
        args = (*cluster, "--rate", "10000", "--burst", "10000", "--log-level", "WARNING")
        with contextlib.ExitStack() as stack:
            one = start_relay_process(tmp_path / "data", *args)
            stack.enter_context(stopped_at_exit(one))
            bob = await RelayConnection.open(one.url)
            await bob.register("bob", bob_id)
            await bob.close()
            carol = await RelayConnection.open(one.url)
            await carol.register("carol", carol_id)
            await carol.close()
            receiver = LiveReceiver(one.url, carol_id)  # on process one: it will be killed
            received = asyncio.Event()
            carol_task = asyncio.create_task(receiver.run(received))
            ready = [asyncio.Event() for _ in range(SENDERS)]
            enough = asyncio.Event()
            tasks = []
            for i in range(SENDERS):  # the first half on process one (alone so far), the
                if i == SENDERS // 2:  # rest spread by the kernel over both
                    two = start_relay_process(tmp_path / "data", *args)
                    stack.enter_context(stopped_at_exit(two))
                tasks.append(asyncio.create_task(_sender(
                    one.url, f"sender{i}", acked, live, ready[i], enough, reconnects)))
                await asyncio.wait_for(ready[i].wait(), 10)
            while len(acked) < 300:
                await asyncio.sleep(0.02)
            one.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(one.proc.wait, 10)
            at_kill = len(acked)
            while len(acked) < at_kill + 300:  # the survivor keeps serving everyone
                await asyncio.sleep(0.02)
            enough.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            assert len(set(reconnects)) >= SENDERS // 2  # those on the killed process
            for _ in range(100):  # carol, online again, gets the rest live
                if set(live) <= {eid for got in receiver.connections for eid in got}:
                    break
                await asyncio.sleep(0.1)
            received.set()
            await asyncio.wait_for(carol_task, 30)
            assert len(receiver.connections) >= 2  # her first process was killed
            for got in receiver.connections:
                assert len(got) == len(set(got)), "delivered twice on one connection"
            assert not receiver.redelivered, "an envelope was delivered after its ACK's OK"
            # an ACK whose OK the kill cut off may have deleted its envelope: delivered
            # once is what counts
            lost = set(live) - {eid for got in receiver.connections for eid in got}
            assert not lost, f"carol lost {len(lost)} acknowledged envelopes of {len(live)}"

            bob = await RelayConnection.open(two.url)
            await bob.login("bob", bob_id)
            delivered = await drain_queue(bob)
            await bob.close()
            assert two.stop() == 0

    missing = [eid for eid in acked if eid not in delivered]
    assert not missing, f"{len(missing)} acknowledged envelopes lost of {len(acked)}"
    for eid, body in acked.items():
        assert delivered[eid] == body
    last: dict[bytes, int] = {}
    for body in delivered.values():  # in order per sender
        name, counter, _ = body.split(b":", 2)
        assert int(counter) > last.get(name, -1)
        last[name] = int(counter)
