"""The external services some tests need: PostgreSQL and NATS (issue 14, docs/DEPLOY.md).

Each `need_*` returns the service's address when it answers, else skips the test with
the reason; under CI (CI set) or .ci/run (BLINDRELAY_REQUIRE_SERVICES set) it fails
instead, so CI always runs the cluster tests rather than skipping them quietly.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("BLINDRELAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("BLINDRELAY_TEST_NATS", "nats://127.0.0.1:4222")


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("BLINDRELAY_REQUIRE_SERVICES"))


def _reachable(url: str, default_port: int) -> bool:
    rest = url.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = rest.partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or default_port)),
                                      timeout=1.0):
            return True
    except OSError:
        return False


def _need(name: str, url: str, default_port: int, module: str) -> str:
    reason = None
    try:
        __import__(module)
    except ImportError:
        reason = f"{name} tests need the {module} package (pip install -e '.[test]')"
    if reason is None and not _reachable(url, default_port):
        reason = f"{name} is not reachable at {url} (set BLINDRELAY_TEST_{name.upper()})"
    if reason is not None:
        if _required():
            pytest.fail(f"CI requires the {name} tests to run, but {reason}")
        pytest.skip(reason)
    return url


def need_postgres() -> str:
    """The test database's URL; skip (fail under CI) when PostgreSQL is absent."""
    return _need("PostgreSQL", POSTGRES_URL, 5432, "asyncpg")


def need_nats() -> str:
    """The NATS server's URL; skip (fail under CI) when NATS is absent."""
    return _need("NATS", NATS_URL, 4222, "nats")
