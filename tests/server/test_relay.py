"""The relay as a process and as an in-process server: health, shutdown, restart,
logs, secure deletion and the audit, each checked from the outside."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.frames import Deliver, QueueDone
from server.audit import audit
from server.sqlite_store import DB_FILENAME
from tests.support import relay_process, running_relay


async def _user(url: str, name: str) -> tuple[RelayConnection, IdentityKeyPair]:
    identity = IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn, identity


async def _next_delivery(conn: RelayConnection) -> Deliver:
    while True:
        frame = await conn.next_push(5)
        if isinstance(frame, Deliver):
            return frame


async def test_healthz_answers_plain_http(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        response = await reader.read(4096)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b"ok\n")


async def test_sigterm_closes_connections_with_1001_and_exits_0(tmp_path: Path) -> None:
    with relay_process(tmp_path) as rp:
        ws = await connect(rp.url)
        await ws.recv()  # HELLO
        rp.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
        assert await asyncio.to_thread(rp.proc.wait, 15) == 0


async def test_restart_loses_nothing_and_logs_hold_no_secrets(tmp_path: Path) -> None:
    body = os.urandom(3000)
    with relay_process(tmp_path) as rp:
        alice, _ = await _user(rp.url, "alice")
        bob, bob_id = await _user(rp.url, "bob")
        await bob.close()
        (envelope_id,) = await alice.send([("bob", body)])
        await alice.close()
        assert await asyncio.to_thread(rp.stop) == 0
        _, first_log = rp.proc.communicate()
    with relay_process(tmp_path) as rp:
        bob = await RelayConnection.open(rp.url)
        await bob.login("bob", bob_id)
        delivered = await _next_delivery(bob)
        assert (delivered.envelope_id, delivered.body) == (envelope_id, body)
        await bob.ack([envelope_id])
        await bob.close()
        assert await asyncio.to_thread(rp.stop) == 0
        _, second_log = rp.proc.communicate()
    for log in (first_log, second_log):
        assert "listening on" in log
        for secret in ("alice", "bob", body.hex()[:32], envelope_id.hex(), "127.0.0.1:"):
            if secret == "127.0.0.1:":
                # the relay's own address appears once, in the startup line, and nowhere else
                assert log.count(secret) == 1
            else:
                assert secret not in log


async def test_acknowledged_ciphertext_is_gone_from_the_files(tmp_path: Path) -> None:
    body = os.urandom(4096)
    async with running_relay(tmp_path) as relay:
        alice, _ = await _user(relay.url, "alice")
        bob, _ = await _user(relay.url, "bob")
        (envelope_id,) = await alice.send([("bob", body)])
        assert (await _next_delivery(bob)).body == body
        await bob.ack([envelope_id])
        await alice.close()
        await bob.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert (tmp_path / DB_FILENAME).exists()
    assert body[:64] not in data and body[-64:] not in data


async def test_unacknowledged_envelope_is_redelivered_in_order(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        alice, _ = await _user(relay.url, "alice")
        bob, bob_id = await _user(relay.url, "bob")
        await bob.close()
        bodies = [os.urandom(200) for _ in range(5)]
        for body in bodies:
            await alice.send([("bob", body)])
        bob = await RelayConnection.open(relay.url)
        await bob.login("bob", bob_id)
        got = [await _next_delivery(bob) for _ in bodies]
        assert [d.body for d in got] == bodies
        assert isinstance(await bob.next_push(5), QueueDone)
        await bob.ack([d.envelope_id for d in got[:2]])
        await bob.close()
        bob = await RelayConnection.open(relay.url)
        await bob.login("bob", bob_id)
        again = [await _next_delivery(bob) for _ in bodies[2:]]
        assert [d.body for d in again] == bodies[2:]
        assert (await bob.next_push(5)) == QueueDone(3)
        await alice.close()
        await bob.close()


async def test_audit_shows_metadata_and_only_hashes_of_ciphertext(tmp_path: Path) -> None:
    body = os.urandom(500)
    async with running_relay(tmp_path) as relay:
        alice, _ = await _user(relay.url, "alice")
        bob, _ = await _user(relay.url, "bob")
        await bob.close()
        await alice.send([("bob", body)])
        await alice.close()
    out = io.StringIO()
    assert audit(tmp_path, out) == 0
    report = out.getvalue()
    assert "Table envelopes: 1 rows" in report
    assert "Table accounts: 2 rows" in report
    assert "recipient=bob" in report
    assert "<500 bytes sha256:" in report
    assert body.hex()[:16] not in report
    assert "oldest queued envelope" in report
    assert "every received_at is a multiple of 300 s" in report
    assert "sqlite_sequence: none (no all-time counter)" in report
    assert "Schema version" not in report  # current: nothing to migrate
    assert "NOT IN THE DATA INVENTORY" not in report


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_wss_with_tls_certificate(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    data = tmp_path / "data"
    with relay_process(data, "--tls-cert", str(cert), "--tls-key", str(key)) as rp:
        assert rp.url.startswith("wss://")
        context = ssl.create_default_context(cafile=str(cert))
        url = rp.url.replace("127.0.0.1", "localhost")
        conn = await RelayConnection.open(url, ssl=context)
        await conn.register("alice", IdentityKeyPair.generate())
        assert isinstance(await conn.next_push(5), QueueDone)
        await conn.close()


async def test_pushes_continue_after_the_queue_empties(tmp_path: Path) -> None:
    """Envelope seqs are never reused: once every envelope was acknowledged and deleted,
    the next one must still reach a recipient who is online (a reused seq would look
    already delivered to that connection)."""
    async with running_relay(tmp_path) as relay:
        alice, _ = await _user(relay.url, "alice")
        bob, _ = await _user(relay.url, "bob")
        for i in range(3):
            await alice.send([("bob", bytes([i]) * 10)])
            got = await _next_delivery(bob)
            assert got.body == bytes([i]) * 10
            await bob.ack([got.envelope_id])
        await alice.close()
        await bob.close()
