"""The client subcommands of `blindrelay`: scriptable, non-interactive when given a
passphrase, with clear exit codes (docs/CLIENT.md lists them)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import io
import json
import logging
import os
import signal
import stat
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from client import account
from client.client import Client
from client.connection import RelayConnection
from client.directory import audit, safety_form
from client.errors import (
    ClientError,
    DirectoryRefused,
    KeyChangeBlocked,
    NotConnected,
    Refused,
    RelayRefused,
    UnknownContact,
    relay_errors,
)
from client.events import Event, KtAlert, MessageEvent
from client.login import LoginRefused
from client.paths import PASSPHRASE_ENV, resolve_home
from client.records import Direction, Message, State
from client.sanitize import continuation_lines, one_line
from client.store import NoProfile, ProfileExists, Store, StoreError, WrongPassphrase
from client.trust import lookalike_warning
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import normalize_url

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_PROFILE = 3
EXIT_WRONG_PASSPHRASE = 4
EXIT_UNREACHABLE = 5
EXIT_UNKNOWN_CONTACT = 6
EXIT_KEY_CHANGED = 7

NO_PASSPHRASE_WARNING = (
    "WARNING: --no-passphrase: this profile's encryption key is stored in the profile "
    "itself. Anyone who can read {home} can read your messages and act as you. Use it "
    "only for throw-away demos and tests.")


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def read_passphrase_file(path: Path) -> bytes:
    """The passphrase from --passphrase-file, refused (like ssh refuses a private key)
    when anyone but its owner may read or change it, or when another user owns it: the
    file is as good as the passphrase. Its content without the final line ending."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise CommandError(f"cannot read --passphrase-file: {exc}", EXIT_USAGE) from exc
    try:
        st = os.fstat(fd)  # the file opened, not whatever the name points to later
        if os.name == "posix":
            if st.st_mode & 0o077:
                raise CommandError(
                    f"--passphrase-file {path} is accessible by others (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}); refusing to use it: run "
                    f"'chmod 600 {path}'", EXIT_USAGE)
            if st.st_uid not in (os.getuid(), 0):
                raise CommandError(f"--passphrase-file {path} belongs to another user; "
                                   "refusing to use it", EXIT_USAGE)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CommandError(f"cannot read --passphrase-file: {exc}", EXIT_USAGE) from exc
    finally:
        os.close(fd)
    return data.rstrip(b"\r\n")


def take_env_passphrase(args: argparse.Namespace) -> None:
    """Moves $BLINDRELAY_PASSPHRASE out of the environment into `args` before anything
    else runs, so that no child process, crash report or /proc reader of our later
    environment sees it."""
    value = os.environ.pop(PASSPHRASE_ENV, None)
    args.env_passphrase = None if value is None else value.encode()


def _passphrase(args: argparse.Namespace, confirm: bool = False) -> bytes:
    if args.passphrase_file is not None:
        return read_passphrase_file(args.passphrase_file)
    env: bytes | None = getattr(args, "env_passphrase", None)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise CommandError(f"no passphrase: set {PASSPHRASE_ENV}, pass --passphrase-file, or "
                           "create the profile with --no-passphrase", EXIT_USAGE)
    try:
        first = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase again: ") != first:
            raise CommandError("the passphrases differ", EXIT_USAGE)
    except EOFError as exc:
        raise CommandError("no passphrase given (end of input at the prompt)",
                           EXIT_USAGE) from exc
    if confirm and not first:
        raise CommandError("an empty passphrase protects nothing; use --no-passphrase to say "
                           "so explicitly", EXIT_USAGE)
    return first.encode()


def _open(args: argparse.Namespace) -> Client:
    home = resolve_home(args.home)
    if not Store.path_in(home).exists():
        raise CommandError(f"no profile in {home}; create one with "
                           "'blindrelay init NAME --server URL'", EXIT_NO_PROFILE)
    passphrase = _passphrase(args) if Store.needs_passphrase(home) else None
    try:
        return Client.open(home, passphrase)
    except WrongPassphrase as exc:
        raise CommandError("wrong passphrase", EXIT_WRONG_PASSPHRASE) from exc
    except NoProfile as exc:
        raise CommandError(str(exc), EXIT_NO_PROFILE) from exc
    except StoreError as exc:
        raise CommandError(f"cannot open the profile: {exc}") from exc


