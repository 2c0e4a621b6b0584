"""`blindrelay group ...`: group chats for scripts (PROTOCOL.md 21.4-21.6).

    blindrelay group create NAME MEMBER...   a group with you and MEMBERs
    blindrelay group add GROUP NAME...       add members
    blindrelay group remove GROUP NAME       remove a member
    blindrelay group leave GROUP             ask to leave (another member commits it)
    blindrelay group rename GROUP NEWNAME
    blindrelay group update GROUP            a self-update: fresh keys (healing)
    blindrelay group send GROUP TEXT         TEXT, or standard input with '-' or nothing
    blindrelay group list [--json]           groups, members with their trust, codes
    blindrelay group history GROUP [--json]  the group's history (offline)

GROUP is a group's name or (a prefix of at least 4 digits of) its hex id. `recv`
prints group messages too, `--json` lines with a "group" field. Names and texts from
peers are shown through client.sanitize, like one-to-one messages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from client.client import Client
from client.commands import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    _connect,
    _open,
)
from client.group_records import GroupMessage
from client.groups import GroupEvent, GroupView
from client.records import Direction, State
from client.sanitize import continuation_lines, one_line


def _stamp(message: GroupMessage) -> str:
    when = message.sent_at_ms / 1000 if message.sent_at_ms else message.stored_at
    return dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def format_group_message(message: GroupMessage) -> str:
    """One group line for the terminal: `#group sender: text`, a system line as
    `* #group: text`; everything a peer chose (group name, sender, text) sanitized."""
    head = f"[{_stamp(message)}] #{one_line(message.group_name)}"
    if message.direction is Direction.NOTICE:
        return f"{head} * {continuation_lines(message.text)}"
    if message.state is State.UNDECRYPTABLE:
        return f"{head} {one_line(message.sender)}: <{one_line(message.error)}>"
    who = "me" if message.direction is Direction.OUT else one_line(message.sender)
    state = f"  [{message.state.value}]" if message.direction is Direction.OUT else ""
    return f"{head} {who}: {continuation_lines(message.text)}{state}"


def group_json(message: GroupMessage) -> str:
    return json.dumps({"kind": message.direction.value, **message.to_json()},
                      ensure_ascii=True)


def view_json(view: GroupView) -> dict[str, Any]:
    return {"group": view.name, "group_id": view.group_id.hex(), "epoch": view.epoch,
            "status": view.status.value, "unread": view.unread, "code": view.code,
            "members": [{"name": m.name, "trust": m.trust} for m in view.members]}


def format_view(view: GroupView) -> str:
    members = ", ".join(f"{one_line(m.name)} ({m.trust})" for m in view.members)
    unread = f"  {view.unread} unread" if view.unread else ""
    status = "" if view.status.value == "active" else f"  [{view.status.value}]"
    return (f"#{one_line(view.name)}  id {view.group_id.hex()[:8]}  epoch {view.epoch}"
            f"{status}{unread}\n  members: {members}\n  code: {view.code}")


class GroupPrinter:
    """What `recv` prints of groups: unread group lines (at the start and as they
    arrive) and system lines as they arrive, each marked read once printed."""

    def __init__(self, client: Client, as_json: bool) -> None:
        self.client = client
        self.as_json = as_json
        self.printed: set[int] = set()
        self.unmarked: dict[bytes, set[int]] = {}
        self.closed = False

    def show(self, message: GroupMessage) -> None:
        if self.closed or message.row_id in self.printed or \
                message.direction is Direction.OUT:
            return
        if not message.group_name:
            record = self.client.groups.record(message.group_id)
            message.group_name = "" if record is None else record.name
        line = group_json(message) if self.as_json else format_group_message(message)
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.closed = True
            return
        self.printed.add(message.row_id)
        if message.unread:
            self.unmarked.setdefault(message.group_id, set()).add(message.row_id)

    def start(self) -> None:
        for message in self.client.groups.unread():
            self.show(message)
        self.client.groups.listeners.append(self.on_event)

    def on_event(self, event: GroupEvent) -> None:
        """As `recv` does for one-to-one: what arrives unread, and system lines."""
        message = event.message
        if message is not None and (message.unread or message.direction is Direction.NOTICE
                                    or message.state is State.UNDECRYPTABLE):
            self.show(message)

    def mark(self) -> None:
        while self.unmarked:
            group_id, rows = self.unmarked.popitem()
            self.client.groups.mark_read(group_id, rows)


def _text(args: argparse.Namespace) -> str:
    text = args.text
    if text is None or text == "-":
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise CommandError("nothing to send", EXIT_USAGE)
    return str(text)


async def cmd_group(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    if args.action == "history":
        return _history(args)
    text = _text(args) if args.action == "send" else ""
    client = _open(args)
    try:
        await _connect(client, "group")  # the queue first: the group's newest epoch
        groups = client.groups
        if args.action == "create":
            view = await groups.create(args.group_name, args.members)
            print(f"created #{one_line(view.name)} (id {view.group_id.hex()})")
            return EXIT_OK
        view = groups.find(args.group)
        gid, name = view.group_id, one_line(view.name)
        if args.action == "add":
            await groups.add(gid, args.members)
            print(f"added {', '.join(args.members)} to #{name}")
        elif args.action == "remove":
            await groups.remove(gid, args.member)
            print(f"removed {args.member} from #{name}")
        elif args.action == "leave":
            await groups.leave(gid)
            print(f"asked to leave #{name}; the next member online carries it out")
        elif args.action == "rename":
            view = await groups.rename(gid, args.new_name)
            print(f"renamed #{name} to #{one_line(view.name)}")
        elif args.action == "update":
            view = await groups.self_update(gid)
            print(f"updated your keys in #{name} (epoch {view.epoch})")
        elif args.action == "send":
            await groups.send_text(gid, text)
            print(f"sent to #{name}")
        return EXIT_OK
    finally:
        await client.disconnect()
        client.close()


def _list(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        views = client.groups.all()
        for view in views:
            print(json.dumps(view_json(view)) if args.json else format_view(view))
        if not views and not args.json:
            print("no groups yet", file=sys.stderr)
        return EXIT_OK
    finally:
        client.close()


def _history(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        view = client.groups.find(args.group)
        for message in client.groups.history(view.group_id, args.limit):
            print(group_json(message) if args.json else format_group_message(message))
        return EXIT_OK
    finally:
        client.close()
