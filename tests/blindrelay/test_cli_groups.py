"""`blindrelay group ...` and group lines in `recv`, as real processes against a real
relay process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.blindrelay.test_cli import blindrelay
from tests.support import relay_process


def _recv(home: str) -> list[dict[str, object]]:
    """The group lines `recv --json` prints (one-to-one notices, such as a member
    pinned as a new contact, have no "group" field)."""
    got = blindrelay("recv", "--json", "--home", home)
    assert got.returncode == 0, got.stderr
    return [m for line in got.stdout.splitlines() if "group" in (m := json.loads(line))]


def test_a_group_through_the_cli(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        homes = {n: str(tmp_path / n) for n in ("alice", "bob", "carol")}
        for name, home in homes.items():
            made = blindrelay("init", name, "--server", relay.url, "--home", home)
            assert made.returncode == 0, made.stderr
        a, b, c = homes["alice"], homes["bob"], homes["carol"]

        made = blindrelay("group", "create", "book club", "bob", "carol", "--home", a)
        assert made.returncode == 0, made.stderr
        assert "created #book club" in made.stdout
        sent = blindrelay("group", "send", "book club", "chapter one\x1b[31m", "--home", a)
        assert sent.returncode == 0, sent.stderr

        lines = _recv(b)
        assert [m["kind"] for m in lines] == ["notice", "in"]
        assert lines[1]["group"] == "book club" and lines[1]["from"] == "alice"
        assert lines[1]["text"] == "chapter one\x1b[31m"  # exact in JSON, escaped by json
        assert _recv(b) == []  # printed once, then read

        piped = blindrelay("group", "send", "book club", "--home", c, stdin="from carol\n")
        assert piped.returncode == 0, piped.stderr
        plain = blindrelay("recv", "--home", b)
        assert "#book club carol: from carol" in plain.stdout
        shown = blindrelay("recv", "--home", a)
        assert "\x1b" not in shown.stdout  # nothing a peer wrote reaches the terminal raw

        listed = blindrelay("group", "list", "--json", "--home", b)
        view = json.loads(listed.stdout)
        assert view["group"] == "book club" and view["epoch"] == 1
        assert {m["name"]: m["trust"] for m in view["members"]} == {
            "alice": "unverified", "bob": "you", "carol": "unverified"}
        code = json.loads(blindrelay("group", "list", "--json", "--home", a).stdout)["code"]
        assert code == view["code"]  # the same group on both sides

        assert blindrelay("group", "remove", "book club", "carol", "--home", a).returncode == 0
        assert blindrelay("group", "rename", "book club", "two of us",
                          "--home", b).returncode == 0
        assert blindrelay("group", "send", "two of us", "secret", "--home", b).returncode == 0
        carol_sees = _recv(c)
        assert "alice removed you from the group." in [m["text"] for m in carol_sees]
        assert "secret" not in [m["text"] for m in carol_sees]
        alice_sees = [m["text"] for m in _recv(a)]
        assert "bob renamed the group to two of us." in alice_sees and "secret" in alice_sees

        history = blindrelay("group", "history", "two of us", "--json", "--home", a)
        kinds = [json.loads(line)["kind"] for line in history.stdout.splitlines()]
        assert kinds.count("out") == 1 and kinds.count("in") == 2

        missing = blindrelay("group", "send", "no such group", "x", "--home", a)
        assert missing.returncode == 1 and "no group 'no such group'" in missing.stderr
        gone = blindrelay("group", "send", "book club", "x", "--home", c)
        assert gone.returncode == 1 and "no longer a member" in gone.stderr


def test_what_members_chose_is_shown_sanitized() -> None:
    """A group's name, a sender's name and a text reach the terminal with every control
    made visible, and no line of a message can pass for another line."""
    from client.group_commands import format_group_message, format_view
    from client.group_records import GroupMessage, GroupStatus
    from client.groups import GroupView, Member
    from client.records import Direction, State

    hostile = "club\x1b[2J\u202e"
    line = GroupMessage(b"\x01" * 16, "mallory", Direction.IN, "hi\x1b]0;owned\x07\n* fake",
                        State.RECEIVED, stored_at=1.0, group_name=hostile)
    shown = format_group_message(line)
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\n    * fake" in shown  # the second line is indented: not a system line
    view = GroupView(b"\x01" * 16, hostile, 3, [Member("mallory", 1, b"", "unverified")],
                     GroupStatus.ACTIVE, 0, 0.0, bytes(32))
    assert "\x1b" not in format_view(view) and "\u202e" not in format_view(view)