STALL_TIMEOUT = 30.0
"""Seconds without progress after which a command stops waiting for the relay's queue
(`--stall-timeout`): a timeout that resets on every envelope handled, so a queue of
any size drains as long as it moves."""

PROGRESS_EVERY = 2.0
"""A long drain says how far it got on stderr this often."""

Tick = Callable[[], Awaitable[None]]


async def _connect(client: Client, command: str = "", stall: float = STALL_TIMEOUT,
                   tick: Tick | None = None) -> None:
    """Logs in and waits until the relay's queue has been handled (QUEUE_DONE);
    `tick` runs between checks (recv commits what it printed there)."""
    def alert(event: Event) -> None:  # a key directory alert is loud, whatever the command
        if isinstance(event, KtAlert):
            print(f"blindrelay {command or 'client'}: KEY DIRECTORY ALERT: "
                  f"{one_line(event.text)}", file=sys.stderr, flush=True)

    if alert not in client.listeners:
        client.on_event(alert)
    # the queue is handled from LOGIN on, while the login's own requests wait for their
    # answers behind it: a stall is watched for from the start
    connecting = asyncio.ensure_future(client.connect())
    try:
        try:
            await _drain(client, command, stall, tick, connecting)
            await connecting
        finally:
            if not connecting.done():
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
    except NotConnected as exc:
        raise CommandError(str(exc), EXIT_UNREACHABLE) from exc
    except LoginRefused as exc:
        raise CommandError(f"cannot log in: {exc.message}", EXIT_ERROR) from exc
    except RelayRefused as exc:
        raise CommandError(f"the relay refused the login: {exc}", EXIT_ERROR) from exc


async def _drain(client: Client, command: str, stall: float, tick: Tick | None,
                 connecting: asyncio.Future[None]) -> None:
    """Until the queue was handled (or the login failed: the caller says why)."""
    loop = asyncio.get_running_loop()
    start = last_change = loop.time()
    last = client.link.handled
    moved = (last, 0)  # envelopes handled, pushes read: either is progress
    next_report = start + PROGRESS_EVERY
    reported = False
    while not client.queue_done.is_set():
        if connecting.done() and connecting.exception() is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.queue_done.wait(), min(0.25, stall))
        now = loop.time()
        last = client.link.handled
        conn = client.conn
        now_moved = (last, 0 if conn is None else conn.pushes.received)
        if now_moved != moved:
            moved, last_change = now_moved, now
        if tick is not None:
            await tick()
        if client.queue_done.is_set():
            break
        if connecting.done() and connecting.exception() is not None:
            return  # the login failed: the caller says why
        conn = client.conn
        if connecting.done() and (conn is None or conn.closed.is_set()):
            raise CommandError("the connection to the relay dropped while it delivered the "
                               f"queue ({last} envelopes handled)", EXIT_UNREACHABLE)
        if now - last_change >= stall:
            raise CommandError(f"the relay stopped delivering the queue: nothing for "
                               f"{stall:g} s after {last} envelopes", EXIT_UNREACHABLE)
        if now >= next_report:
            print(f"blindrelay {command}: {last} envelopes received so far "
                  f"({now - start:.0f} s)", file=sys.stderr, flush=True)
            next_report, reported = now + PROGRESS_EVERY, True
    if reported:
        print(f"blindrelay {command}: {client.link.handled} envelopes received in "
              f"{loop.time() - start:.0f} s", file=sys.stderr, flush=True)


def _stamp(message: Message) -> str:
    when = message.sent_at_ms / 1000 if message.sent_at_ms else message.stored_at
    return dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def format_message(message: Message) -> str:
    """One message for the terminal. What a peer wrote (text, name) and error reasons
    go through `client.sanitize`: every control becomes a visible placeholder, and the
    lines after the first are indented, so that no message can print a line that
    looks like another message or a notice (those start in the first column)."""
    head = f"[{_stamp(message)}] "
    name = one_line(message.contact)
    if message.direction is Direction.NOTICE:
        return f"{head}* {name}: {continuation_lines(message.text)}"
    if message.state is State.UNDECRYPTABLE:
        return f"{head}{name}: <{one_line(message.error)}>"
    return f"{head}{name}: {continuation_lines(message.text)}"


def _error_line(command: str, exc: BaseException) -> str:
    """The one stderr line for a failed command: the error may quote a relay's ERROR
    text or a peer's name, so it is shown on one line with controls made visible."""
    return f"blindrelay {command}: {one_line(str(exc))}"


