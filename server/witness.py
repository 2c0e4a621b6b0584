"""`blindrelay witness`: an independent C2SP tlog-witness (https://c2sp.org/tlog-witness;
PROTOCOL.md 19.11), and the relay's side of talking to one.

Why: a relay that shows Alice one directory and Bob another signs both. A witness that a
school or a friend runs cosigns a relay's checkpoint only if it extends the last one it
cosigned, so clients that require its cosignature all see one history, or the relay is
caught asking the witness to sign a fork (the witness answers 409/422 and keeps its
head).

The witness holds public data only: the log keys it trusts, and per log the latest
head it cosigned (size, root hash and the signed note), in `state.json` of its data
directory, replaced atomically (write, fsync, rename, fsync the directory) before it
answers. Its own key is `witness.key` (mode 0600), created on first start.

HTTP: stdlib asyncio, HTTP/1.1 with keep-alive, one route: `POST /add-checkpoint`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from protocol.wire.errors import DecodeError
from protocol.wire.kt.cosignature import Cosigner, cosign, parse_cosigner_private_key
from protocol.wire.kt.note import Verifier, parse_verifier_key
from protocol.wire.kt.witness import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    Head,
    Status,
    judge,
    parse_add_checkpoint,
    parse_cosignature_lines,
    parse_size_body,
)

log = logging.getLogger("blindrelay.witness")

KEY_FILE = "witness.key"
STATE_FILE = "state.json"
READ_TIMEOUT = 10.0
MAX_HEADER_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
            422: "Unprocessable Entity", 500: "Internal Server Error"}


class WitnessStartError(Exception):
    """The witness cannot start (bad key file, bad state file, bad name): says why."""


def default_name() -> str:
    """`<hostname>/witness`: a key name is a schema-less URL-like string (tlog-cosignature)."""
    return f"{socket.gethostname().lower() or 'localhost'}/witness"


def load_or_create_key(data_dir: Path, name: str | None = None) -> Cosigner:
    """The witness's key from `witness.key`, or a new one (file mode 0600) on first start.

    A `name` given for an existing key must be the key's: a witness's name is part of
    its key ID, so renaming means a new key that clients must configure again."""
    path = data_dir / KEY_FILE
    if path.exists():
        try:
            cosigner = parse_cosigner_private_key(path.read_text(encoding="ascii").strip())
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            raise WitnessStartError(f"{path}: not a witness key ({exc})") from None
        if name is not None and name != cosigner.name:
            raise WitnessStartError(f"{path} is the key of {cosigner.name!r}, not {name!r}")
        return cosigner
    try:
        cosigner = Cosigner.generate(name or default_name())
    except ValueError as exc:
        raise WitnessStartError(str(exc)) from None
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(cosigner.private_key_string() + "\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(data_dir)
    return cosigner


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class WitnessState:
    """The latest cosigned head per origin, mirrored in `state.json`."""

    path: Path
    heads: dict[str, Head] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WitnessState:
        state = cls(path)
        if not path.exists():
            return state
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            for origin, entry in doc["logs"].items():
                root = base64.b64decode(entry["root"], validate=True)
                state.heads[origin] = Head(int(entry["size"]), root)
                state.notes[origin] = str(entry["note"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WitnessStartError(f"{path}: unreadable witness state ({exc})") from None
        return state

    def record(self, origin: str, head: Head, note: bytes) -> None:
        """Stores the new head durably; on any error the file and memory are unchanged."""
        heads = {**self.heads, origin: head}
        notes = {**self.notes, origin: note.decode("utf-8")}
        doc = {"logs": {o: {"size": h.size, "root": base64.b64encode(h.root).decode(),
                            "note": notes[o]} for o, h in sorted(heads.items())}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.heads, self.notes = heads, notes


@dataclass
class Witness:
    """The add-checkpoint logic bound to a key, a state file and a clock."""

    cosigner: Cosigner
    logs: Mapping[str, Verifier]
    state: WitnessState
    clock: Callable[[], float] = time.time

    def add_checkpoint(self, body: bytes) -> tuple[Status, str, bytes]:
        """(status, content type, body) for one request. Synchronous on purpose: the
        check against the stored head and the write of the new one happen with no
        await between them, so two requests cannot roll the head back (tlog-witness)."""
        try:
            request = parse_add_checkpoint(body)
        except DecodeError as exc:
            return Status.BAD_REQUEST, "text/plain", f"{exc}\n".encode()
        verdict = judge(request, self.logs, self.state.heads)
        if verdict.status is Status.CONFLICT:
            log.info("refused a checkpoint: %s", verdict.reason)
            return verdict.status, SIZE_CONTENT_TYPE, f"{verdict.latest_size}\n".encode()
        if verdict.status is not Status.OK or verdict.checkpoint is None:
            log.info("refused a checkpoint (%d): %s", verdict.status, verdict.reason)
            return verdict.status, "text/plain", f"{verdict.reason}\n".encode()
        cp = verdict.checkpoint
        self.state.record(cp.origin, Head(cp.size, cp.root_hash), request.note)
        line = cosign(request.note, self.cosigner, int(self.clock()))
        log.info("cosigned %s at size %d", cp.origin, cp.size)
        return Status.OK, "text/plain; charset=utf-8", line.encode()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str],
                                                                bytes] | None:
    """One HTTP/1.1 request, or None when the client closed the connection."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ValueError("truncated request") from None
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("request headers too long") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("malformed header")
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ValueError("chunked bodies are not supported; send Content-Length")
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= MAX_BODY:
        raise OverflowError
    body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
    return parts[0], parts[1], headers, body


