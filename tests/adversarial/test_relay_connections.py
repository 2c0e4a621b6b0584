"""Issue 9 item 15: one stranger cannot hold the relay's connections or memory.

Idle sockets are closed when they do not log in; connections are capped per address,
per account and in total (below the open-file limit, which the relay raises); refusals
are logged as one rate-limited line, never tracebacks; a connection that does not read
is closed once its outbox passes a byte bound; a live DELIVER is encoded once for all
of a user's connections."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.connection import ClientConnection
from protocol.wire.events import Answered, Delivered
from protocol.wire.frames import Error, ErrorCode, Frame, decode_server_frame
from server import serve
from server.config import ServerConfig, default_limits
from server.connections import FD_RESERVE, ConnectionLimits, connection_cap
from server.relay import Relay
from server.sqlite_store import SqliteStorage
from tests.support import LISTENING, ROOT


@asynccontextmanager
async def relay_with(tmp_path: Path, **limits: float) -> AsyncIterator[serve.RunningRelay]:
    config = ServerConfig(port=0, data_dir=tmp_path,
                          connections=ConnectionLimits(**limits))  # type: ignore[arg-type]
    async with serve.running_relay(config) as relay:
        yield relay


async def test_a_connection_that_does_not_log_in_is_closed(tmp_path: Path) -> None:
    async with relay_with(tmp_path, login_timeout=0.5) as relay:
        idle = await RelayConnection.open(relay.url)
        user = await RelayConnection.open(relay.url)
        await user.register("alice", IdentityKeyPair.generate())
        await asyncio.wait_for(idle.closed.wait(), 5)
        error = await idle.next_push(1)
        assert isinstance(error, Error) and error.code == ErrorCode.LOGIN_TIMEOUT
        assert idle.ws.close_code == 1008
        await asyncio.sleep(0.3)
        assert not user.closed.is_set()  # logged in: no deadline
        assert await user.prekey_counts() == (0, 0)
        await idle.close()
        await user.close()


async def _idle_sockets(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        socks.append(sock)
    await asyncio.sleep(0.2)
    return socks


async def test_idle_sockets_from_one_address_are_capped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "blindrelay.server")
    async with relay_with(tmp_path, max_per_address=4) as relay:
        socks = await _idle_sockets(relay.port, 4)  # never even start a handshake
        refused = 0
        for _ in range(20):
            try:
                async with connect(relay.url, open_timeout=2):
                    pass  # pragma: no cover
            except (ConnectionClosed, InvalidMessage, OSError, EOFError):
                refused += 1
        assert refused == 20
        assert relay.relay.connections == 0
        socks.pop().close()
        await asyncio.sleep(0.2)
        conn = await RelayConnection.open(relay.url)  # a slot is free again
        await conn.register("alice", IdentityKeyPair.generate())
        await conn.close()
        for sock in socks:
            sock.close()
    refusals = [r for r in caplog.records if "refusing connections" in r.getMessage()]
    assert len(refusals) == 1  # rate-limited, and no traceback
    assert refusals[0].exc_info is None


async def test_an_account_has_at_most_its_cap_of_connections(tmp_path: Path) -> None:
    identity = IdentityKeyPair.generate()
    async with relay_with(tmp_path, max_per_account=2) as relay:
        conns = [await RelayConnection.open(relay.url) for _ in range(3)]
        await conns[0].register("alice", identity)
        await conns[1].login("alice", identity)
        with pytest.raises(RelayError) as refused:
            await conns[2].login("alice", identity)
        assert refused.value.code == ErrorCode.TOO_MANY_CONNECTIONS
        await conns[0].close()
        await asyncio.sleep(0.1)
        await conns[2].login("alice", identity)  # one closed: room again
        for conn in conns:
            await conn.close()


def test_the_total_cap_stays_below_the_open_file_limit() -> None:
    limits = ConnectionLimits(max_connections=10_000)
    assert connection_cap(limits, 1024) == 1024 - FD_RESERVE
    assert connection_cap(limits, 1 << 20) == 10_000


def _relay_process(data: Path, soft: int, hard: int, *args: str) -> tuple[subprocess.Popen[str],
                                                                          str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = subprocess.Popen(
        [sys.executable, "-m", "blindrelay", "serve", "--port", "0", "--data", str(data),
         *args], cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=limit,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if match := LISTENING.search(line):
            return proc, match.group(1)
    raise AssertionError(proc.stderr.read() if proc.stderr else "no output")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    return err


def test_the_relay_raises_its_open_file_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 256:
        pytest.skip("needs a finite hard limit above 256")
    proc, _ = _relay_process(tmp_path, 128, hard)
    try:
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3] == str(hard)
    finally:
        _stop(proc)


def test_a_flood_of_idle_sockets_neither_locks_out_nor_floods_the_log(tmp_path: Path) -> None:
    """The attack from the issue, scaled down: a hard limit of 80 open files (cap 48),
    120 idle sockets from one client held open, and meanwhile an honest user."""
    proc, url = _relay_process(tmp_path, 80, 80, "--login-timeout", "1",
                               "--max-connections-per-address", "1000")
    port = int(url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    try:
        for _ in range(120):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(2)  # the relay drops the idle ones that it took, within ~1 s

        async def honest() -> None:
            conn = await RelayConnection.open(url, open_timeout=8)
            await conn.register("alice", IdentityKeyPair.generate())
            await conn.close()

        asyncio.run(asyncio.wait_for(honest(), 12))
    finally:
        for sock in socks:
            sock.close()
        err = _stop(proc)
    assert "Traceback" not in err
    assert len(err.encode()) < 4096, err[:2000]


class StalledReader:
    """A WebSocket whose peer logs in and then stops reading: sends block for good."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.stalled = False
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.got = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes]:
        while not self.closed.is_set():
            getter = asyncio.ensure_future(self.incoming.get())
            closed = asyncio.ensure_future(self.closed.wait())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            getter.cancel()
            closed.cancel()
            if getter in done:
                yield getter.result()

    async def send(self, message: bytes) -> None:
        if self.stalled:  # until closed, as a real WebSocket's send fails then
            await self.closed.wait()
            raise ConnectionResetError("closed")
        self.sent.append(message)
        self.got.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.closed.set()


