"""The scriptable CLI, run as real processes against a real relay process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, relay_process


def blindrelay_env(passphrase: str | None = "pw") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDRELAY_")}
    if passphrase is not None:
        env["BLINDRELAY_PASSPHRASE"] = passphrase
    return env


def blindrelay(*args: str, stdin: str | None = None, passphrase: str | None = "pw",
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = blindrelay_env(passphrase)
    return subprocess.run([sys.executable, "-m", "blindrelay", *args], cwd=ROOT, env=env,
                          input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_two_people_chat_through_the_cli(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        assert blindrelay("init", "alice", "--server", relay.url, "--home", a).returncode == 0
        made = blindrelay("init", "bob", "--server", relay.url, "--home", b, "--no-passphrase",
                          passphrase=None)
        assert made.returncode == 0, made.stderr
        assert "WARNING: --no-passphrase" in made.stderr

        assert blindrelay("send", "bob", "hello bob", "--home", a).returncode == 0
        piped = blindrelay("send", "bob", "--home", a, stdin="two\nlines\n")
        assert piped.returncode == 0, piped.stderr

        got = blindrelay("recv", "--json", "--home", b, passphrase=None)
        assert got.returncode == 0, got.stderr
        lines = [json.loads(line) for line in got.stdout.splitlines()]
        texts = [m["text"] for m in lines if m["kind"] == "in"]
        assert texts == ["hello bob", "two\nlines"]
        assert all(m["contact"] == "alice" for m in lines)
        assert all(m["from"] == "alice" for m in lines if m["kind"] == "in")

        # read already: a second recv prints nothing new
        again = blindrelay("recv", "--home", b, passphrase=None)
        assert again.returncode == 0 and "hello bob" not in again.stdout

        assert blindrelay("send", "alice", "hi alice", "--home", b,
                          passphrase=None).returncode == 0
        plain = blindrelay("recv", "--home", a)
        assert "bob: hi alice" in plain.stdout

        contacts = blindrelay("contacts", "--json", "--home", a)
        assert json.loads(contacts.stdout)["name"] == "bob"

        mine = blindrelay("safety-number", "bob", "--no-qr", "--home", a).stdout
        theirs = blindrelay("safety-number", "alice", "--no-qr", "--home", b,
                            passphrase=None).stdout
        digits_a = [line for line in mine.splitlines() if line[:1].isdigit()]
        digits_b = [line for line in theirs.splitlines() if line[:1].isdigit()]
        assert len(digits_a) == 3 and digits_a == digits_b

        assert blindrelay("verify", "bob", "--home", a).returncode == 0
        assert '"trust": "verified"' in blindrelay("contacts", "--json", "--home", a).stdout


def test_errors_have_clear_messages_and_exit_codes(tmp_path: Path) -> None:
    missing = blindrelay("recv", "--home", str(tmp_path / "nobody"))
    assert missing.returncode == 3 and "no profile" in missing.stderr
    with relay_process(tmp_path / "relay") as relay:
        a = str(tmp_path / "alice")
        assert blindrelay("init", "alice", "--server", relay.url, "--home", a).returncode == 0
        wrong = blindrelay("contacts", "--home", a, passphrase="not it")
        assert wrong.returncode == 4 and "wrong passphrase" in wrong.stderr
        assert blindrelay("contacts", "--home", a).returncode == 0  # nothing corrupted
        unknown = blindrelay("send", "nobody", "hi", "--home", a)
        assert unknown.returncode == 6 and "no user 'nobody'" in unknown.stderr
        taken = blindrelay("init", "alice", "--server", relay.url, "--home",
                           str(tmp_path / "other"))
        assert taken.returncode != 0 and "USERNAME_TAKEN" in taken.stderr
        assert not (tmp_path / "other" / "profile.sqlite3").exists()
        no_key = blindrelay("safety-number", "carol", "--home", a)
        assert no_key.returncode == 6
        not_changed = blindrelay("accept-key", "carol", "--home", a)
        assert not_changed.returncode == 6
    unreachable = blindrelay("send", "bob", "hi", "--home", a)
    assert unreachable.returncode == 5 and "cannot reach" in unreachable.stderr
    no_pass = blindrelay("contacts", "--home", a, passphrase=None)
    assert no_pass.returncode == 2 and "BLINDRELAY_PASSPHRASE" in no_pass.stderr


def test_history_json_shows_delivered_then_read(tmp_path: Path) -> None:
    """`history NAME --json`: one object per line with each message's state, id,
    direction and time. Bob fetching Alice's message (here while sending his own, which
    drains his queue) makes it delivered; Bob's recv, which shows and marks it read,
    makes it read. A peer's escape sequence stays an escape inside the JSON."""
    with relay_process(tmp_path / "relay") as relay:
        a, b = str(tmp_path / "alice"), str(tmp_path / "bob")
        for name, home in (("alice", a), ("bob", b)):
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == 0, made.stderr

        def history(home: str, name: str) -> list[dict[str, object]]:
            """The messages (not the notices, which say a conversation started)."""
            out = blindrelay("history", name, "--json", "--home", home)
            assert out.returncode == 0, out.stderr
            lines = [json.loads(line) for line in out.stdout.splitlines()]
            assert all(m["contact"] == name for m in lines)
            return [m for m in lines if m["kind"] != "notice"]

        assert blindrelay("send", "bob", "hello bob", "--home", a).returncode == 0
        (mine,) = history(a, "bob")
        assert (mine["kind"], mine["state"], mine["text"]) == ("out", "sent", "hello bob")
        assert len(str(mine["id"])) == 32 and str(mine["time"]).endswith("Z")

        # bob's send drains his queue: alice's message arrives, is not shown or read
        sent = blindrelay("send", "alice", "hi \x1b[31malice", "--home", b)
        assert sent.returncode == 0, sent.stderr
        assert blindrelay("recv", "--home", a).returncode == 0
        states = [(m["kind"], m["state"], m["text"]) for m in history(a, "bob")]
        assert states == [("out", "delivered", "hello bob"),
                          ("in", "received", "hi \x1b[31malice")]
        raw = blindrelay("history", "bob", "--json", "--home", a).stdout
        assert "\x1b" not in raw and "\\u001b" in raw

        assert blindrelay("recv", "--home", b).returncode == 0  # shows it: read
        assert blindrelay("recv", "--home", a).returncode == 0
        (first, second) = history(a, "bob")
        assert (first["state"], first["id"]) == ("read", mine["id"])
        assert (second["kind"], second["state"]) == ("in", "received")
        theirs = history(b, "alice")  # alice's first recv showed bob's message: read
        assert [(m["kind"], m["state"]) for m in theirs] == [("in", "received"),
                                                              ("out", "read")]

        plain = blindrelay("history", "bob", "--home", a)
        assert "me -> bob: hello bob  [read]" in plain.stdout
        assert "\x1b" not in plain.stdout
