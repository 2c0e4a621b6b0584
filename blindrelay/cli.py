"""The `blindrelay` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from teaching.names import DEFAULT_THEME, THEMES, Scenario


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               full: bool = True) -> None:
    p = sub.add_parser("serve", help="run a relay server",
                       description="Run a relay: it stores and forwards opaque envelopes and "
                       "key bundles, nothing else (docs/DATA.md lists every column).")
    if not full:  # another command runs: its name and help line suffice (no server import)
        return
    from server import budgets
    from server.config import default_data_dir, default_limits
    from server.connections import ConnectionLimits

    limits = default_limits()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--data", type=Path, default=default_data_dir(),
                   help=f"data directory (default {default_data_dir()})")
    p.add_argument("--storage", default="", metavar="URL",
                   help="where the relay keeps its tables: postgresql://user@host:port/db, "
                   "which several relay processes can share (needs pip install "
                   "blindrelay[cluster]; docs/DEPLOY.md); default: embedded SQLite in --data")
    p.add_argument("--tls-cert", type=Path, help="serve wss:// with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="private key for --tls-cert (PEM)")
    p.add_argument("--public-url", action="append", default=[],
                   help="a URL clients reach this server at (repeatable); login signatures "
                   "must name one of them")
    p.add_argument("--synchronous-full", action="store_true",
                   help="fsync every commit (survives power loss, not only a killed process)")
    p.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="auto (default): uvloop if installed (the `fast` extra), else "
                   "asyncio's own loop")
    p.add_argument("--envelope-ttl", type=int, default=limits.envelope_ttl,
                   help="seconds an undelivered envelope is kept (default 30 days)")
    p.add_argument("--expiry-interval", type=float, default=60.0,
                   help="seconds between expiry sweeps")
    p.add_argument("--max-frame", type=int, default=limits.max_frame)
    p.add_argument("--max-envelope", type=int, default=limits.max_envelope)
    p.add_argument("--max-recipients", type=int, default=limits.max_recipients)
    p.add_argument("--max-queue", type=int, default=limits.max_queue,
                   help="queued envelopes per recipient")
    p.add_argument("--max-prekeys", type=int, default=limits.max_prekeys,
                   help="one-time prekeys of each kind per account")
    p.add_argument("--rate", type=int, default=limits.rate_per_second,
                   help="frames per second per connection")
    p.add_argument("--burst", type=int, default=limits.rate_burst)
    p.add_argument("--prekey-low", type=int, default=limits.prekey_low)
    conns = ConnectionLimits()
    p.add_argument("--login-timeout", type=float, default=conns.login_timeout,
                   help="seconds a connection may stay not logged in")
    p.add_argument("--max-connections", type=int, default=conns.max_connections,
                   help="open connections in total (kept below the open-file limit)")
    p.add_argument("--max-connections-per-address", type=int, default=conns.max_per_address)
    p.add_argument("--max-connections-per-account", type=int, default=conns.max_per_account)
    p.add_argument("--max-outbox-bytes", type=int, default=conns.max_outbox_bytes,
                   help="bytes waiting for one connection before it is closed")
    p.add_argument("--witness", action="append", default=[], metavar="URL",
                   help="a witness (blindrelay witness) to cosign each key directory head "
                   "(repeatable); clients configured with its key accept only cosigned heads")
    p.add_argument("--certificate-lifetime", type=int, default=24 * 3600, metavar="S",
                   help="seconds a sender certificate is valid (default 24 hours)")
    p.add_argument("--bus", metavar="URL",
                   help="nats://host:port[/name]: run as one of several relay processes "
                   "sharing the storage; stores and deletions are announced to the others "
                   "(docs/DEPLOY.md); implies --reuse-port")
    p.add_argument("--reuse-port", action="store_true",
                   help="listen with SO_REUSEPORT, so several processes share the port")
    p.add_argument("--log-level", default="INFO")
    budgets.add_arguments(p)


def _add_witness(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 full: bool = True) -> None:
    p = sub.add_parser("witness", help="run an independent key-transparency witness",
                       description="Cosign a relay's checkpoints only if each extends the "
                       "last one cosigned (C2SP tlog-witness; docs/PROTOCOL.md 19.11).")
    if not full:
        return
    from server import witness

    witness.add_arguments(p)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text}: must be more than 0 seconds")
    return value


def _positive_int(text: str) -> int:
    """`demo --text --messages N`: a count a walk-through can show (argparse turns the
    error into a usage line and exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: must be from 1 to 1000")
    return value


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path,
                        help="profile directory (default $BLINDRELAY_HOME or the user data "
                        "directory)")
    common.add_argument("--passphrase-file", type=Path,
                        help="read the passphrase from this file (else $BLINDRELAY_PASSPHRASE, "
                        "else a prompt)")

    p = sub.add_parser("init", parents=[common], help="create a profile and register it",
                       description="Create an identity, register NAME on the relay and "
                       "upload prekeys.")
    p.add_argument("name")
    p.add_argument("--server", required=True, help="relay URL, e.g. ws://127.0.0.1:8765")
    p.add_argument("--no-passphrase", action="store_true",
                   help="store the profile key unprotected (says what that means)")

    p = sub.add_parser("send", parents=[common], help="send a message",
                       description="Send TEXT (or standard input) to NAME.")
    p.add_argument("name")
    p.add_argument("text", nargs="?", help="the message; '-' or nothing reads stdin")
    p.add_argument("--stall-timeout", type=_seconds, default=30.0, metavar="S",
                   help="give up when the relay delivers nothing for S seconds while "
                   "handing over queued messages (default 30)")

    p = sub.add_parser("recv", parents=[common], help="print new messages",
                       description="Fetch queued messages, print every unread one, mark "
                       "them read.")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="keep listening S seconds after the queue is empty")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--stall-timeout", type=_seconds, default=30.0, metavar="S",
                   help="give up when the relay delivers nothing for S seconds; a queue "
                   "of any size drains as long as it moves (default 30)")

    p = sub.add_parser("history", parents=[common],
                       help="print a conversation with each message's delivery state",
                       description="Print the conversation with NAME from this profile, "
                       "oldest first, with each message's state (sending, sent, delivered, "
                       "read; received; failed). Works offline and marks nothing read; run "
                       "recv first to fetch receipts.")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=int, default=200, metavar="N",
                   help="the newest N messages (default 200)")

    p = sub.add_parser("contacts", parents=[common], help="list contacts")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("safety-number", parents=[common],
                       help="show the safety number shared with a contact")
    p.add_argument("name")
    p.add_argument("--no-qr", action="store_true", help="digits only")

    p = sub.add_parser("verify", parents=[common],
                       help="mark a contact verified after comparing safety numbers")
    p.add_argument("name")

    p = sub.add_parser("accept-key", parents=[common],
                       help="accept a contact's changed identity key")
    p.add_argument("name")

    sub.add_parser("chat", parents=[common], help="the terminal chat app")

    p = sub.add_parser("account", help="manage this profile's account on the relay")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = actions.add_parser("delete", parents=[common],
                           help="delete the account on the relay and this profile",
                           description="Delete the account on the relay (signed with the "
                           "identity key; its queued messages and prekeys go with it), then "
                           "this profile. The name is free again afterwards.")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("kt", help="the relay's key directory (key transparency)",
                       description="Look names up in the relay's verifiable key directory, "
                       "watch your own name, audit a relay's whole log, check evidence.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = actions.add_parser("lookup", parents=[common],
                           help="the verified binding of NAME in the directory")
    k.add_argument("name")
    actions.add_parser("monitor", parents=[common],
                       help="check every binding of your own name now")
    k = actions.add_parser("audit", help="replay a relay's whole directory log (no account)")
    k.add_argument("url", help="ws:// or wss:// URL of the relay")
    k = actions.add_parser("verify-evidence", help="check an evidence file from scratch")
    k.add_argument("file", type=Path)
    k = actions.add_parser("witness", parents=[common],
                           help="require a witness's cosignature on every newer head",
                           description="Configure the witnesses (blindrelay witness "
                           "--show-key prints a witness's key) whose cosignature every "
                           "newer directory head must carry; with none, any head the relay "
                           "signs and proves consistent is accepted.")
    k.add_argument("op", choices=["add", "remove", "list"])
    k.add_argument("key", nargs="?", help="the witness's verifier key (add, remove)")

    p = sub.add_parser("sealed", help="sealed sending: who the relay can see sending",
                       description="Sealed sending (on by default) sends envelopes on a "
                       "connection that never logs in, so the relay cannot tell which "
                       "account sent them; contacts send to you sealed with the delivery "
                       "capability your client gave them.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", parents=[common], help="the settings and who holds what")
    actions.add_parser("on", parents=[common], help="send sealed (the default)")
    actions.add_parser("off", parents=[common],
                       help="send every envelope on the logged-in connection")
    k = actions.add_parser("rotate", parents=[common],
                           help="make a new capability and give it to your contacts",
                           description="Makes a new delivery capability, tells the relay "
                           "its hash and gives it to every contact except those cut off: "
                           "their messages still arrive, but unsealed.")
    k.add_argument("--cut", action="append", default=[], metavar="NAME",
                   help="a contact not given the new capability (repeatable)")
    k = actions.add_parser("restore", parents=[common],
                           help="give a contact cut off your current capability again")
    k.add_argument("name")
    k = actions.add_parser("anyone", parents=[common],
                           help="whether strangers may send to you sealed (default off)")
    k.add_argument("value", choices=["on", "off"])
    k = actions.add_parser("receipt-delay", parents=[common],
                           help="delay automatic receipts by a random 0..SECONDS")
    k.add_argument("seconds", type=float, metavar="SECONDS", help="0 sends them at once")
    from blindrelay.group_args import add_group_parser

    add_group_parser(sub, common)




