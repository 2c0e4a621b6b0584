"""The relay's sender certificates (server/certificates.py, GET_CERTIFICATE and
CERT_KEY in server/relay.py, docs/PROTOCOL.md 20), checked from the outside against a
real relay: what a client can verify, what needs a login, what survives a restart,
and that nothing about an issued certificate is kept."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import stat
from pathlib import Path

from client.connection import RelayConnection
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire.certificates import SenderCertificate, verify_certificate
from protocol.wire.frames import (
    Certificate,
    CertKey,
    CertKeyAnswer,
    ErrorCode,
    GetCertificate,
    QueueDone,
    encode_frame,
)
from server.audit import audit
from server.certificates import CERT_KEY_FILENAME
from server.config import ServerConfig
from server.serve import running_relay as serve_relay
from server.sqlite_store import DB_FILENAME
from tests.support import RunningRelay, running_relay


async def _user(url: str, name: str) -> tuple[RelayConnection, IdentityKeyPair]:
    identity = IdentityKeyPair.generate()
    conn = await RelayConnection.open(url)
    await conn.register(name, identity)
    assert isinstance(await conn.next_push(5), QueueDone)
    return conn, identity


async def test_a_logged_in_user_gets_a_certificate_that_verifies(relay: RunningRelay) -> None:
    alice, identity = await _user(relay.url, "alice")
    try:
        key = (await alice.request(CertKey(), CertKeyAnswer)).public_key
        before = int(relay.relay.clock())
        answer = await alice.request(GetCertificate(), Certificate)
        after = int(relay.relay.clock())
        cert = verify_certificate(answer.certificate, key, after)
    finally:
        await alice.close()
    assert (cert.username, cert.identity) == ("alice", identity.public)
    assert before + 24 * 3600 <= cert.expires <= after + 24 * 3600


async def test_get_certificate_needs_a_login_and_cert_key_does_not(
        relay: RunningRelay) -> None:
    anonymous = await RelayConnection.open(relay.url)
    try:
        answer = await anonymous.request_raw(encode_frame(GetCertificate(),
                                                          anonymous.next_id()))
        assert getattr(answer, "code", None) == ErrorCode.NOT_AUTHENTICATED
        key = await anonymous.request(CertKey(), CertKeyAnswer)
    finally:
        await anonymous.close()
    assert key.public_key == relay.relay.cert_public_key


async def test_the_lifetime_is_the_configured_one(tmp_path: Path, unused_port: int) -> None:
    config = ServerConfig(port=unused_port, data_dir=tmp_path, certificate_lifetime=60)
    async with serve_relay(config) as running:
        alice, _ = await _user(running.url, "alice")
        try:
            now = int(running.relay.clock())
            data = (await alice.request(GetCertificate(), Certificate)).certificate
        finally:
            await alice.close()
        cert = verify_certificate(data, running.relay.cert_public_key, now)
    assert now + 59 <= cert.expires <= now + 61


async def test_the_key_survives_a_restart(tmp_path: Path, unused_port: int) -> None:
    config = ServerConfig(port=unused_port, data_dir=tmp_path)
    keys: list[bytes] = []
    certs: list[SenderCertificate] = []
    for restart in range(2):
        async with serve_relay(config) as running:
            if restart == 0:
                conn, _ = await _user(running.url, "alice")
                data = (await conn.request(GetCertificate(), Certificate)).certificate
                await conn.close()
            anonymous = await RelayConnection.open(running.url)
            try:
                keys.append((await anonymous.request(CertKey(), CertKeyAnswer)).public_key)
            finally:
                await anonymous.close()
            certs.append(verify_certificate(data, keys[-1], running.relay.clock()))
    assert keys[0] == keys[1]
    assert certs[0] == certs[1]  # a certificate from before the restart still verifies
    path = tmp_path / CERT_KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32


async def test_nothing_about_a_certificate_is_stored(tmp_path: Path) -> None:
    """The relay keeps no record of issued certificates (docs/DATA.md): the database
    holds the same rows before and after issuing some, and the audit prints the
    public key, never the seed."""
    async with running_relay(tmp_path) as running:
        alice, _ = await _user(running.url, "alice")
        try:
            db_before = _dump(tmp_path)
            for _ in range(3):
                await alice.request(GetCertificate(), Certificate)
            db_after = _dump(tmp_path)
        finally:
            await alice.close()
        public = running.relay.cert_public_key
    assert db_before == db_after
    out = io.StringIO()
    assert await asyncio.to_thread(audit, tmp_path, out) == 0
    report = out.getvalue()
    assert f"Sender-certificate key: {public.hex()}" in report
    assert (tmp_path / CERT_KEY_FILENAME).read_bytes().hex() not in report


def _dump(data_dir: Path) -> list[tuple[str, list[tuple[object, ...]]]]:
    db = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name")]
        return [(t, sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr))
                for t in tables]
    finally:
        db.close()
