"""`blindrelay serve`: the relay on the websockets library's asyncio server."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from server.backends import key_files_lock, open_storage
from server.bus import BusError, open_bus
from server.certificates import load_cert_key
from server.cluster import Cluster
from server.config import ServerConfig
from server.connections import ConnectionGate, RateLimitedLog, connection_cap
from server.kt import load_log_key, load_vrf_key, open_directory
from server.relay import Relay
from server.sqlite_store import SqliteStorage
from server.startup import RelayStartError, bind_error, raise_open_file_limit
from server.storage import Storage
from server.witnessing import Witnesses

log = logging.getLogger("blindrelay.server")

WAL_CHECKPOINT_PERIOD = 60.0
"""Seconds between the WAL checkpoints (TRUNCATE) the expiry loop runs, at its own
pace: the WAL is a log of pages in commit order, so it orders the envelopes written
since the last checkpoint, and deleted ones linger in it until then (docs/DATA.md)."""


def event_loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `blindrelay serve` runs on: uvloop's when it is installed (the
    `fast` extra; it schedules callbacks and moves socket data in C), unless `choice`
    is "asyncio"; None means asyncio's own. RelayStartError if "uvloop" is asked for
    and not installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RelayStartError("--event-loop uvloop: uvloop is not installed (install "
                                  "the `fast` extra)") from None
        return None
    return uvloop.new_event_loop


def event_loop_name() -> str:
    """Which loop runs this relay, for the log line at start."""
    loop = asyncio.get_running_loop()
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else "asyncio"


def _health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return None


def _quiet_transport_logger() -> logging.Logger:
    """websockets' own logger, kept at WARNING: its INFO and DEBUG lines can name
    peer addresses, which the relay does not keep (docs/DATA.md)."""
    logger = logging.getLogger("blindrelay.transport")
    logger.setLevel(logging.WARNING)
    return logger


class _AcceptErrors(logging.Filter):
    """asyncio logs a traceback for every failed accept() ("Too many open files") and
    retries each second; this folds them into one line per interval."""

    def __init__(self) -> None:
        super().__init__()
        self.folded = RateLimitedLog("cannot accept connections: %s")

    def filter(self, record: logging.LogRecord) -> bool:
        if "socket.accept() out of system resource" not in str(record.msg):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        self.folded.hit(getattr(exc, "strerror", None) or "out of resources")
        return False


async def run_server(
    config: ServerConfig,
    stop: asyncio.Event | None = None,
    ready: Callable[[Relay, int], None] | None = None,
    relay_factory: Callable[..., Relay] = Relay,
) -> None:
    """Runs until `stop` is set (or SIGTERM/SIGINT): then stops accepting, lets
    in-flight stores commit, closes connections with 1001 and returns. Raises
    RelayStartError (one line for the operator) if the data directory is in use by
    another relay, the storage cannot be opened (server/backends.py) or the address
    cannot be bound."""
    stop = stop or asyncio.Event()
    await _serve(config, stop, ready, relay_factory)


async def _serve(
    config: ServerConfig,
    stop: asyncio.Event,
    ready: Callable[[Relay, int], None] | None,
    relay_factory: Callable[..., Relay],
) -> None:
    loop = asyncio.get_running_loop()
    gate = ConnectionGate(connection_cap(config.connections, raise_open_file_limit()),
                          config.connections.max_per_address)
    accept_errors = _AcceptErrors()
    logging.getLogger("asyncio").addFilter(accept_errors)
    storage = await open_storage(config.data_dir, config.storage, config.synchronous_full)
    ssl_context = None
    if config.tls_cert:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
    relay: Relay | None = None
    cluster: Cluster | None = None

    async def handler(ws: ServerConnection) -> None:
        assert relay is not None
        await relay.handle(ws)

    installed: list[signal.Signals] = []
    try:
        try:
            server = await serve(
                handler,
                config.host,
                config.port,
                ssl=ssl_context,
                process_request=_health,
                compression=None,
                max_size=config.limits.max_frame * 4,
                max_queue=4,
                logger=_quiet_transport_logger(),
                server_header=None,  # no software or version banner
                open_timeout=config.connections.login_timeout,  # the handshake counts too
                create_connection=gate.connection_class(),
                reuse_port=config.reuse_port or config.bus is not None,
            )
        except OSError as exc:
            raise bind_error(exc, config.host, config.port) from None
        async with server:
            port = server.sockets[0].getsockname()[1] if server.sockets else config.port
            # the directory's keys are named after the origin, which needs the port
            async with key_files_lock(config.data_dir, config.storage):
                log_key = load_log_key(config.data_dir, config.origin(port))
                vrf_key = load_vrf_key(config.data_dir)
                cert_seed = load_cert_key(config.data_dir)
            directory = await open_directory(storage, log_key, vrf_key)
            relay = relay_factory(storage, config.limits, config.accepted_urls(port),
                                  budgets=config.budgets,
                                  connection_limits=config.connections,
                                  directory=directory,
                                  witnesses=Witnesses(config.witnesses),
                                  cert_seed=cert_seed,
                                  certificate_lifetime=config.certificate_lifetime)
            await relay.publish_head()
            if config.bus is not None:
                try:
                    cluster = Cluster(relay, open_bus(config.bus))
                    await cluster.start()
                except BusError as exc:
                    raise RelayStartError(str(exc)) from None
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
            # sweep at least four times per TTL, so storage never holds an envelope long
            # past its expiry (delivery already leaves expired ones out)
            interval = min(config.expiry_interval, max(0.5, config.limits.envelope_ttl / 4))
            expiry = loop.create_task(_expire_forever(relay, storage, interval))
            log.info("listening on %s://%s:%d, data in %s%s, event loop %s", config.scheme,
                     config.host, port, config.data_dir, _storage_note(config.storage),
                     event_loop_name())
            if ready is not None:
                ready(relay, port)
            await stop.wait()
            log.info("shutting down")
            expiry.cancel()
            server.close(close_connections=True)
            await server.wait_closed()
            await asyncio.gather(expiry, return_exceptions=True)
    finally:
        if cluster is not None:
            await cluster.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
        logging.getLogger("asyncio").removeFilter(accept_errors)
        await storage.close()
        log.info("stopped")


@dataclass(frozen=True, slots=True)
class RunningRelay:
    """A relay started by `running_relay`: the Relay object, the port it bound and the
    URL clients dial."""

    relay: Relay
    port: int
    url: str


@contextlib.asynccontextmanager
async def running_relay(config: ServerConfig,
                        relay_factory: Callable[..., Relay] = Relay
                        ) -> AsyncIterator[RunningRelay]:
    """`run_server` in this event loop for the length of an `async with` block (tests,
    the teaching demo). Port 0 in `config` picks a free port. Raises what made the
    server fail to start; on exit stops it as SIGTERM would."""
    stop = asyncio.Event()
    started: asyncio.Future[tuple[Relay, int]] = asyncio.get_running_loop().create_future()

    def ready(relay: Relay, port: int) -> None:
        if not started.done():
            started.set_result((relay, port))

    task = asyncio.create_task(run_server(config, stop=stop, ready=ready,
                                          relay_factory=relay_factory))
    try:
        waiting: list[asyncio.Future[Any]] = [started, task]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            raise RuntimeError("the relay stopped before it was ready")
        relay, port = started.result()
        host = f"[{config.host}]" if ":" in config.host else config.host
        yield RunningRelay(relay, port, f"{config.scheme}://{host}:{port}")
    finally:
        stop.set()
        await task


async def _expire_forever(relay: Relay, storage: Storage, interval: float) -> None:
    rounds = 0
    every = max(1, round(WAL_CHECKPOINT_PERIOD / interval))
    while True:
        try:
            await relay.expire_once()
            rounds += 1
            if rounds % every == 0 and isinstance(storage, SqliteStorage):
                await storage.checkpoint()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiry failed")
        await asyncio.sleep(interval)


def _storage_note(storage_url: str) -> str:
    """', tables in PostgreSQL at host/db' (never the password), or nothing."""
    if not storage_url or storage_url == "sqlite":
        return ""
    from server.pg_store import redact_url

    return f", tables in {redact_url(storage_url)}"
