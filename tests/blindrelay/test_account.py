"""Issue 9 item 10: a username is never burned. `init` interrupted after REGISTER keeps
the profile and a second `init` finishes it; an account can be deleted by its owner
(`blindrelay account delete`, DELETE_ACCOUNT signed by the identity key) and by the
operator (`blindrelay admin delete-account`, relay stopped), and the name is free again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blindrelay.cli import build_parser
from client import account
from client.client import Client
from client.commands import EXIT_OK, cmd_init
from client.store import Store
from server.events import Registered, RelayEvent
from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process, running_relay


async def test_init_interrupted_after_register_is_finished_by_a_second_init(
        tmp_path: Path) -> None:
    home = tmp_path / "alice"
    async with running_relay(tmp_path / "relay") as relay:
        registered = asyncio.Event()

        def seen(event: RelayEvent) -> None:
            if isinstance(event, Registered):
                registered.set()

        relay.relay.observers.append(seen)
        args = build_parser().parse_args(["init", "alice", "--server", relay.url, "--home",
                                          str(home), "--no-passphrase"])
        task = asyncio.create_task(cmd_init(args))
        await registered.wait()  # the relay has the account; its OK is not read yet
        task.cancel()  # Ctrl+C
        with pytest.raises(asyncio.CancelledError):
            await task
        assert Store.path_in(home).exists(), "the profile was deleted: the name is burned"

        assert await cmd_init(args) == EXIT_OK  # reclaims the name with its own key
        client = Client.open(home, None)
        try:
            assert client.profile.registered and account.is_complete(client.profile)
            await client.connect()
            assert await client.conn.prekey_counts() != (0, 0)  # type: ignore[union-attr]
        finally:
            await client.disconnect()
            client.close()


def test_account_delete_frees_the_name(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        assert blindrelay("init", "alice", "--server", relay.url, "--home", a).returncode == 0
        assert blindrelay("init", "bob", "--server", relay.url, "--home", b).returncode == 0
        assert blindrelay("send", "alice", "queued for alice", "--home", b).returncode == 0

        unconfirmed = blindrelay("account", "delete", "--home", a)
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        assert Path(a, "profile.sqlite3").exists()

        gone = blindrelay("account", "delete", "--yes", "--home", a)
        assert gone.returncode == 0, gone.stderr
        assert not Path(a, "profile.sqlite3").exists()

        lost = blindrelay("send", "alice", "hi", "--home", b)
        assert lost.returncode != 0

        again = str(tmp_path / "alice2")
        made = blindrelay("init", "alice", "--server", relay.url, "--home", again)
        assert made.returncode == 0, made.stderr
        got = blindrelay("recv", "--home", again)
        assert got.returncode == 0 and "queued for alice" not in got.stdout


def test_operator_deletes_an_account_only_while_the_relay_is_stopped(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    a = str(tmp_path / "alice")
    with relay_process(data) as relay:
        assert blindrelay("init", "alice", "--server", relay.url, "--home", a).returncode == 0
        busy = blindrelay("admin", "delete-account", "alice", "--data", str(data))
        assert busy.returncode == 1 and "in use" in busy.stderr
        relay.stop()
    done = blindrelay("admin", "delete-account", "alice", "--data", str(data))
    assert done.returncode == 0, done.stderr
    missing = blindrelay("admin", "delete-account", "alice", "--data", str(data))
    assert missing.returncode == 1 and "no user 'alice'" in missing.stderr
    with relay_process(data) as relay:
        made = blindrelay("init", "alice", "--server", relay.url, "--home",
                          str(tmp_path / "alice2"))
        assert made.returncode == 0, made.stderr


async def test_a_register_whose_ok_was_lost_is_reclaimed_with_the_own_key(
        tmp_path: Path) -> None:
    """REGISTER reached the relay but the client never saw the OK: the next REGISTER
    gets USERNAME_TAKEN, and LOGIN with the profile's own key takes the name back.
    Another key cannot: its profile is refused and removed."""
    from client.connection import RelayConnection
    from client.errors import RelayRefused

    async with running_relay(tmp_path / "relay") as relay:
        alice = Client.create(tmp_path / "alice", "alice", relay.url, None)
        conn = await RelayConnection.open(relay.url)
        await conn.register("alice", alice.identity)  # the OK this profile never saw
        await conn.close()
        assert not alice.profile.registered
        await alice.connect()
        assert alice.profile.registered and alice.conn is not None
        await alice.disconnect()
        alice.close()

        mallory = Client.create(tmp_path / "mallory", "alice", relay.url, None)
        with pytest.raises(RelayRefused, match="USERNAME_TAKEN"):
            await mallory.connect()
        assert not mallory.profile.registered
        mallory.close()


def test_a_second_relay_on_the_same_data_directory_is_refused_in_one_line(
        tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay"):
        second = blindrelay("serve", "--port", "0", "--data", str(tmp_path / "relay"),
                            timeout=30)
        assert second.returncode == 1 and "in use" in second.stderr
        assert "Traceback" not in second.stderr
