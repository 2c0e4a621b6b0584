"""Vectors for the session record (docs/PROTOCOL.md sections 13.3 and 17.3,
session_record.json): which of a peer's sessions opens each message, byte-exactly.

    .venv/bin/python -m conformance.vectors.gen_session_record   # rewrite the file

`build()` returns the file's content. Every random draw comes from `Drbg`; the one
thing no injected randomness reaches, ML-KEM-768 encapsulation, is recorded: a run
keeps each encapsulation found in the existing file while it still decapsulates to
its recorded shared secret, so running it twice gives the same file.

Each case is Bob's record for one peer and a list of steps in order: `open` (a message
arrives: what opened it, or the error, and the record's bytes after) or `send` (Bob
encrypts in his current session: the message he must produce).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.drbg import Drbg
from protocol.e2e.errors import DuplicateMessage
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    kem_encapsulate,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.e2e.session_record import Incoming, Opened, SessionRecord
from protocol.wire.errors import ProtocolError
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

HERE = Path(__file__).resolve().parent
FILE = HERE / "session_record.json"
LABEL = "blindrelay/vectors/v1/session_record/"

Json = dict[str, Any]


class Keys:
    """One user's identity and prekeys, drawn from DRBG(LABEL + "keys/" + name) in this
    order: identity seed (32), signed prekey 1 (32), last-resort KEM prekey 2 (64),
    one-time KEM prekeys 101 and 102 (64 each), one-time prekeys 1001 and 1002 (32 each)."""

    def __init__(self, name: str) -> None:
        rng = Drbg(f"{LABEL}keys/{name}")
        self.identity = IdentityKeyPair.generate(rng)
        self.signed: dict[int, tuple[X25519KeyPair, SignedPreKey]] = {
            1: make_signed_prekey(self.identity, 1, rng)}
        self.kem: dict[tuple[KemKind, int], tuple[KemKeyPair, KemPreKey]] = {
            (KemKind.LAST_RESORT, 2): make_kem_prekey(self.identity, 2, rng)}
        for key_id in (101, 102):
            self.kem[(KemKind.ONE_TIME, key_id)] = make_kem_prekey(self.identity, key_id, rng)
        self.one_time: dict[int, tuple[X25519KeyPair, OneTimePreKey]] = {
            key_id: make_one_time_prekey(key_id, rng) for key_id in (1001, 1002)}

    def bundle(self, kem_id: int, opk_id: int | None) -> PreKeyBundle:
        kind = KemKind.LAST_RESORT if kem_id == 2 else KemKind.ONE_TIME
        return PreKeyBundle(self.identity.public, self.signed[1][1], kind,
                            self.kem[(kind, kem_id)][1],
                            None if opk_id is None else self.one_time[opk_id][1])

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        opk = None if msg.one_time_prekey_id is None else \
            self.one_time[msg.one_time_prekey_id][0]
        return PrivatePrekeys(self.signed[msg.signed_prekey_id][0],
                              self.kem[(msg.kem_kind, msg.kem_prekey_id)][0], opk)

    def json(self) -> Json:
        return {
            "identity_seed": self.identity.seed.hex(),
            "identity_public": self.identity.public.hex(),
            "signed_prekeys": [{"id": i, "private": pair.private.hex()}
                               for i, (pair, _) in self.signed.items()],
            "kem_prekeys": [{"id": i, "kind": int(kind), "seed": pair.seed.hex()}
                            for (kind, i), (pair, _) in self.kem.items()],
            "one_time_prekeys": [{"id": i, "private": pair.private.hex()}
                                 for i, (pair, _) in self.one_time.items()],
        }


class Encapsulations:
    """ML-KEM-768 encapsulations in the order they are made: recorded ones reused."""

    def __init__(self, old: list[Json]) -> None:
        self.old = old
        self.made: list[Json] = []

    def __call__(self, keys: Keys, kem_id: int) -> Any:
        kind = KemKind.LAST_RESORT if kem_id == 2 else KemKind.ONE_TIME
        pair = keys.kem[(kind, kem_id)][0]
        index = len(self.made)
        ct, ss = b"", b""
        if index < len(self.old):
            ct, ss = bytes.fromhex(self.old[index]["ct"]), bytes.fromhex(self.old[index]["ss"])
        try:
            fits = bool(ct) and pair.decapsulate(ct) == ss
        except ProtocolError:
            fits = False
        if not fits:
            ct, ss = kem_encapsulate(pair.public)
        self.made.append({"ct": ct.hex(), "ss": ss.hex()})
        return lambda public: (ct, ss)


class Case:
    """Bob's record for one peer, and the steps that happen to it."""

    def __init__(self, name: str, bob: Keys, record: SessionRecord, pinned: bytes | None,
                 description: str) -> None:
        self.label = f"{LABEL}case/{name}"
        self.bob = bob
        self.json: Json = {"name": name, "description": description, "rng": self.label,
                           "pinned": None if pinned is None else pinned.hex(),
                           "record": record.serialize().hex(), "steps": []}
        self.rng = Drbg(self.label)
        self.record = SessionRecord.deserialize(record.serialize(), self.rng)
        self.pinned = pinned

    def open(self, sent: tuple[MessageKind, bytes]) -> Opened | None:
        kind, message = sent
        step: Json = {"step": "open", "kind": int(kind), "message": message.hex()}
        opened: Opened | None = None
        try:
            opened = self.record.open(Incoming.parse(kind, message), identity=self.bob.identity,
                                      pinned=self.pinned, lookup=self.bob.lookup, rng=self.rng)
        except ProtocolError as exc:
            step["error"] = type(exc).__name__
        if opened is not None:
            consumed = opened.consumed
            step["opened"] = {
                "plaintext": opened.plaintext.hex(),
                "slot": opened.slot.value,
                "gap": opened.gap,
                "one_time_prekey_id": None if consumed is None else consumed.one_time_prekey_id,
                "kem_prekey_id": None if consumed is None else consumed.kem_prekey_id,
                "identity": None if opened.identity is None else opened.identity.hex(),
                "stored_as": None if opened.stored_as is None else opened.stored_as.value,
            }
            if self.pinned is None and opened.identity is not None:
                self.pinned = opened.identity  # first contact pins the key
        step["record_after"] = self.record.serialize().hex()
        self.json["steps"].append(step)
        return opened

    def send(self, plaintext: bytes) -> tuple[MessageKind, bytes]:
        assert self.record.current is not None
        kind, message = self.record.current.encrypt(plaintext)
        self.json["steps"].append({"step": "send", "plaintext": plaintext.hex(),
                                   "kind": int(kind), "message": message.hex(),
                                   "record_after": self.record.serialize().hex()})
        return kind, message