# -- commands


async def cmd_init(args: argparse.Namespace) -> int:
    """Creates and registers a profile. Atomic from the user's view (client/account.py):
    once REGISTER may have reached the relay the profile is kept, and running the same
    `init` again (or any command that connects) finishes the registration."""
    home = resolve_home(args.home)
    resumed = Store.path_in(home).exists()
    if resumed:
        client = _unfinished(args, home)
        passphrase = b"" if client.store.protected else None
    else:
        passphrase = None if args.no_passphrase else _passphrase(args, confirm=True)
        try:
            client = Client.create(home, args.name, args.server, passphrase)
        except ProfileExists as exc:
            raise CommandError(str(exc)) from exc
        except (ProtocolError, ValueError) as exc:
            raise CommandError(str(exc), EXIT_USAGE) from exc
    try:
        await _connect(client, "init")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await client.disconnect()
        client.close()
        if not resumed and account.nothing_registered(exc, client.profile):
            account.discard_profile(home)
        else:
            print(f"blindrelay init: the profile in {one_line(str(home))} is kept; run the "
                  "same 'blindrelay init' again (or any command) to finish registering",
                  file=sys.stderr)
        raise
    complete = account.is_complete(client.profile)
    await client.disconnect()
    client.close()
    if passphrase is None:
        print(NO_PASSPHRASE_WARNING.format(home=home), file=sys.stderr)
    if not complete:
        print("blindrelay init: registered, but the prekeys are not uploaded yet; run "
              "'blindrelay init' again (or any command) to finish", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"Registered {args.name} on {client.profile.server}; profile in {home}")
    return EXIT_OK


def _unfinished(args: argparse.Namespace, home: Path) -> Client:
    """The profile an earlier `init` of the same name and relay left unfinished."""
    try:
        server = normalize_url(args.server)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    client = _open(args)
    profile = client.profile
    if profile.username != args.name or profile.server != server \
            or account.is_complete(profile):
        client.close()
        raise CommandError(f"a profile already exists in {home}")
    print(f"blindrelay init: finishing the registration of {args.name} begun earlier",
          file=sys.stderr)
    return client


async def cmd_account(args: argparse.Namespace) -> int:
    """`account delete`: deletes the account on the relay (DELETE_ACCOUNT, signed by
    the identity key), then this profile. The name is free again afterwards."""
    home = resolve_home(args.home)
    client = _open(args)
    name = client.username
    try:
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError("deleting an account cannot be undone; pass --yes to "
                                   "confirm without a prompt", EXIT_USAGE)
            typed = input(f"Delete the account {name} on {client.profile.server} and this "
                          f"profile, with every message and contact? Type {name} to "
                          "confirm: ")
            if typed.strip() != name:
                raise CommandError("not confirmed; nothing was deleted", EXIT_USAGE)
        try:
            await _connect(client)  # an unfinished profile registers or reclaims first
        except CommandError as exc:
            refused = exc.__cause__
            if client.profile.registered or not isinstance(refused, RelayRefused) \
                    or refused.code not in account.NOT_OURS:
                raise
            # the relay holds nothing of this profile's: only the local profile goes
        else:
            with relay_errors():
                await account.delete_account(client.link.require(), client.identity)
    finally:
        await client.disconnect()
        client.close()
    account.discard_profile(home)
    print(f"Deleted the account {name} and the profile in {home}")
    return EXIT_OK


async def cmd_send(args: argparse.Namespace) -> int:
    """Sends, or with the relay unreachable queues in the outbox (exit 5): the outbox
    goes out at the next connection of any command or the chat app. A first message
    needs the relay (the recipient's keys), so it is never queued offline."""
    text = args.text
    if text is None or text == "-":
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise CommandError("nothing to send", EXIT_USAGE)
    client = _open(args)
    try:
        unreachable = None
        try:
            await _connect(client, "send", args.stall_timeout)
        except CommandError as exc:
            if exc.code != EXIT_UNREACHABLE or not isinstance(exc.__cause__, NotConnected):
                raise
            unreachable = exc
        if client.contact(args.name) is None:
            similar = client.trust.lookalikes(args.name)
            if similar:
                print(f"blindrelay send: warning: "
                      f"{one_line(lookalike_warning(args.name, similar))}", file=sys.stderr)
        try:
            message = await client.send_text(args.name, text)
        except NotConnected as exc:
            if unreachable is None:
                raise
            raise CommandError(f"{unreachable}; nothing was queued: a message to "
                               f"{args.name} needs the relay first (to fetch their keys "
                               "and set up a session)", EXIT_UNREACHABLE) from exc
        await client.flush_outbox()
        stored = client.message(message.row_id)
        final = stored.state if stored else message.state
        if final is State.FAILED:
            raise CommandError("the relay refused the message")
        if final is State.SENDING:
            why = f" ({one_line(str(unreachable))})" if unreachable is not None else ""
            print(f"queued for {args.name}{why}; it will be sent at the next connection",
                  file=sys.stderr)
            return EXIT_UNREACHABLE
        print(f"sent to {args.name}")
        return EXIT_OK
    finally:
        await client.disconnect()
        client.close()


