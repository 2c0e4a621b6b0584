"""`blindrelay witness` over real HTTP on loopback (server/witness.py, PROTOCOL.md 19.11):
it cosigns a log's heads only while each extends the last one it cosigned."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blindrelay.cli import main
from protocol.wire.kt.checkpoint import Checkpoint, sign_checkpoint
from protocol.wire.kt.cosignature import (
    Cosigner,
    add_cosignatures,
    parse_cosigner_key,
    require_cosignature,
)
from protocol.wire.kt.directory import Directory
from protocol.wire.kt.errors import NoteSignatureError
from protocol.wire.kt.note import Signer, sign_note
from server.witness import (
    KEY_FILE,
    STATE_FILE,
    WitnessConflict,
    WitnessError,
    open_witness,
    running_witness,
    witness_checkpoint,
)

ORIGIN = "relay.example"
ROOT = Path(__file__).resolve().parents[2]


def grow(d: Directory, n: int) -> None:
    """n more registrations in the directory's log."""
    for _ in range(n):
        name = f"user{d.size}"
        identity = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        d.append(name, d.next_binding(name, identity), os.urandom(16))


def directory(entries: int) -> Directory:
    d = Directory(Signer.generate(ORIGIN), os.urandom(32))
    grow(d, entries)
    return d


async def test_cosigns_a_first_head_then_a_consistent_newer_one(tmp_path: Path) -> None:
    d = directory(3)
    witness = open_witness(tmp_path / "w", [d.signer.verifier], "witness.example/w1")
    keys = [witness.cosigner.verifier]
    async with running_witness(witness) as running:
        note3 = d.checkpoint()
        lines = await witness_checkpoint(running.url, 0, [], note3)
        cosigned = add_cosignatures(note3, lines)
        (first,) = require_cosignature(cosigned, keys)
        assert first.name == "witness.example/w1"

        grow(d, 4)
        note7 = d.checkpoint()
        lines = await witness_checkpoint(running.url, 3, d.consistency(3, 7), note7)
        require_cosignature(add_cosignatures(note7, lines), keys)
        # the same head again is cosigned again (a fresh timestamp, nothing moves)
        again = await witness_checkpoint(running.url, 7, [], note7)
        require_cosignature(add_cosignatures(note7, again), keys)
    assert witness.state.heads[ORIGIN].size == 7


async def test_the_cosignature_fails_for_another_key_or_a_tampered_head(
        tmp_path: Path) -> None:
    d = directory(2)
    witness = open_witness(tmp_path / "w", [d.signer.verifier])
    async with running_witness(witness) as running:
        lines = await witness_checkpoint(running.url, 0, [], d.checkpoint())
    cosigned = add_cosignatures(d.checkpoint(), lines)
    with pytest.raises(NoteSignatureError):
        require_cosignature(cosigned, [Cosigner.generate(witness.cosigner.name).verifier])
    other = sign_checkpoint(Checkpoint(ORIGIN, 2, os.urandom(32)), d.signer)
    with pytest.raises(NoteSignatureError):
        require_cosignature(add_cosignatures(other, lines), [witness.cosigner.verifier])


async def test_a_fork_is_refused_and_the_witness_does_not_move(tmp_path: Path) -> None:
    honest = directory(4)
    witness = open_witness(tmp_path / "w", [honest.signer.verifier])
    async with running_witness(witness) as running:
        await witness_checkpoint(running.url, 0, [], honest.checkpoint())
        # the same log key signs another history (the relay shows someone else a fork)
        fork = Directory(honest.signer, os.urandom(32))
        grow(fork, 6)
        forged_proof = fork.consistency(4, 6)
        with pytest.raises(WitnessError) as refused:
            await witness_checkpoint(running.url, 4, forged_proof, fork.checkpoint())
        assert refused.value.status == 422
        # pretending the witness never saw the log: 409 and its real size
        with pytest.raises(WitnessConflict) as conflict:
            await witness_checkpoint(running.url, 0, [], fork.checkpoint())
        assert conflict.value.latest_size == 4
        # a different root at the same size: 409
        same_size = Directory(honest.signer, os.urandom(32))
        grow(same_size, 4)
        with pytest.raises(WitnessConflict):
            await witness_checkpoint(running.url, 4, [], same_size.checkpoint())
        # an older size than the stored one: 409 (it never goes back)
        smaller = directory(0)
        smaller.signer = honest.signer
        grow(smaller, 2)
        with pytest.raises(WitnessConflict):
            await witness_checkpoint(running.url, 2, [], smaller.checkpoint())
        # old size past the checkpoint: 400
        with pytest.raises(WitnessError) as bad:
            await witness_checkpoint(running.url, 9, [], honest.checkpoint())
        assert bad.value.status == 400
    assert witness.state.heads[ORIGIN].size == 4
    assert witness.state.notes[ORIGIN] == honest.checkpoint().decode()