def _initiate(who: Keys, to: Keys, kem: Encapsulations, kem_id: int, opk_id: int | None,
              label: str) -> Session:
    return Session.initiate(who.identity, to.bundle(kem_id, opk_id), Drbg(f"{LABEL}{label}"),
                            kem(to, kem_id))


def simultaneous_start(alice: Keys, bob: Keys, kem: Encapsulations) -> Json:
    """Both start at once; each replaces its session with the one the other set up,
    and Alice's reply in the session Bob set up opens in his previous one."""
    bob_session = _initiate(bob, alice, kem, 101, 1001, "simultaneous/bob")
    alice_session = _initiate(alice, bob, kem, 101, 1001, "simultaneous/alice")
    to_alice = bob_session.encrypt(b"hello alice")
    case = Case("simultaneous start", bob, SessionRecord(bob_session), alice.identity.public,
                "Bob started a session with Alice and Alice one with Bob at the same time.")
    case.open(alice_session.encrypt(b"hello bob"))
    alice_responder, _, _ = Session.respond(alice.identity, to_alice[1], alice.lookup,
                                            Drbg(f"{LABEL}simultaneous/alice-responds"))
    case.open(alice_responder.encrypt(b"reply in bob's session"))
    alice_responder.decrypt(*case.send(b"and bob answers there"))
    case.open(alice_responder.encrypt(b"both in one session now"))
    return case.json


