"""Fixtures shared by every test folder (helpers that are plain functions live in
tests/support.py and tests/client/helpers.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import RunningRelay, running_relay


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RunningRelay]:
    """Our relay in the test's event loop, on a free loopback port, with the default
    limits and its data in tmp_path/relay."""
    async with running_relay(tmp_path / "relay") as running:
        yield running


@pytest.fixture
def unused_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (snapshots show times)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
