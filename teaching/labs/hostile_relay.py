"""Lab 3's check: be the hostile relay.

Runs the student's `MyRelay` between two real clients, who exchange four messages
carrying fresh canaries, then runs each client's owner monitoring and compares their
safety numbers. What the clients saw is sorted by the check that saw it; what the
relay read is what it put in `self.read`.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from client.errors import ClientError, DirectoryRefused, KeyChangeBlocked
from client.events import KtAlertKind
from client.history import UNKNOWN_SENDER
from client.records import State
from server.relay import Relay
from teaching.labs.grading import Report, StudentCodeError, load_student_module
from teaching.labs.world import LabWorld, arrived, lab_world, wait_until

STUDENT_FILE = "my_relay.py"
PEOPLE = ("alice", "bob")
SCRIPT = (("alice", "bob"), ("bob", "alice"), ("alice", "bob"), ("bob", "alice"))

FIRST_CONTACT = "first-contact directory proof"
OWNER_MONITORING = "owner monitoring"
GOSSIP = "gossip"
KEY_CHANGE = "key-change block"
MAC = "MAC"
COUNTERS = "ratchet counters"
RECEIPTS = "delivery receipts"
SAFETY_NUMBERS = "safety numbers"
CHECKS = (FIRST_CONTACT, OWNER_MONITORING, GOSSIP, KEY_CHANGE, MAC, COUNTERS, RECEIPTS,
          SAFETY_NUMBERS)
REVEALS_MITM = frozenset({FIRST_CONTACT, OWNER_MONITORING, GOSSIP, KEY_CHANGE,
                          SAFETY_NUMBERS})
ALERTS = {KtAlertKind.KEY_MISMATCH: FIRST_CONTACT, KtAlertKind.NOT_IN_DIRECTORY: FIRST_CONTACT,
          KtAlertKind.BAD_PROOF: FIRST_CONTACT, KtAlertKind.KEYS_CHANGED: FIRST_CONTACT,
          KtAlertKind.FOREIGN_BINDING: OWNER_MONITORING, KtAlertKind.FORK: GOSSIP,
          KtAlertKind.ROLLBACK: GOSSIP}


@dataclass
class Seen:
    """What the clients observed, by check: check -> the reasons it fired."""

    fired: dict[str, list[str]] = field(default_factory=dict)
    canaries: list[str] = field(default_factory=list)
    arrived: int = 0

    def fire(self, check: str, why: str) -> None:
        reasons = self.fired.setdefault(check, [])
        if why not in reasons:
            reasons.append(why)


async def exchange(world: LabWorld, seen: Seen) -> None:
    for (sender, recipient), canary in zip(SCRIPT, seen.canaries, strict=True):
        try:
            await world.clients[sender].send_text(recipient, canary)
        except DirectoryRefused as exc:
            seen.fire(FIRST_CONTACT, f"{sender}'s client refused to send to {recipient}: "
                      f"the key directory does not bind the key the relay served "
                      f"({exc.alert.kind.value})")
            continue
        except KeyChangeBlocked:
            seen.fire(KEY_CHANGE, f"{sender}'s client sent nothing: {recipient}'s key "
                      "changed and nobody accepted the new one")
            continue
        except ClientError as exc:
            seen.fire(FIRST_CONTACT, f"{sender}'s client refused to send: {exc}")
            continue
        if await wait_until(functools.partial(arrived, world, recipient, sender, canary), 5):
            seen.arrived += 1
    for name in PEOPLE:  # one owner-monitoring pass each, as after every login
        try:
            await world.clients[name].kt_monitor()
        except ClientError as exc:
            seen.fire(OWNER_MONITORING, f"{name}'s monitoring failed: {exc}")
    def pending() -> bool:
        return any(m.state in (State.SENT, State.SENDING)
                   for name, peer in (("alice", "bob"), ("bob", "alice"))
                   for m in world.clients[name].history(peer))

    await wait_until(lambda: not pending(), 5)  # delivery receipts (none if dropped)
    await asyncio.sleep(0.2)  # late deliveries


def observe(world: LabWorld, seen: Seen) -> None:
    for name, alerts in world.alerts.items():
        for alert in alerts:
            seen.fire(ALERTS.get(alert.kind, FIRST_CONTACT),
                      f"{name}'s client raised a key directory alert ({alert.kind.value})")
    for name, peer in (("alice", "bob"), ("bob", "alice")):
        client = world.clients[name]
        for message in client.history(peer) + client.history(UNKNOWN_SENDER):
            if message.state is State.UNDECRYPTABLE:
                seen.fire(MAC, f"{name}'s client could not authenticate an envelope")
            lowered = message.text.lower()
            if "duplicate" in lowered:
                seen.fire(COUNTERS, f"{name}'s client rejected a replayed message")
            if "not arrived" in lowered:
                seen.fire(COUNTERS, f"{name}'s client saw a gap: a message never arrived")
            if message.state in (State.SENT, State.SENDING):
                seen.fire(RECEIPTS, f"a message {name} sent was never delivered")
        contact = client.contact(peer)
        if contact is not None and contact.key_changed:
            seen.fire(KEY_CHANGE, f"{name}'s client blocks {peer}: the key changed")
    alice, bob = world.clients["alice"], world.clients["bob"]
    if alice.contact("bob") is not None and bob.contact("alice") is not None:
        alice_sees, bob_sees = alice.safety_number("bob")[0], bob.safety_number("alice")[0]
        if alice_sees != bob_sees:
            seen.fire(SAFETY_NUMBERS, "Alice's and Bob's screens show different safety "
                      "numbers (if they compare them, the relay is exposed)")


async def check(lab_dir: Path) -> Report:
    report = Report(3)
    try:
        module = load_student_module(lab_dir / STUDENT_FILE, "blindrelay_lab3_my_relay")
    except StudentCodeError as exc:
        report.grade("your relay attacked", False, str(exc))
        return report
    factory = getattr(module, "MyRelay", None)
    if not (isinstance(factory, type) and issubclass(factory, Relay)):
        report.grade("your relay attacked", False,
                     f"{STUDENT_FILE} must define class MyRelay(Relay)")
        return report
    seen = Seen(canaries=[f"CANARY-{secrets.token_urlsafe(12)}" for _ in SCRIPT])
    read: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="blindrelay-lab3-") as tmp:
        try:
            async with lab_world(Path(tmp), factory, PEOPLE) as world:
                await exchange(world, seen)
                observe(world, seen)
                read = [bytes(p) for p in getattr(world.relay, "read", [])]
        except Exception as exc:
            report.grade("your relay attacked", False,
                         f"the relay or a client failed: {type(exc).__name__}: {exc}")
            return report
    grade(report, seen, read)
    return report


def grade(report: Report, seen: Seen, read: list[bytes]) -> None:
    got = [c for c in seen.canaries if any(c.encode() in p for p in read)]
    fired = [check for check in CHECKS if check in seen.fired]
    attacked = bool(fired or got)
    report.grade("your relay attacked", attacked,
                 f"it read {len(got)} of {len(seen.canaries)} messages"
                 + (f"; the clients saw: {', '.join(fired)}" if fired else "")
                 if attacked else
                 f"it behaved like an honest relay: {seen.arrived} of {len(SCRIPT)} messages "
                 "arrived once, intact, and no client check fired")
    report.grade("a client check noticed", bool(fired),
                 f"{', '.join(fired)}" if fired else
                 "no check fired" + ("" if attacked else ": there was nothing to notice"))
    revealing = [check for check in fired if check in REVEALS_MITM]
    if got:
        report.grade("nothing read unnoticed", bool(revealing),
                     f"you read {len(got)} messages, and {', '.join(revealing)} exposed you"
                     if revealing else f"you read {len(got)} messages and no check that "
                     "reveals a man in the middle fired: a hole in blindrelay, report it")
    else:
        report.grade("nothing read unnoticed", attacked,
                     "your relay read nothing" + ("" if attacked else
                                                  " (it did not try)"))
    for check in CHECKS:
        reasons = seen.fired.get(check)
        report.note(check, "; ".join(reasons) if reasons else "did not fire")
    report.note("what your relay read", f"{len(read)} plaintexts in self.read, "
                f"{len(got)} of them a message's canary")