def _command_of(argv: Sequence[str]) -> str:
    """The subcommand `argv` names: its first word that is not an option (the top level
    has no option that takes a value)."""
    return next((a for a in argv if not a.startswith("-")), "")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the `command` about to run, the arguments of the
    relay's own commands (serve, witness), whose defaults come from the server package,
    are built only for that command, so a client command never imports the relay."""
    full = {"serve", "witness"} if command is None else {command}
    parser = argparse.ArgumentParser(
        prog="blindrelay",
        description="End-to-end encrypted chat over a relay that only ever holds ciphertext.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="Alice, Bob and what the relay sees, side by side",
                          description="Start a throw-away relay and two clients and show "
                          "both chats and the relay's view; with --scenario, the relay "
                          "turns hostile.")
    demo.add_argument("--scenario", choices=[s.value for s in Scenario],
                      help="run a malicious-relay scenario (also in the demo's F3 menu)")
    demo.add_argument("--pace", type=float, default=1.2,
                      help="seconds between scenario steps (default 1.2)")
    demo.add_argument("--unlogged", action="store_true",
                      help="with mitm-first-contact or key-swap: the relay does not log its "
                      "fake key in the key directory (caught at first contact) instead of "
                      "logging it as a RESET (caught by the owner's monitoring)")
    demo.add_argument("--witness", action="store_true",
                      help="with split-view: Alice's client accepts only checkpoints a "
                      "witness cosigned, so the fork is refused up front (instead of "
                      "proven by gossip afterwards)")
    demo.add_argument("--text", action="store_true",
                      help="no terminal UI: print a protocol walk-through instead; with "
                      "--scenario, the scenario's story as text")
    demo.add_argument("--messages", type=_positive_int, default=6,
                      help="with --text and no --scenario: how many messages (1-1000)")
    demo.add_argument("--theme", choices=THEMES, default=DEFAULT_THEME,
                      help="'projector': a high-contrast light theme for a projector or "
                      "a bright room (in a terminal and with --web)")
    demo.add_argument("--web", action="store_true",
                      help="serve the demo to a browser on this machine (127.0.0.1) "
                      "instead of the terminal, and print the URL; needs the 'web' extra")
    demo.add_argument("--font-size", type=int, metavar="PX",
                      help="with --web: the page's font size in CSS pixels (default 16, "
                      "24 with --theme projector); fewer, larger cells switch the demo "
                      "to its narrow layout")
    demo.add_argument("--port", type=int, default=0,
                      help="with --web: the loopback port (default: a free one)")
    _add_serve(sub, "serve" in full)
    _add_witness(sub, "witness" in full)
    admin = sub.add_parser("admin", help="operator commands on a relay's data directory")
    admin_sub = admin.add_subparsers(dest="action", required=True, metavar="ACTION")
    gone = admin_sub.add_parser(
        "delete-account", help="delete an account, its prekeys and its queue",
        description="Delete an account directly in the data directory; the relay must be "
        "stopped (the command refuses while the directory is in use).")
    gone.add_argument("name")
    gone.add_argument("--data", "--data-dir", dest="data", type=Path, required=True)
    gone.add_argument("--storage", default="", metavar="URL",
                      help="the relays' postgresql:// URL, if they keep their tables there "
                      "(refused while any relay is connected to it)")
    audit = sub.add_parser("audit", help="print everything a relay's data directory holds")
    audit.add_argument("--data", type=Path, required=True)
    audit.add_argument("--storage", default="", metavar="URL",
                       help="the relay's postgresql:// URL, if it keeps its tables there "
                       "(as given to serve --storage)")
    audit.add_argument("--json", action="store_true",
                       help="one JSON document for machines (what conformance --data reads)")
    conf = sub.add_parser(
        "conformance", help="check a relay against the protocol's frames",
        description="Black-box checks of a relay, given its URL. Every account it registers "
        "is named cf... and deleted at the end, with the queued envelopes. What a relay "
        "stores cannot be seen from outside: for a relay running on this machine, --data "
        "adds the operator-side audit; elsewhere, ask its operator to run "
        "`blindrelay audit`.")
    conf.add_argument("url", nargs="?", help="ws:// or wss:// URL of the relay")
    conf.add_argument("-k", "--only", help="run only checks whose name contains this (or "
                      "one of several, separated by commas)")
    conf.add_argument("--list", action="store_true",
                      help="print each check's name and description, run nothing")
    conf.add_argument("--json", action="store_true",
                      help="print one JSON document instead of the lines")
    conf.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    conf.add_argument("--strict", action="store_true", help="a SKIP fails the run")
    conf.add_argument("--data", type=Path, metavar="DIR",
                      help="the relay's data directory (relay on this machine): audit it "
                      "before and after the run (storage.* checks)")
    conf.add_argument("--storage", metavar="URL",
                      help="with --data, for a relay on PostgreSQL: its postgresql:// URL "
                      "(the audit reads the tables there)")
    bars = conf.add_argument_group(
        "bars", "upper bounds the limits the relay announces in HELLO must meet")
    for flag, what in (("--max-ttl", "envelope_ttl, seconds"), ("--max-queue", "max_queue"),
                       ("--max-frame", "max_frame, bytes"),
                       ("--max-envelope", "max_envelope, bytes"),
                       ("--max-prekeys", "max_prekeys"),
                       ("--max-rate", "rate_per_second"), ("--max-burst", "rate_burst")):
        bars.add_argument(flag, type=_natural, metavar="N", help=f"largest {what} accepted")
    bars.add_argument("--require-rate-limit", action="store_true",
                      help="the announced rate limit must be one the suite can see enforced")
    cc = sub.add_parser("conformance-client",
                        help="check a client against a hostile relay (docs/CONFORMANCE.md)",
                        description="Run a hostile relay on loopback and drive the client "
                        "CMD through the documented command-line contract: bad bundle "
                        "signatures, key swaps, keys not in the key directory, replays, "
                        "skipped-message limits, oversized frames, forged senders and "
                        "terminal escapes.")
    cc.add_argument("client", nargs=argparse.REMAINDER, metavar="-- CMD ...",
                    help="the client's command line, e.g. '-- blindrelay'")
    cc.add_argument("-k", "--only", help="run only checks whose name contains this")
    cc.add_argument("--list", action="store_true", help="list the checks and exit")
    cc.add_argument("--json", action="store_true", help="one JSON document on stdout")
    cc.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    cc.add_argument("--timeout", type=_seconds, default=30.0, metavar="S",
                    help="seconds each client command may take (default 30)")
    prove = sub.add_parser("prove", help="check that a real relay never holds plaintext",
                           description="Run a relay and two clients, send random canaries, "
                           "and search the relay's files, logs and memory for them.")
    prove.add_argument("--keep", action="store_true", help="keep the work directory")
    vectors = sub.add_parser("vectors", help="the test vectors shipped with this package")
    vsub = vectors.add_subparsers(dest="vectors_command", required=True)
    vcheck = vsub.add_parser(
        "check", help="check an implementation against the vectors",
        description="Without a command: check this implementation in-process. With "
        "`-- CMD...`: run CMD and check it through the JSON-lines contract of "
        "conformance/vectors/contract.py (docs/PROTOCOL.md 17.6).")
    vcheck.add_argument("--json", action="store_true", help="one JSON document on stdout")
    vcheck.add_argument("--strict", action="store_true", help="an unsupported op fails")
    vcheck.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    vsub.add_parser("path", help="print the directory the vector files are installed in")
    add_client_commands(sub)
    _add_lab_parser(sub)
    return parser


def _add_lab_parser(sub: Any) -> None:
    """`blindrelay lab` (teaching/labs/cli.py runs it)."""
    lab = sub.add_parser("lab", help="graded exercises on a real relay",
                         description="Graded labs: `start N` copies lab N's material into a "
                         "directory, `check N` grades it (one line per criterion, exit 0 "
                         "when all pass). `lab list` lists them.")
    actions = lab.add_subparsers(dest="lab_action", required=True)
    actions.add_parser("list", help="list the labs")
    for name, text in (("start", "copy lab N's README and files into a lab directory"),
                       ("check", "grade the lab directory")):
        p = actions.add_parser(name, help=text)
        p.add_argument("number", type=int, metavar="N")
        p.add_argument("--dir", type=Path, help="the lab directory (default: "
                       "./blindrelay-labN-NAME)")
        if name == "start":
            p.add_argument("--force", action="store_true",
                           help="overwrite the lab's files if they exist")


def _vectors(args: argparse.Namespace) -> int:
    import json
    from importlib import resources

    if args.vectors_command == "path":
        print(resources.files("conformance.vectors"))
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        from conformance.vectors.check.__main__ import main as check_main

        return check_main([])
    from conformance.vectors.contract import run

    results = run(cmd)
    failed = any(r.failures or (args.strict and r.skipped) for r in results)
    if args.json:
        print(json.dumps({"command": cmd, "ok": not failed,
                          "results": [r.as_json() for r in results]}, indent=2))
    else:
        for result in results:
            print(result.line())
        print("FAIL" if failed else "ok")
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from server import budgets
    from server.config import ServerConfig, default_limits
    from server.connections import ConnectionLimits
    from server.serve import event_loop_factory, run_server
    from server.startup import RelayStartError

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if bool(args.tls_cert) != bool(args.tls_key):
        print("blindrelay serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    limits = replace(
        default_limits(), max_frame=args.max_frame, max_envelope=args.max_envelope,
        max_recipients=args.max_recipients, max_queue=args.max_queue,
        max_prekeys=args.max_prekeys, rate_per_second=args.rate, rate_burst=args.burst,
        envelope_ttl=args.envelope_ttl, prekey_low=args.prekey_low)
    config = ServerConfig(host=args.host, port=args.port, data_dir=args.data, limits=limits,
                          tls_cert=args.tls_cert, tls_key=args.tls_key,
                          public_urls=tuple(args.public_url),
                          witnesses=tuple(args.witness),
                          certificate_lifetime=args.certificate_lifetime,
                          bus=args.bus, reuse_port=args.reuse_port,
                          synchronous_full=args.synchronous_full,
                          storage=args.storage,
                          expiry_interval=args.expiry_interval,
                          budgets=budgets.from_arguments(args),
                          connections=ConnectionLimits(
                              login_timeout=args.login_timeout,
                              max_connections=args.max_connections,
                              max_per_address=args.max_connections_per_address,
                              max_per_account=args.max_connections_per_account,
                              max_outbox_bytes=args.max_outbox_bytes))

    def ready(_relay: object, port: int) -> None:
        print(f"blindrelay relay listening on {config.scheme}://{config.host}:{port}",
              flush=True)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory(args.event_loop)) as runner:
            runner.run(run_server(config, ready=ready))
    except RelayStartError as exc:
        print(f"blindrelay serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _check_demo_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse `demo --web` options that would be silently ignored."""
    from teaching.demo.web import MAX_FONT_SIZE, MIN_FONT_SIZE

    if args.web and args.text:
        parser.error("demo: --web and --text exclude each other")
    if not args.web and (args.font_size is not None or args.port):
        parser.error("demo: --font-size and --port only apply with --web (a terminal's "
                     "font is the terminal's)")
    if args.font_size is not None and not MIN_FONT_SIZE <= args.font_size <= MAX_FONT_SIZE:
        parser.error(f"demo: --font-size must be {MIN_FONT_SIZE}..{MAX_FONT_SIZE} pixels")
    if not 0 <= args.port <= 65535:
        parser.error("demo: --port must be 0..65535")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    if args.command == "demo":
        _check_demo_args(parser, args)
        if args.web:
            from teaching.demo.web import WebOptions, run_web

            return run_web(WebOptions(args.scenario, args.pace, args.unlogged,
                                      args.witness, args.theme, args.font_size, args.port))
        if args.text and args.scenario:
            from teaching.demo.story import run_story

            return run_story(args.scenario, cover_up=not args.unlogged,
                             witnessed=args.witness)
        if args.text:
            from teaching.walkthrough import run

            return run(args.messages)
        from teaching.demo.app import run_demo

        return run_demo(args.scenario, args.pace, args.unlogged, args.witness, args.theme)
    if args.command == "serve":
        return _serve(args)
    if args.command == "witness":
        from server.witness import main as witness_main

        return witness_main(args)
    if args.command == "admin":
        from server.admin import main as admin_main

        return admin_main(args.action, args.name, args.data, args.storage)
    if args.command == "audit":
        from server.audit import main as audit_main

        return audit_main(args.data, args.json, args.storage)
    if args.command in ("init", "send", "recv", "contacts", "safety-number", "verify",
                        "accept-key", "chat", "account", "kt", "history", "sealed",
                        "group"):
        from client.commands import run_client_command

        return run_client_command(args)
    if args.command == "vectors":
        return _vectors(args)
    if args.command == "prove":
        from teaching.prove import prove

        return prove(keep=args.keep)
    if args.command == "lab":
        from teaching.labs.cli import run as run_lab

        return run_lab(args)
    if args.command == "conformance":
        return _conformance(args)
    if args.command == "conformance-client":
        from conformance.client import main as client_kit

        return client_kit(args.client, args.only, list_only=args.list, as_json=args.json,
                          junit=args.junit, timeout=args.timeout)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _natural(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _conformance(args: argparse.Namespace) -> int:
    from conformance.relay import Bars, Outputs, RunOptions, list_checks
    from conformance.relay import main as conformance_main

    if args.list:
        for line in list_checks(args.only):
            print(line)
        return 0
    if args.url is None:
        print("blindrelay conformance: give the relay's URL (or --list)", file=sys.stderr)
        return 2
    bars = Bars(args.max_ttl, args.max_queue, args.max_frame, args.max_envelope,
                args.max_prekeys, args.max_rate, args.max_burst, args.require_rate_limit)
    if args.data is not None and not args.data.is_dir():
        print(f"blindrelay conformance: --data {args.data} is not a directory", file=sys.stderr)
        return 2
    options = RunOptions(bars, args.data)
    if args.storage:
        if args.data is None:
            print("blindrelay conformance: --storage goes with --data", file=sys.stderr)
            return 2
        from conformance.relay.storage import default_command

        options.audit_command = (*default_command(args.data), "--storage", args.storage)
    return conformance_main(args.url, args.only, options=options,
                            outputs=Outputs(args.json, args.junit, args.strict))


if __name__ == "__main__":
    sys.exit(main())