class OutputClosed(Exception):
    """Standard output was closed by its reader (`blindrelay recv | head -1`)."""


async def cmd_recv(args: argparse.Namespace) -> int:
    """Prints every unread message once. What was printed is marked read (the chat
    app's "read" is what was on screen; here it is what was written to stdout), in
    small batches while the queue drains and on every way out (an error, a stall,
    Ctrl+C, SIGTERM, a closed pipe): so a recv cut short and the next one print each
    message exactly once. Printing comes first and marking second, so a message is
    never marked read without having been printed; only a kill between the two (a
    fraction of a second's worth of messages) prints those again."""
    client = _open(args)
    printed: set[int] = set()
    unmarked: dict[str, list[int]] = {}  # printed, not yet marked read
    closed = False

    def show(message: Message) -> None:
        nonlocal closed
        if closed or message.row_id in printed or message.direction is Direction.OUT:
            return
        if args.json:
            line = json.dumps({"kind": message.direction.value, **message.to_json()})
        else:
            line = format_message(message)
        try:
            print(line, flush=True)
        except BrokenPipeError:
            closed = True  # not printed: stays unread
            return
        printed.add(message.row_id)
        if message.unread:
            unmarked.setdefault(message.contact, []).append(message.row_id)

    def on_event(event: Event) -> None:
        if isinstance(event, MessageEvent) and event.message.row_id not in printed \
                and (event.message.unread or event.message.direction is Direction.NOTICE
                     or event.message.state is State.UNDECRYPTABLE):
            show(event.message)

    async def mark_printed() -> None:
        """Receipts wait in the outbox: the drain sends them, or the flush at the end."""
        while unmarked:
            name, rows = unmarked.popitem()
            await client.mark_read(name, rows, send=False)

    from client.group_commands import GroupPrinter  # group lines, marked read once printed

    groups = GroupPrinter(client, args.json)

    async def tick() -> None:
        await mark_printed()
        groups.mark()
        if closed or groups.closed:
            raise OutputClosed

    try:
        for message in client.unread():
            show(message)
        groups.start()
        await tick()
        client.on_event(on_event)
        await _connect(client, "recv", args.stall_timeout, tick)
        loop = asyncio.get_running_loop()
        until = loop.time() + args.wait
        while loop.time() < until:
            await asyncio.sleep(min(0.25, until - loop.time()))
            await tick()
        await tick()
        await client.flush_outbox()
        return EXIT_OK
    finally:
        try:
            await client.disconnect()  # first: the link prints what it handles until then
        finally:
            try:
                with contextlib.suppress(ClientError):
                    await mark_printed()
                groups.mark()
            finally:
                client.close()


def cmd_contacts(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        contacts = client.contacts()
        for c in contacts:
            status = "KEY CHANGED" if c.key_changed else c.trust.value
            if args.json:
                print(json.dumps({"name": c.name, "trust": c.trust.value,
                                  "key_changed": c.key_changed, "unread": c.unread,
                                  "identity": c.identity.hex()}))
            else:
                unread = f"  {c.unread} unread" if c.unread else ""
                print(f"{one_line(c.name):<32} {status}{unread}")
        if not contacts and not args.json:
            print("no contacts yet", file=sys.stderr)
        return EXIT_OK
    finally:
        client.close()


def history_json(message: Message) -> str:
    """One `history --json` line: the message's fields as `recv --json` gives them
    (kind in/out/notice, state sending/sent/delivered/read for ours, received/
    undecryptable for theirs, failed, id, sent_at_ms, stored_at, text) plus `time`, the
    moment shown (ISO 8601, UTC). json.dumps escapes every control character (\\u001b),
    so the exact text reaches a script and no raw escape reaches a terminal; no further
    sanitizing, which would change what a script compares."""
    when = message.sent_at_ms / 1000 if message.sent_at_ms else message.stored_at
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="milliseconds")
    return json.dumps({"kind": message.direction.value, **message.to_json(),
                       "time": stamp.replace("+00:00", "Z")}, ensure_ascii=True)


