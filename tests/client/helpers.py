"""Clients with real profiles against a real relay, for the client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from client.client import Client
from client.connection import RelayConnection
from client.events import Event, KtAlert, MessageEvent
from client.records import Direction, Message, State
from client.store import KdfParams
from protocol.wire.frames import Deliver, QueueDone

FAST_KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
"""Tests derive store keys with a cheap Argon2id; profiles record their own
parameters, so this weakens only the test profiles."""

PASSPHRASE = b"pw"


async def make_client(tmp: Path, name: str, url: str, passphrase: bytes | None = PASSPHRASE,
                      connect: bool = True) -> Client:
    client = Client.create(tmp / name, name, url, passphrase, FAST_KDF)
    if connect:
        await client.connect()
        await asyncio.wait_for(client.queue_done.wait(), 10)
    return client


async def online(client: Client) -> None:
    """Connects and waits until everything the relay had queued has been handled."""
    await client.connect()
    await asyncio.wait_for(client.queue_done.wait(), 10)


async def reopen(client: Client, passphrase: bytes | None = PASSPHRASE,
                 connect: bool = True) -> Client:
    """Closes a client as a quitting program would and opens its profile again."""
    await client.disconnect()
    client.close()
    again = Client.open(client.home, passphrase)
    if connect:
        await online(again)
    return again


async def shut(*clients: Client) -> None:
    for client in clients:
        await client.disconnect()
        client.close()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages if m.text]


def received(client: Client, name: str) -> list[str]:
    """The texts of the messages `client` received from `name`, oldest first."""
    return [m.text for m in client.history(name, 1000)
            if m.direction is Direction.IN and m.state is State.RECEIVED]


async def wait_last(client: Client, name: str, text: str) -> None:
    """Waits until `text` is the newest message `client` received from `name`."""
    await wait_for(lambda: received(client, name)[-1:] == [text])


def notices(client: Client, name: str) -> list[str]:
    return [m.text for m in client.history(name, 1000) if m.direction is Direction.NOTICE]


def state_of(client: Client, name: str, row_id: int) -> State:
    for message in client.history(name, 1000):
        if message.row_id == row_id:
            return message.state
    raise AssertionError(f"no message {row_id} in the conversation with {name}")


async def wait_state(client: Client, name: str, message: Message, state: State) -> None:
    await wait_for(lambda: state_of(client, name, message.row_id) is state)


class StateLog:
    """Every state a client's outgoing messages passed through, in order, as the
    views would have seen them (from the client's events)."""

    def __init__(self, client: Client) -> None:
        self.states: dict[int, list[State]] = {}
        client.on_event(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageEvent) and event.message.direction is Direction.OUT:
            seen = self.states.setdefault(event.message.row_id, [])
            if not seen or seen[-1] is not event.message.state:
                seen.append(event.message.state)

    def of(self, message: Message) -> list[State]:
        return self.states.get(message.row_id, [])


async def intercept(url: str, client: Client) -> list[Deliver]:
    """Logs in as `client`'s user on a second connection (as a relay, or someone
    who can drain that user's queue, would) and takes every queued envelope out of
    the relay without showing them to the client."""
    conn = await RelayConnection.open(url)
    try:
        await conn.login(client.username, client.identity)
        taken: list[Deliver] = []
        while not isinstance(frame := await conn.next_push(10), QueueDone):
            if isinstance(frame, Deliver):
                taken.append(frame)
        if taken:
            await conn.ack([d.envelope_id for d in taken])
        return taken
    finally:
        await conn.close()


def alerts_of(client: Client) -> list[KtAlert]:
    """Every key directory alert the client raises from now on (client/directory.py)."""
    seen: list[KtAlert] = []

    def listen(event: Event) -> None:
        if isinstance(event, KtAlert):
            seen.append(event)

    client.on_event(listen)
    return seen
