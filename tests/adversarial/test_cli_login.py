"""A profile whose name the relay holds with another key (issue 9, item 17): the
relay answers LOGIN with BAD_SIGNATURE, and the command says what that means instead
of quoting the code."""

from __future__ import annotations

from pathlib import Path

from client.commands import EXIT_ERROR, EXIT_OK
from tests.adversarial.test_cli_delivery import free_port
from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process


def test_a_name_held_with_another_key_is_explained(tmp_path: Path) -> None:
    port = free_port()
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    with relay_process(tmp_path / "relay-1", "--port", str(port)) as relay:
        made = blindrelay("init", "alice", "--server", relay.url, "--home", old)
        assert made.returncode == EXIT_OK, made.stderr
    # the relay's data is replaced, and someone else registers alice there
    with relay_process(tmp_path / "relay-2", "--port", str(port)) as relay:
        made = blindrelay("init", "alice", "--server", relay.url, "--home", new)
        assert made.returncode == EXIT_OK, made.stderr

        refused = blindrelay("recv", "--home", old)
        assert refused.returncode == EXIT_ERROR
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith("blindrelay recv: cannot log in: the relay has the name "
                                   "alice with a different identity key")
        assert "BAD_SIGNATURE" not in lines[0]
        sent = blindrelay("send", "bob", "hi", "--home", old)
        assert sent.returncode == EXIT_ERROR and "different identity key" in sent.stderr

        # asking changed nothing: the account is still the other profile's
        assert blindrelay("recv", "--home", new).returncode == EXIT_OK