async def test_unsigned_or_unknown_logs_are_refused(tmp_path: Path) -> None:
    d = directory(1)
    witness = open_witness(tmp_path / "w", [d.signer.verifier])
    async with running_witness(witness) as running:
        text = Checkpoint(ORIGIN, 1, d.log.root()).encode()
        impostor = sign_note(text, [Signer.generate(ORIGIN)])  # right name, wrong key
        with pytest.raises(WitnessError) as forbidden:
            await witness_checkpoint(running.url, 0, [], impostor)
        assert forbidden.value.status == 403
        stranger = directory(1)
        stranger.signer = Signer.generate("other.example")
        with pytest.raises(WitnessError) as unknown:
            await witness_checkpoint(running.url, 0, [], stranger.checkpoint())
        assert unknown.value.status == 404
        with pytest.raises(WitnessError) as unsigned:
            await witness_checkpoint(running.url, 0, [], text.encode())
        assert unsigned.value.status == 400  # not even a signed note
    assert witness.state.heads == {}


async def test_the_state_and_key_survive_a_restart(tmp_path: Path) -> None:
    d = directory(3)
    data = tmp_path / "w"
    first = open_witness(data, [d.signer.verifier], "witness.example/w1")
    async with running_witness(first) as running:
        await witness_checkpoint(running.url, 0, [], d.checkpoint())
    key_file = data / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    saved = json.loads((data / STATE_FILE).read_text())
    assert saved["logs"][ORIGIN]["size"] == 3

    second = open_witness(data, [d.signer.verifier])
    assert second.cosigner.verifier == first.cosigner.verifier
    grow(d, 2)
    async with running_witness(second) as running:
        with pytest.raises(WitnessConflict) as conflict:
            await witness_checkpoint(running.url, 0, [], d.checkpoint())
        assert conflict.value.latest_size == 3
        lines = await witness_checkpoint(running.url, 3, d.consistency(3, 5), d.checkpoint())
    require_cosignature(add_cosignatures(d.checkpoint(), lines), [first.cosigner.verifier])


async def test_http_details(tmp_path: Path) -> None:
    """Keep-alive, the 409 content type, and what is not the one route."""
    d = directory(1)
    witness = open_witness(tmp_path / "w", [d.signer.verifier])
    async with running_witness(witness) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        body = b"old 5\n\n" + d.checkpoint()
        for _ in range(2):  # two requests on one connection
            writer.write(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            assert head.startswith("HTTP/1.1 400 ")  # 5 > 1
            length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
            await reader.readexactly(length)
        writer.write(b"GET /add-checkpoint HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 405 ")
        writer.close()
        await witness_checkpoint(running.url, 0, [], d.checkpoint())
        grow(d, 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        body = b"old 0\n\n" + d.checkpoint()
        writer.write(b"POST /add-checkpoint HTTP/1.1\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 409 ")
        assert b"Content-Type: text/x.tlog.size\r\n" in answer
        assert answer.endswith(b"\r\n\r\n1\n")
        with pytest.raises(WitnessError) as missing:
            await witness_checkpoint(running.url + "/elsewhere", 1, [], d.checkpoint())
        assert missing.value.status == 404


def test_show_key_prints_the_verifier_key(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "w"
    assert main(["witness", "--data-dir", str(data), "--show-key",
                 "--name", "school.example/witness"]) == 0
    printed = capsys.readouterr().out.strip()
    assert parse_cosigner_key(printed).name == "school.example/witness"
    assert main(["witness", "--data-dir", str(data), "--show-key"]) == 0
    assert capsys.readouterr().out.strip() == printed
    assert main(["witness", "--data-dir", str(data), "--log", "not-a-key"]) == 1
    assert "--log" in capsys.readouterr().err


async def test_blindrelay_witness_runs_as_a_process(tmp_path: Path) -> None:
    d = directory(2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "blindrelay", "witness", "--data-dir", str(tmp_path / "w"),
         "--log", d.signer.verifier.encode(), "--port", "0", "--name", "friend.example/w"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = await asyncio.to_thread(proc.stdout.readline)
        found = re.search(r"^blindrelay witness (\S+) listening on (http://\S+)/add-checkpoint",
                          ready)
        assert found, ready
        key = parse_cosigner_key(found.group(1))
        lines = await witness_checkpoint(found.group(2), 0, [], d.checkpoint())
        require_cosignature(add_cosignatures(d.checkpoint(), lines), [key])
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


async def test_a_hostile_witness_cannot_write_escapes_into_the_relays_log() -> None:
    """A witness's refusal text is logged by the relay (server/witnessing.py): only
    printable ASCII of it gets that far."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"\x1b]0;pwned\x07\x1b[2Jno\r\nway\xc2\x9b"
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(body)
                     + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    d = directory(2)
    try:
        with pytest.raises(WitnessError) as refused:
            await witness_checkpoint(f"http://127.0.0.1:{port}", 0, [], d.checkpoint())
    finally:
        server.close()
        await server.wait_closed()
    said = str(refused.value)
    assert "no" in said and "way" in said
    assert all(" " <= c <= "~" for c in said), said
