"""Issue 9 item 17 (relay side): what `blindrelay serve` tells strangers and operators.

No software banner in HTTP answers; one relay per data directory; a port in use is one
clear line, not a traceback; with --public-url only the public URLs are accepted."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from client.connection import RelayConnection, RelayError
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import ErrorCode
from server import serve
from server.config import ServerConfig
from server.startup import RelayStartError
from tests.support import ROOT, relay_process, running_relay


async def _http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head


async def test_http_answers_name_no_software(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        health = await _http(relay.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        upgrade = await _http(
            relay.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200")
    assert upgrade.startswith(b"HTTP/1.1 101")
    for head in (health, upgrade):
        assert b"server:" not in head.lower()
        assert b"websockets" not in head.lower() and b"python" not in head.lower()


async def test_a_second_relay_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path):
        with pytest.raises(RelayStartError, match="already using the data directory"):
            async with serve.running_relay(ServerConfig(port=0, data_dir=tmp_path)):
                pass  # pragma: no cover
    async with running_relay(tmp_path):  # released when the first one stopped
        pass


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blindrelay", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=15)


def test_serve_on_a_used_data_directory_says_so_in_one_line(tmp_path: Path) -> None:
    with relay_process(tmp_path):
        done = _serve("--port", "0", "--data", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("blindrelay serve: another relay is already using")
    assert len([line for line in lines if "blindrelay serve:" in line]) == 1


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve("--port", str(port), "--data", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"blindrelay serve: 127.0.0.1:{port} is already in use" in done.stderr


def test_public_urls_replace_the_loopback_aliases() -> None:
    config = ServerConfig(public_urls=("wss://Relay.Example.org",))
    assert config.accepted_urls(8765) == frozenset({"wss://relay.example.org:443"})
    assert "ws://127.0.0.1:8765" in ServerConfig().accepted_urls(8765)


async def test_with_a_public_url_a_signature_for_localhost_is_refused(tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path, public_urls=("wss://relay.example.org",))
    async with serve.running_relay(config) as relay:
        conn = await RelayConnection.open(relay.url)  # signs for ws://127.0.0.1:port
        try:
            with pytest.raises(RelayError) as refused:
                await conn.register("mallory", IdentityKeyPair.generate())
        finally:
            await conn.close()
    assert refused.value.code == ErrorCode.BAD_SIGNATURE


SMALL_ORDER_KEY = b"\x01" + bytes(31)  # the neutral point; R = it, S = 0 verifies anything


async def test_a_small_order_identity_key_cannot_register(tmp_path: Path) -> None:
    from protocol.wire.frames import Error, Login, Ok, Register, encode_frame

    async with running_relay(tmp_path) as relay:
        conn = await RelayConnection.open(relay.url)
        universal = SMALL_ORDER_KEY + bytes(32)
        answer = await conn.request_raw(encode_frame(
            Register("mallory", SMALL_ORDER_KEY, universal), conn.next_id()))
        assert isinstance(answer, Error) and answer.code == ErrorCode.MALFORMED_FRAME
        await conn.close()
        other = await RelayConnection.open(relay.url)
        answer = await other.request_raw(encode_frame(Login("mallory", universal),
                                                      other.next_id()))
        assert not isinstance(answer, Ok)
        await other.close()
