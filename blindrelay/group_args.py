"""The arguments of `blindrelay group ...` (client/group_commands.py runs them): here,
not in client/, so that building the command line loads no client or end-to-end
code (tests/test_layering.py: `blindrelay serve` must not)."""

from __future__ import annotations

import argparse


def add_group_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("group", help="group chats (MLS)",
                       description="Group chats: end-to-end encrypted with MLS (RFC 9420); "
                       "the relay orders commits and sees no membership.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("create", parents=[common], help="create a group")
    a.add_argument("group_name", metavar="NAME")
    a.add_argument("members", nargs="+", metavar="MEMBER")
    a = actions.add_parser("add", parents=[common], help="add members to a group")
    a.add_argument("group")
    a.add_argument("members", nargs="+", metavar="NAME")
    a = actions.add_parser("remove", parents=[common], help="remove a member")
    a.add_argument("group")
    a.add_argument("member", metavar="NAME")
    a = actions.add_parser("leave", parents=[common], help="leave a group")
    a.add_argument("group")
    a = actions.add_parser("rename", parents=[common], help="rename a group")
    a.add_argument("group")
    a.add_argument("new_name", metavar="NEWNAME")
    a = actions.add_parser("update", parents=[common],
                           help="fresh keys for you in the group (post-compromise security)")
    a.add_argument("group")
    a = actions.add_parser("send", parents=[common], help="send a message to a group")
    a.add_argument("group")
    a.add_argument("text", nargs="?", help="the message; '-' or nothing reads stdin")
    a = actions.add_parser("list", parents=[common],
                           help="your groups, their members and epoch codes")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = actions.add_parser("history", parents=[common], help="a group's history (offline)")
    a.add_argument("group")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.add_argument("--limit", type=int, default=200, metavar="N")