def format_history_line(message: Message) -> str:
    """One line of `history NAME` for the terminal: ours with their delivery state,
    theirs as `recv` prints them (sanitized)."""
    if message.direction is Direction.OUT:
        failed = f" ({one_line(message.error)})" if message.error else ""
        return (f"[{_stamp(message)}] me -> {one_line(message.contact)}: "
                f"{continuation_lines(message.text)}  [{message.state.value}{failed}]")
    return format_message(message)


def cmd_history(args: argparse.Namespace) -> int:
    """`history NAME [--json] [--limit N]`: the conversation from the local store,
    oldest first, without connecting and without marking anything read (a script
    checking delivery must not change what it checks)."""
    client = _open(args)
    try:
        messages = client.history(args.name, args.limit)
        for message in messages:
            print(history_json(message) if args.json else format_history_line(message))
        if not messages and not args.json:
            print(f"no messages with {one_line(args.name)}", file=sys.stderr)
        return EXIT_OK
    finally:
        client.close()


def render_qr(payload: str) -> str:
    import segno

    out = io.StringIO()
    segno.make(payload, micro=False).terminal(out=out, compact=True, border=1)
    return out.getvalue()


def cmd_safety_number(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        digits, payload = client.safety_number(args.name)
        contact = client.contact(args.name)
        assert contact is not None
        print(f"Safety number with {args.name} "
              f"({'KEY CHANGED, not accepted' if contact.key_changed else contact.trust.value})"
              f":\n\n{digits}\n")
        codes = client.directory.anchors()
        if codes:
            print("Key directory (these must match too, for the same size):\n  "
                  + "\n  ".join(codes) + "\n")
        if not args.no_qr:
            print(render_qr(payload))
        print("Compare these digits with what your contact sees (in person or over another "
              "channel); if they match, run 'blindrelay verify " + args.name + "'.")
        return EXIT_OK
    finally:
        client.close()


def cmd_verify(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        client.verify(args.name)
        print(f"{args.name} is now verified")
        return EXIT_OK
    finally:
        client.close()


def cmd_accept_key(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        client.accept_key(args.name)
        print(f"accepted {args.name}'s new identity key; they are unverified until you "
              "compare safety numbers again")
        return EXIT_OK
    finally:
        client.close()


def cmd_chat(args: argparse.Namespace) -> int:
    client = _open(args)
    try:
        from client.tui.app import run_chat

        return run_chat(client)
    finally:
        client.close()


# -- the key directory (client/directory.py; issue 10 items 6 and 7)


async def cmd_kt(args: argparse.Namespace) -> int:
    """`kt lookup NAME`, `kt monitor`, `kt audit URL`, `kt verify-evidence FILE`."""
    if args.action == "verify-evidence":
        return kt_verify_evidence(args.file)
    if args.action == "audit":
        return await kt_audit(args.url)
    if args.action == "witness":
        return kt_witness(args)
    client = _open(args)
    try:
        await _connect(client, "kt")
        conn = client.link.require()
        if args.action == "lookup":
            return await kt_lookup(client, conn, args.name)
        return await kt_monitor(client)
    finally:
        await client.disconnect()
        client.close()


def kt_witness(args: argparse.Namespace) -> int:
    """`kt witness add|remove|list [KEY]`: the witnesses newer heads must be cosigned by."""
    client = _open(args)
    try:
        state = client.directory.state()
        witnesses = [] if state is None else list(state.witnesses)
        if args.op != "list":
            if not args.key:
                raise CommandError(f"kt witness {args.op} needs the witness's key", EXIT_USAGE)
            if args.op == "add" and args.key not in witnesses:
                witnesses.append(args.key)
            elif args.op == "remove":
                if args.key not in witnesses:
                    raise CommandError("that witness is not configured", EXIT_USAGE)
                witnesses.remove(args.key)
            client.directory.set_witnesses(witnesses)
        for key in witnesses:
            print(one_line(key))
        if not witnesses:
            print("no witnesses: any head the relay signs and proves consistent is accepted",
                  file=sys.stderr)
        return EXIT_OK
    finally:
        client.close()


async def kt_lookup(client: Client, conn: RelayConnection, name: str) -> int:
    found = await client.directory.lookup(conn, name)
    verified, shown = found.verified, one_line(name)
    cp = verified.checkpoint
    at = f"checkpoint: size {cp.size}, root {cp.root_hash.hex()[:16]}…"
    binding = verified.binding
    if binding is None or binding.identity is None:
        state = "not in the directory" if binding is None else \
            f"deleted ({binding.kind.name}, version {binding.version})"
        print(f"{shown}: {state} (verified)\n  {at}")
        return EXIT_UNKNOWN_CONTACT
    print(f"{shown}: {binding.kind.name}, version {binding.version}, entry {verified.index} "
          f"(verified)\n  key: {safety_form(binding.identity, name)}\n  {at}")
    return EXIT_OK


async def kt_monitor(client: Client) -> int:
    result = await client.kt_monitor()
    mine = ", ".join(map(str, result.own_leaves)) or "none"
    print(f"checked log entries {result.start} to {result.end} (yours among them: {mine})")
    if result.alerts:
        for alert in result.alerts:
            print(f"ALERT: {one_line(alert.text)}")
        return EXIT_ERROR
    print("OK: every binding of your name is one this device made")
    return EXIT_OK


async def kt_audit(url: str) -> int:
    try:
        conn = await RelayConnection.open(normalize_url(url))
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except Exception as exc:
        raise CommandError(f"cannot reach {url}: {exc}", EXIT_UNREACHABLE) from exc
    try:
        with relay_errors():
            result = await audit(conn)
    finally:
        await conn.close()
    if result.head is not None:
        print(f"head: size {result.head.size}, root {result.head.root.hex()}")
    print(f"entries checked: {result.checked}")
    if result.failure is not None:
        print(f"FAILED: {one_line(result.failure)}")
        return EXIT_ERROR
    print("OK: every entry is in the signed log and every prefix root follows from the "
          "updates before it")
    return EXIT_OK


def kt_verify_evidence(path: Path) -> int:
    from protocol.wire.kt.evidence import verify_evidence

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc}", EXIT_USAGE) from exc
    try:
        finding = verify_evidence(data)
    except ProtocolError as exc:
        print(f"does NOT verify: {one_line(str(exc))}")
        return EXIT_ERROR
    print(f"evidence of a {finding.kind} in the directory {one_line(finding.origin)} "
          f"(log key {one_line(finding.log_key)})")
    print(f"conclusive: {'yes' if finding.conclusive else 'no'}")
    print("proven (signed by the relay):")
    for line in finding.proven:
        print(f"  - {one_line(line)}")
    if finding.testimony:
        print("testimony (what the reporter says; not proven):")
        for line in finding.testimony:
            print(f"  - {one_line(line)}")
    return EXIT_OK


# -- sealed sending (client/capability.py; issue 12)


async def cmd_sealed(args: argparse.Namespace) -> int:
    """`sealed status|on|off|rotate [--cut NAME]...|restore NAME|anyone on|off|
    receipt-delay SECONDS`: sealed sending, the delivery capability and receipt delays."""
    client = _open(args)
    try:
        if args.action == "status":
            return sealed_status(client)
        if args.action in ("on", "off"):
            client.sealed_sending = args.action == "on"
            print("sealed sending is " + ("on: envelopes go on a connection that never "
                                          "logs in" if client.sealed_sending else
                                          "off: every envelope goes on your logged-in "
                                          "connection"))
            return EXIT_OK
        if args.action == "receipt-delay":
            try:
                client.receipt_delay = args.seconds
            except Refused as exc:
                raise CommandError(str(exc), EXIT_USAGE) from exc
            print(f"automatic receipts wait a random 0 to {client.receipt_delay:g} s"
                  if client.receipt_delay else "automatic receipts go at once")
            return EXIT_OK
        online = await _try_connect(client)
        if args.action == "anyone":
            await client.set_allow_anyone(args.value == "on")
            print("anyone may send to you sealed" if client.allow_anyone else
                  "only contacts holding your capability may send to you sealed (others' "
                  "messages still arrive, unsealed)")
        elif args.action == "rotate":
            given = await client.rotate_capability(args.cut)
            cut = ", ".join(one_line(n) for n in args.cut)
            print(f"new delivery capability (generation "
                  f"{client.capabilities.state().generation}), queued for {given} "
                  f"contact{'s' if given != 1 else ''}" + (f"; cut off: {cut}" if cut else ""))
        else:
            await client.restore_contact(args.name)
            print(f"{one_line(args.name)} is given your current capability again")
        if not online:
            print("not connected: the relay is told, and contacts are sent your "
                  "capability, at the next connection", file=sys.stderr)
        elif not client.capabilities.held():
            print("the relay did not take the new capability yet: it is tried again at "
                  "the next connection", file=sys.stderr)
        return EXIT_OK
    finally:
        await client.disconnect()
        client.close()


async def _try_connect(client: Client) -> bool:
    try:
        await _connect(client, "sealed")
    except NotConnected:
        return False
    return True


def sealed_status(client: Client) -> int:
    delivery = client.capabilities.state()
    contacts = [c for c in client.contacts() if c.identity]
    holding = [c for c in contacts if c.capability_given == delivery.generation]
    cut = [c for c in contacts if c.cut_off]
    given = [c for c in contacts if c.capability is not None]
    print(f"sealed sending: {'on' if delivery.sealed_sending else 'off'}")
    print(f"sealed from anyone: {'on' if delivery.allow_anyone else 'off'}")
    print(f"receipt delay: {f'random 0 to {delivery.receipt_delay:g} s' if delivery.receipt_delay else 'none'}")  # noqa: E501
    print(f"your capability: generation {delivery.generation}, the relay "
          + ("holds it" if client.capabilities.held() else "is told at the next connection"))
    print(f"contacts given it: {len(holding)} of {len(contacts)}"
          + (f"; cut off: {', '.join(one_line(c.name) for c in cut)}" if cut else ""))
    print(f"contacts whose capability you hold (sealed to them): {len(given)}")
    return EXIT_OK


async def cmd_group(args: argparse.Namespace) -> int:
    from client.group_commands import cmd_group as run  # groups: their own module

    return await run(args)


ASYNC: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "init": cmd_init, "send": cmd_send, "recv": cmd_recv, "account": cmd_account,
    "kt": cmd_kt, "sealed": cmd_sealed, "group": cmd_group,
}
SYNC: dict[str, Callable[[argparse.Namespace], int]] = {
    "contacts": cmd_contacts, "safety-number": cmd_safety_number, "verify": cmd_verify,
    "accept-key": cmd_accept_key, "chat": cmd_chat, "history": cmd_history,
}


class SanitizingFormatter(logging.Formatter):
    """Log records of the client quote relay ERROR texts and exception messages: on
    a terminal they are shown with every control visible and later lines indented,
    like everything else the commands print."""

    def format(self, record: logging.LogRecord) -> str:
        return continuation_lines(super().format(record))


@contextlib.contextmanager
def _sanitized_logs() -> Iterator[None]:
    """The client's warnings go to stderr through `SanitizingFormatter` (otherwise
    Python's last-resort handler would print them raw)."""
    logger = logging.getLogger("blindrelay")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(SanitizingFormatter("blindrelay: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def run_client_command(args: argparse.Namespace) -> int:
    take_env_passphrase(args)
    if args.command == "chat":  # the app sends log records to its devtools log
        return _run(args)
    with _sanitized_logs():
        return _run(args)


EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a program killed by SIGPIPE reports


async def _until_terminated(args: argparse.Namespace) -> int:
    """SIGTERM (`timeout`, a service manager) cancels the command like Ctrl+C does, so
    its `finally` blocks run (recv marks what it printed)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, AttributeError):  # not on Windows
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    return await ASYNC[args.command](args)


def _silence_stdout() -> None:
    """The reader of stdout is gone: later writes (and the interpreter's last flush)
    go nowhere instead of raising BrokenPipeError at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command in ASYNC:
            code = asyncio.run(_until_terminated(args))
        else:
            code = SYNC[args.command](args)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except (OutputClosed, BrokenPipeError):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except asyncio.CancelledError:
        return EXIT_TERMINATED
    except CommandError as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return exc.code
    except (KeyChangeBlocked, DirectoryRefused) as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return EXIT_KEY_CHANGED
    except UnknownContact as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return EXIT_UNKNOWN_CONTACT
    except NotConnected as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ClientError, ProtocolError) as exc:
        print(_error_line(args.command, exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
