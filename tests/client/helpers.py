"""Clients with real profiles against a real relay, for the client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from client.core import Client
from client.models import Message
from client.store import KdfParams

FAST_KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
"""Tests derive store keys with a cheap Argon2id; profiles record their own
parameters, so this weakens only the test profiles."""


async def make_client(tmp: Path, name: str, url: str, passphrase: bytes | None = b"pw",
                      connect: bool = True) -> Client:
    client = Client.create(tmp / name, name, url, passphrase, FAST_KDF)
    if connect:
        await client.connect()
        await asyncio.wait_for(client.queue_done.wait(), 10)
    return client


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages if m.text]