def new_session_late_message(alice: Keys, bob: Keys, kem: Encapsulations) -> Json:
    """A new session from the same identity replaces the current one; a late message
    in the replaced session still opens (in the previous one, which becomes current)."""
    case = Case("new session, late message", bob, SessionRecord(), None,
                "Alice starts a second session while a message of her first is in flight.")
    first = _initiate(alice, bob, kem, 101, 1001, "late/alice-first")
    case.open(first.encrypt(b"first session"))
    first.decrypt(*case.send(b"reply"))
    late = first.encrypt(b"late, first session")
    second = _initiate(alice, bob, kem, 102, 1002, "late/alice-second")
    case.open(second.encrypt(b"second session"))
    case.open(late)
    return case.json


def identity_key_change(alice: Keys, new_alice: Keys, bob: Keys, kem: Encapsulations
                        ) -> Json:
    """An initial message with an identity key other than the pinned one sets up a
    pending session; the old key's messages still open in the current one."""
    case = Case("identity key change", bob, SessionRecord(), None,
                "Alice's identity key changes (a reinstall, or someone posing as her).")
    old = _initiate(alice, bob, kem, 101, 1001, "change/alice-old")
    case.open(old.encrypt(b"old key"))
    old.decrypt(*case.send(b"reply"))
    late = old.encrypt(b"old key, late")
    new = _initiate(new_alice, bob, kem, 2, None, "change/alice-new")
    case.open(new.encrypt(b"new key"))
    case.open(new.encrypt(b"new key again"))
    case.open(late)
    return case.json


def replayed_first_message(alice: Keys, bob: Keys, kem: Encapsulations) -> Json:
    """The first message of a session that has since been replaced twice is refused
    by the replay memory (whose entries name the prekeys they used and live as long as
    those do), although its prekeys (last resort, no one-time prekey) are still
    there."""
    case = Case("replayed first message", bob, SessionRecord(), None,
                "A relay replays Alice's first initial message after two newer sessions.")
    first = _initiate(alice, bob, kem, 2, None, "replay/alice-1").encrypt(b"first")
    case.open(first)
    for n in (2, 3):
        session = _initiate(alice, bob, kem, 2, None, f"replay/alice-{n}")
        case.open(session.encrypt(b"session %d" % n))
    opened = case.open(first)
    assert opened is None and case.json["steps"][-1]["error"] == DuplicateMessage.__name__
    return case.json


def build() -> Json:
    old: Json = json.loads(FILE.read_text()) if FILE.exists() else {}
    kem = Encapsulations(old.get("encapsulations", []))
    alice, new_alice, bob = Keys("alice"), Keys("alice-new"), Keys("bob")
    cases = [
        simultaneous_start(alice, bob, kem),
        new_session_late_message(alice, bob, kem),
        identity_key_change(alice, new_alice, bob, kem),
        replayed_first_message(alice, bob, kem),
    ]
    return {
        "description": "SessionRecord.open (docs/PROTOCOL.md 13.3): for each case, Bob's "
                       "record for one peer and steps in order. Restore `record` with "
                       "DRBG(rng) as the random source; for an `open` step open the message "
                       "with `pinned` (set to the sender's key after a first-contact NEW) and "
                       "Bob's prekeys, compare `opened` or `error`, then the record's bytes; "
                       "for a `send` step encrypt `plaintext` in the current session.",
        "format": 1,
        "keys": {"alice": alice.json(), "alice_new": new_alice.json(), "bob": bob.json()},
        "cases": cases,
        "encapsulations": kem.made,
    }


def main() -> None:
    FILE.write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    main()
