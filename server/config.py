"""The relay's settings and their defaults."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from protocol.wire.certificates import DEFAULT_LIFETIME
from protocol.wire.frames import Limits, normalize_url, url_origin
from server.budgets import Budgets
from server.connections import ConnectionLimits

LOOPBACK_ALIASES = ("127.0.0.1", "localhost", "[::1]")


def default_data_dir() -> Path:
    """Under the per-user data directory: XDG's on Linux, the platform's elsewhere."""
    if sys.platform in ("win32", "darwin"):
        base = Path.home() / ("AppData/Roaming" if sys.platform == "win32"
                              else "Library/Application Support")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "blindrelay" / "server"


def default_limits() -> Limits:
    return Limits(
        max_frame=256 * 1024,
        max_envelope=64 * 1024,
        max_recipients=64,
        max_queue=10_000,
        max_prekeys=500,
        rate_per_second=200,
        rate_burst=400,
        envelope_ttl=30 * 24 * 3600,
        prekey_low=10,
    )


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = field(default_factory=default_data_dir)
    limits: Limits = field(default_factory=default_limits)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_urls: tuple[str, ...] = ()
    synchronous_full: bool = False
    storage: str = ""
    """Where the tables are: empty (or 'sqlite') for embedded SQLite in data_dir, or a
    postgresql:// URL that several relay processes share (server/backends.py)."""
    expiry_interval: float = 60.0
    budgets: Budgets = field(default_factory=Budgets)
    """Per-requester, per-sender and per-address budgets and the global disk budget
    (server/budgets.py, docs/PROTOCOL.md 16.7); not announced in HELLO."""
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    witnesses: tuple[str, ...] = ()
    """URLs of witnesses that cosign each new directory head (PROTOCOL.md 19.11)."""
    certificate_lifetime: int = DEFAULT_LIFETIME
    """Seconds a sender certificate is valid (PROTOCOL.md 20.3; 24 hours)."""
    bus: str | None = None
    """nats://host:port[/name]: the bus to the other relay processes sharing the
    storage (server/bus.py, docs/DEPLOY.md); None for a relay alone."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so that several processes share the port (the
    kernel spreads connections among them); on whenever `bus` is set."""

    @property
    def scheme(self) -> str:
        return "wss" if self.tls_cert else "ws"

    def accepted_urls(self, bound_port: int | None = None) -> frozenset[str]:
        """The server URLs a login signature may name: the configured public URLs
        alone when there are any (PROTOCOL.md 16.4), else the address it listens on
        (with its loopback aliases)."""
        if self.public_urls:
            return frozenset(normalize_url(u) for u in self.public_urls)
        port = bound_port or self.port
        urls: set[str] = set()
        host = f"[{self.host}]" if ":" in self.host else self.host
        hosts = [host]
        if host in LOOPBACK_ALIASES or host in ("0.0.0.0", "[::]"):
            hosts += LOOPBACK_ALIASES
        urls.update(normalize_url(f"{self.scheme}://{h}:{port}") for h in hosts)
        return frozenset(urls)

    def origin(self, bound_port: int | None = None) -> str:
        """The key directory's origin, its log key's name (PROTOCOL.md 19.2, 19.10):
        from the first public URL if any, else from the address it listens on."""
        if self.public_urls:
            return url_origin(self.public_urls[0])
        host = f"[{self.host}]" if ":" in self.host else self.host
        return url_origin(f"{self.scheme}://{host}:{bound_port or self.port}")