def _response(status: int, content_type: str, body: bytes, close: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n")
    return head.encode("latin-1") + body


async def _handle(witness: Witness, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                request = await _read_request(reader)
            except OverflowError:
                writer.write(_response(413, "text/plain", b"request too large\n", True))
                break
            except TimeoutError:
                break  # an idle or slow connection: closed without an answer
            except (ValueError, asyncio.IncompleteReadError):
                writer.write(_response(400, "text/plain", b"malformed HTTP request\n", True))
                break
            if request is None:
                break
            method, target, headers, body = request
            close = headers.get("connection", "").lower() == "close"
            if target.split("?", 1)[0] != "/add-checkpoint":
                status, ctype, out = 404, "text/plain", b"not found\n"
            elif method != "POST":
                status, ctype, out = 405, "text/plain", b"POST only\n"
            else:
                try:
                    status, ctype, out = witness.add_checkpoint(body)
                except OSError:
                    log.exception("could not store the witness state")
                    status, ctype, out = 500, "text/plain", b"could not store the head\n"
            writer.write(_response(status, ctype, out, close))
            await writer.drain()
            if close:
                break
        await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await writer.wait_closed()


def open_witness(data_dir: Path, log_keys: Sequence[Verifier], name: str | None = None,
                 clock: Callable[[], float] = time.time) -> Witness:
    """The witness of `data_dir`: its key (created on first start) and its state."""
    if not log_keys:
        raise WitnessStartError("a witness needs at least one log key (--log)")
    logs: dict[str, Verifier] = {}
    for key in log_keys:
        if logs.setdefault(key.name, key) != key:
            raise WitnessStartError(f"two log keys for the origin {key.name!r}")
    cosigner = load_or_create_key(data_dir, name)
    return Witness(cosigner, logs, WitnessState.load(data_dir / STATE_FILE), clock)


@dataclass
class RunningWitness:
    witness: Witness
    url: str
    port: int


@contextlib.asynccontextmanager
async def running_witness(witness: Witness, host: str = "127.0.0.1",
                          port: int = 0) -> AsyncIterator[RunningWitness]:
    """The witness's HTTP server in this event loop (port 0 picks a free port)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(witness, reader, writer)

    server = await asyncio.start_server(handler, host, port, limit=MAX_HEADER_BYTES)
    bound = server.sockets[0].getsockname()[1]
    try:
        yield RunningWitness(witness, f"http://{host}:{bound}", bound)
    finally:
        server.close()
        await server.wait_closed()


async def run_witness(witness: Witness, host: str, port: int,
                      ready: Callable[[int], None] | None = None) -> None:
    async with running_witness(witness, host, port) as running:
        if ready is not None:
            ready(running.port)
        await asyncio.Event().wait()


# ---- the relay's side: asking a witness to cosign ------------------------------------


class WitnessError(Exception):
    """A witness refused a checkpoint or could not be reached. `status` is the HTTP
    status (0 when there was no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"witness answered {status}: {message}" if status else message)
        self.status = status


class WitnessConflict(WitnessError):
    """409: the witness's latest cosigned size is `latest_size`, not the old size sent.
    The relay retries with a consistency proof from that size; if the witness's head is
    not a prefix of the relay's log, the relay forked and the witness will never sign."""

    def __init__(self, latest_size: int) -> None:
        super().__init__(409, f"the witness's latest cosigned size is {latest_size}")
        self.latest_size = latest_size


async def witness_checkpoint(url: str, old_size: int, proof: Sequence[bytes], note: bytes,
                             timeout: float = 10.0) -> list[str]:
    """POST <url>/add-checkpoint; the cosignature lines of a 200 answer.

    `url` is the witness's submission prefix (http:// or https://). Raises
    WitnessConflict on 409 and WitnessError for any other refusal or failure. The lines
    are not verified here: clients verify them with the witness's key
    (protocol.wire.kt.cosignature.require_cosignature)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessError(0, "a witness URL is http:// or https://host[:port][/prefix]")
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    port = parts.port or (443 if tls else 80)
    body = AddCheckpoint(old_size, tuple(proof), note).encode()
    host_header = parts.netloc.rsplit("@", 1)[-1]
    request = (f"POST {parts.path.rstrip('/')}/add-checkpoint HTTP/1.1\r\n"
               f"Host: {host_header}\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    try:
        status, headers, answer = await asyncio.wait_for(
            _exchange(parts.hostname, port, tls, request), timeout)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        raise WitnessError(0, f"no answer from the witness: {exc!r}") from None
    if status == 409 and headers.get("content-type", "").startswith(SIZE_CONTENT_TYPE):
        try:
            raise WitnessConflict(parse_size_body(answer))
        except DecodeError:
            raise WitnessError(409, "conflict, with a malformed size") from None
    if status != 200:
        # the witness's words reach the relay's log: printable ASCII only
        said = "".join(c if " " <= c <= "~" else "?" for c in
                       answer[:200].decode("ascii", "replace").strip())
        raise WitnessError(status, said)
    try:
        return parse_cosignature_lines(answer)
    except DecodeError as exc:
        raise WitnessError(status, f"malformed cosignatures: {exc}") from None


async def _exchange(host: str, port: int, tls: ssl.SSLContext | None,
                    request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls,
                                                   limit=MAX_HEADER_BYTES)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status_parts = lines[0].split(" ", 2)
        if len(status_parts) < 2 or not status_parts[0].startswith("HTTP/1."):
            raise ValueError("not an HTTP/1.x answer")
        status = int(status_parts[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        if length > MAX_BODY:
            raise ValueError("answer too long")
        answer = await (reader.readexactly(length) if length >= 0 else reader.read(MAX_BODY))
        return status, headers, answer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# ---- the command line (blindrelay witness) --------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, required=True,
                   help="where the witness keeps its key (witness.key) and its heads "
                   "(state.json)")
    p.add_argument("--log", action="append", default=[], metavar="KEY",
                   help="a log verifier key to witness, name+id+base64 (repeatable); a "
                   "relay's key is in its KT_INFO answer and `blindrelay audit`")
    p.add_argument("--name", help="the witness's key name on first start (default "
                   "<hostname>/witness); it is part of the key ID")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    p.add_argument("--show-key", action="store_true",
                   help="print the witness's verifier key (for clients to configure), "
                   "creating the key if needed, and exit")
    p.add_argument("--log-level", default="INFO")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.show_key:
            print(load_or_create_key(args.data_dir, args.name).verifier.encode())
            return 0
        try:
            keys = [parse_verifier_key(k) for k in args.log]
        except DecodeError as exc:
            raise WitnessStartError(f"--log: {exc}") from None
        witness = open_witness(args.data_dir, keys, args.name)
    except (WitnessStartError, OSError) as exc:
        print(f"blindrelay witness: {exc}", file=sys.stderr)
        return 1

    def ready(port: int) -> None:
        print(f"blindrelay witness {witness.cosigner.verifier.encode()} listening on "
              f"http://{args.host}:{port}/add-checkpoint", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_witness(witness, args.host, args.port, ready))
    return 0