async def _log_in(relay: Relay, peer: StalledReader, core: ClientConnection,
                  identity: IdentityKeyPair, register: bool) -> None:
    async def next_frame() -> bytes:
        while not peer.sent:
            peer.got.clear()
            await peer.got.wait()
        return peer.sent.pop(0)

    core.receive_data(await next_frame())  # HELLO
    frame = core.register_frame("bob", identity.public, identity.sign) if register else \
        core.login_frame("bob", identity.sign)
    await peer.incoming.put(core.send(frame))
    (event,) = core.receive_data(await next_frame())
    assert isinstance(event, Answered)
    core.receive_data(await next_frame())  # QUEUE_DONE
    await asyncio.sleep(0.05)
    peer.sent.clear()


async def test_a_connection_that_does_not_read_is_closed_at_its_byte_bound(
        tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    relay = Relay(store, default_limits(), frozenset({"ws://relay.test:1"}),
                  connection_limits=ConnectionLimits(max_outbox_bytes=256 * 1024))
    peer = StalledReader()
    handler = asyncio.create_task(relay.handle(peer))
    await _log_in(relay, peer, ClientConnection("ws://relay.test:1"), IdentityKeyPair.generate(),
                  True)
    peer.stalled = True
    body = os.urandom(60 * 1024)
    pushed = 0
    while not peer.closed.is_set() and pushed < 64:
        await relay.store_and_push([("bob", body)])
        pushed += 1
        await asyncio.sleep(0)
    assert peer.close_code == 1013
    assert pushed <= 8  # ~256 KiB of 60 KiB envelopes, not 256 frames (15 MiB)
    await asyncio.wait_for(handler, 10)
    assert len(await store.queued("bob", 0, 100, 0)) == pushed  # still queued for later
    await store.close()


async def test_one_deliver_is_encoded_once_for_all_connections(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path)
    relay = Relay(store, default_limits(), frozenset({"ws://relay.test:1"}))
    identity = IdentityKeyPair.generate()
    peers = [StalledReader(), StalledReader()]
    handlers = [asyncio.create_task(relay.handle(p)) for p in peers]
    for i, peer in enumerate(peers):
        await _log_in(relay, peer, ClientConnection("ws://relay.test:1"), identity, i == 0)
    await relay.store_and_push([("bob", b"x" * 1000)])
    await asyncio.sleep(0.05)
    (first,), (second,) = peers[0].sent, peers[1].sent
    assert first is second  # the same bytes object, not two copies
    core = ClientConnection("ws://relay.test:1")
    assert core.limits is None and isinstance(
        ClientConnection._event(_logged_in(core), 0, _decode(first)), Delivered)
    for peer in peers:
        await peer.close()
    await asyncio.gather(*handlers)
    await store.close()


def _logged_in(core: ClientConnection) -> ClientConnection:
    from protocol.wire.connection import State
    core.state = State.LOGGED_IN
    return core


def _decode(data: bytes) -> Frame:
    return decode_server_frame(data)[1]


async def test_a_real_socket_that_stops_reading_is_closed_with_1013(tmp_path: Path) -> None:
    """Over a real socket, where frames go straight into the transport's buffer while
    it takes them: once the peer stops reading, the kernel's and the transport's
    buffers fill, then the outbox to its byte bound, and the next push closes the
    connection with 1013; the envelopes stay queued."""
    config = ServerConfig(port=0, data_dir=tmp_path, limits=default_limits(),
                          connections=ConnectionLimits(max_outbox_bytes=256 * 1024))
    async with serve.running_relay(config) as running:
        relay = running.relay
        url = running.url
        core = ClientConnection(url)
        ws = await connect(url, compression=None, max_size=None, ping_interval=None)
        core.receive_data(await ws.recv(decode=False))
        identity = IdentityKeyPair.generate()
        await ws.send(core.send(core.register_frame("bob", identity.public, identity.sign)))
        while "bob" not in relay.online:
            core.receive_data(await ws.recv(decode=False))
        ws.transport.pause_reading()
        body = os.urandom(60 * 1024)
        pushed = 0
        while not any(c.closing for c in relay.online.get("bob", ())) and pushed < 2000:
            await relay.store_and_push([("bob", body)])
            pushed += 1
            await asyncio.sleep(0)
        assert 0 < pushed < 2000
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        assert ws.close_code == 1013
        assert len(await relay.storage.queued("bob", 0, 5000, 0)) == pushed
