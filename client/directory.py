"""The key directory, as this client checks it (docs/PROTOCOL.md 19.7-19.9; issue 10
items 3, 4 and 6): a shell over protocol.wire.kt with one job, verifying what the
relay's directory says before anything relies on it.

- Keys: the directory's log key and VRF key are pinned at the first connection to a
  relay (trust on first use, like ssh). Different keys later are a blocking alert and
  are never re-pinned silently: every check refuses until the user looks into it.
- Heads: the newest signed checkpoint verified is stored (a versioned row, so a
  restored profile cannot take it back). Every checkpoint the relay shows goes
  through `advance` first: a newer one only with a consistency proof, an older one
  never (Rollback), two that cannot both be true are a Fork with evidence.
- Keys of others: a key the relay serves (a bundle, an identity lookup) is used only
  if a lookup proof against the verified head binds the name to that very key.
  Otherwise: a blocking warning in the conversation (where key-change warnings go), a
  `KtAlert` event, and, when the relay's signed statements show it, an evidence file
  in the profile's directory that `blindrelay kt verify-evidence` checks.
- Our own key: owner monitoring reads every log leaf appended since the last check
  (checked against two signed heads with a RangeVerifier), keeps those under our own
  label (the VRF of our name, verified), and opens each with the openings KT_OWN
  reveals: a leaf we cannot open, or one binding another key, is a binding we did
  not make, so an alert with evidence.

An honest relay makes all of this invisible: no extra step, no prompt.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from client.connection import RelayConnection
from client.errors import ClientError, DirectoryRefused, relay_errors
from client.events import Events, KtAlert, KtAlertKind
from client.history import History
from client.paths import evidence_path
from client.records import KtState
from client.store import KtRepo, Store
from protocol.e2e.safety_numbers import displayable, fingerprint
from protocol.wire.errors import DecodeError, ProtocolError
from protocol.wire.frames import KtLookupAnswer, OwnEntry
from protocol.wire.kt.commitment import verify_commitment
from protocol.wire.kt.directory import (
    MAX_RANGE,
    Binding,
    EntryKind,
    LogEntry,
    RangeVerifier,
    Verified,
    audit_entries,
    change_statement,
    fold_frontier,
    label_of,
    verify_answer,
)
from protocol.wire.kt.errors import ProofError
from protocol.wire.kt.evidence import (
    Evidence,
    binding_evidence,
    entry_evidence,
    verify_evidence,
)
from protocol.wire.kt.merkle import verify_consistency
from protocol.wire.kt.note import parse_verifier_key
from protocol.wire.kt.verifier import (
    DirectoryKeys,
    Fork,
    Head,
    Rollback,
    advance,
    anchor_sizes,
    check_gossip,
    head_code,
    open_head,
)
from protocol.wire.publickeys import verify_signature

log = logging.getLogger("blindrelay.client")

MONITOR_INTERVAL = 600.0
"""Seconds between owner-monitoring passes while connected (issue 10 item 4)."""
AGREED_NOTES = 1024
"""Most heads remembered as agreed (`gossip`); forgotten ones are checked again."""

CHECK_IT = "check it with 'blindrelay kt verify-evidence FILE'"


def safety_form(identity: bytes, username: str) -> str:
    """A key as people compare it: its 30-digit fingerprint half, in groups of five."""
    digits = displayable(fingerprint(identity, username))
    return " ".join(digits[i:i + 5] for i in range(0, len(digits), 5))


@dataclass(frozen=True)
class Lookup:
    """A verified lookup and the relay's own bytes it was made from (for evidence)."""

    verified: Verified
    note: bytes
    answer: bytes


@dataclass
class MonitorResult:
    """One owner-monitoring pass: how far it read and what it found."""

    start: int
    end: int
    own_leaves: list[int] = field(default_factory=list)
    alerts: list[KtAlert] = field(default_factory=list)


class KeyDirectory:
    def __init__(self, store: Store, repo: KtRepo, history: History, events: Events,
                 home: Path, server: Callable[[], str], username: Callable[[], str],
                 identity: Callable[[], bytes], clock: Callable[[], float]) -> None:
        self.store = store
        self.repo = repo
        self.history = history
        self.events = events
        self.home = home
        self.server = server
        self.username = username
        self.identity = identity
        self.clock = clock
        self.blocked: KtAlert | None = None
        """Set when the relay's directory keys changed: every check refuses."""
        self.confirmed: dict[str, Verified] = {}
        """The newest verified binding per name (a key change's notice names its kind)."""
        self._lock = asyncio.Lock()
        self._agreed: set[tuple[int, bytes]] = set()
        """Contacts' heads (size, root) already shown consistent with ours: gossip asks
        the relay once per distinct head, not once per message."""
        self._agreed_notes: set[bytes] = set()
        """The same heads as their notes' bytes: every text from a contact carries the
        same note until the directory grows, and one found in our history stays in it
        (the history only grows by proven appends), so it is not opened again."""

    # -- keys and heads

    def state(self) -> KtState | None:
        return self.repo.load(self.server())

    def keys(self, state: KtState) -> DirectoryKeys:
        return DirectoryKeys(state.origin, state.log_key, state.vrf_public_key,
                             tuple(state.witnesses))

    def set_witnesses(self, witnesses: list[str]) -> KtState:
        """The witness keys whose cosignature every newer head must carry (19.11)."""
        state = self.state()
        if state is None:
            raise ClientError("the key directory is not pinned yet: connect once first")
        try:  # each key must parse
            DirectoryKeys(state.origin, state.log_key, state.vrf_public_key, tuple(witnesses))
        except ProtocolError as exc:
            raise ClientError(f"not a witness key: {exc}") from None
        state.witnesses = list(witnesses)
        with self.store.transaction():
            self.repo.save(state)
        return state

    async def start(self, conn: RelayConnection, registered: bool = True) -> None:
        """KT_INFO at a connection (before login is fine): pins the keys at first use,
        else compares them, and advances the head. `registered` False means our own
        name is not in the directory yet, so monitoring starts at this head."""
        with relay_errors():
            info = await conn.kt_info()
        state = self.state()
        try:
            if state is None:
                keys = DirectoryKeys(parse_verifier_key(info.log_key).name, info.log_key,
                                     info.vrf_public_key)
                head = open_head(keys, info.checkpoint)
                state = KtState(self.server(), keys.origin, keys.log_key,
                                keys.vrf_public_key, head.note)
                if not registered:
                    state.checked_size, state.checked_root = head.size, head.root
                self.repo.save(state)
                log.info("pinned the key directory of %s (%s)", state.server, keys.origin)
                return
        except ProtocolError as exc:
            raise self._refuse(KtAlertKind.BAD_PROOF, "",
                               f"the relay's key directory is unusable ({exc}); no key it "
                               "serves can be verified") from exc
        if info.log_key != state.log_key or not hmac.compare_digest(
                info.vrf_public_key, state.vrf_public_key):
            alert = self._alert(
                KtAlertKind.KEYS_CHANGED, "",
                f"the relay's key directory keys are NOT the ones pinned at the first "
                f"connection to {state.server} (log key {state.log_key!r}). Either the relay "
                "started a new directory or someone is impersonating it: no new key is "
                "trusted until this is resolved (the pinned keys are kept).")
            self.blocked = alert
            raise DirectoryRefused(alert)
        self.blocked = None
        await self._advance(conn, state, info.checkpoint)

    async def _pinned(self, conn: RelayConnection) -> KtState:
        if self.blocked is not None:
            raise DirectoryRefused(self.blocked)
        state = self.state()
        if state is None:
            await self.start(conn)
            state = self.state()
            assert state is not None
        return state

    async def _advance(self, conn: RelayConnection, state: KtState, note: bytes) -> Head:
        """The relay's checkpoint `note`, accepted only as an extension of our head."""
        async with self._lock:
            state = self.state() or state  # another task may have advanced it
            keys = self.keys(state)
            current = open_head(keys, state.head_note, cosigned=False)
            try:
                new = open_head(keys, note)
                old_root: bytes | None = None
                proof: tuple[bytes, ...] = ()
                if new.size > current.size and current.size > 0:
                    with relay_errors():
                        answer = await conn.kt_consistency(current.size, new.size)
                    old_root, proof = answer.old_root, answer.proof
                elif new.size > current.size:
                    old_root = current.root
                head = advance(keys, current, note, old_root, proof)
            except Fork as exc:
                path = self._write(exc.evidence)
                raise self._refuse(KtAlertKind.FORK, "",
                                   "the relay signed two directory heads that cannot both "
                                   f"be true: it shows different people different "
                                   f"directories. {exc}", path) from exc
            except Rollback as exc:
                raise self._refuse(KtAlertKind.ROLLBACK, "",
                                   f"the relay tried to take the key directory back to an "
                                   f"older state: {exc}") from exc
            except ProtocolError as exc:
                raise self._refuse(KtAlertKind.BAD_PROOF, "",
                                   f"the relay's directory head does not verify: {exc}"
                                   ) from exc
            if head.note != state.head_note:
                state.head_note = head.note
                self.repo.save(state)
            await self._anchor(conn, state, head)
            return head

    async def _anchor(self, conn: RelayConnection, state: KtState, head: Head) -> None:
        """Keeps the roots at the head's anchor sizes (for the safety-number screen),
        each proven consistent with the head by the relay's own proof."""
        sizes = anchor_sizes(head.size)
        if set(state.anchors) == set(sizes):
            return
        anchors: dict[int, bytes] = {}
        try:
            for size in sizes:
                if size == head.size:
                    anchors[size] = head.root
                    continue
                with relay_errors():
                    answer = await conn.kt_consistency(size, head.size)
                verify_consistency(size, head.size, answer.old_root, head.root, answer.proof)
                anchors[size] = answer.old_root
        except (ClientError, ProtocolError) as exc:
            log.info("directory anchors not updated: %s", exc)
            return
        state.anchors = anchors
        self.repo.save(state)

    def anchor_payload(self) -> str:
        """The largest anchor for the safety-number QR code (alphanumeric mode):
        ":KT<size>:<first 8 bytes of its root, upper-case hex>", or nothing."""
        state = self.state()
        if state is None or not state.anchors:
            return ""
        size = max(state.anchors)
        return f":KT{size}:{state.anchors[size][:8].hex().upper()}"

    def anchors(self) -> list[str]:
        """The directory codes to compare on the safety-number screen, largest first."""
        state = self.state()
        if state is None:
            return []
        return [head_code(size, root) for size, root in sorted(state.anchors.items(),
                                                                 reverse=True)]

    def head_note(self) -> bytes | None:
        """Our newest verified head, as our texts carry it (19.8), or None."""
        return self.repo.head_note(self.server())

    async def gossip(self, conn: RelayConnection, sender: str, note: bytes) -> None:
        """Checks a contact's directory head against ours (19.8, `check_gossip`): our
        head is first brought up to at least the contact's size (KT_INFO), then the
        relay proves, on our own connection, what its log was at the contact's size.
        If that is not what it signed for the contact, the relay showed the two of us
        two directories: a fork alert with conclusive evidence, in that conversation."""
        if note in self._agreed_notes:
            return
        state = await self._pinned(conn)
        keys = self.keys(state)
        try:
            theirs = open_head(keys, note, cosigned=False)
        except ProtocolError as exc:  # another relay's head, or garbage: not ours to judge
            log.info("a contact's directory head is not this relay's: %s", exc)
            return
        if (theirs.size, theirs.root) in self._agreed:
            self._agreed_note(note)
            return
        head = open_head(keys, state.head_note, cosigned=False)
        if theirs.size > head.size:
            with relay_errors():
                info = await conn.kt_info()
            head = await self._advance(conn, state, info.checkpoint)
            if theirs.size > head.size:
                log.info("a contact saw a newer directory head than the relay shows us")
                return
        old_root: bytes | None = None
        proof: tuple[bytes, ...] = ()
        if 0 < theirs.size < head.size:
            with relay_errors():
                answer = await conn.kt_consistency(theirs.size, head.size)
            old_root, proof = answer.old_root, answer.proof
        try:
            check_gossip(keys, head, note, old_root, proof)
            self._agreed.add((theirs.size, theirs.root))
            self._agreed_note(note)
        except Fork as exc:
            path = self._write(exc.evidence)
            alert = self._alert(
                KtAlertKind.FORK, sender,
                f"ALERT: the relay showed {sender} a key directory that is not the one it "
                f"shows you (a split view): it signed two histories that cannot both be "
                f"true, so it can show each of you keys the other never sees. {exc}", path)
            self._warn(sender, alert)
        except ProtocolError as exc:
            log.info("a contact's directory head could not be checked: %s", exc)

    def _agreed_note(self, note: bytes) -> None:
        if len(self._agreed_notes) >= AGREED_NOTES:
            self._agreed_notes.clear()
        self._agreed_notes.add(note)

    # -- lookups

    async def lookup(self, conn: RelayConnection, name: str) -> Lookup:
        """KT_LOOKUP, its checkpoint advanced to first, its proof verified against it.
        Raises DirectoryRefused when anything does not verify."""
        state = await self._pinned(conn)
        with relay_errors():
            answer: KtLookupAnswer = await conn.kt_lookup(name)
        head = await self._advance(conn, state, answer.checkpoint)
        keys = self.keys(state)
        try:
            verified = verify_answer(answer.answer, name, keys.vrf_public_key,
                                     head.checkpoint(keys))
        except (ProtocolError, ValueError) as exc:
            raise self._refuse(KtAlertKind.BAD_PROOF, name,
                               f"the key directory's proof for {name} does not verify "
                               f"({exc}): the relay's answer cannot be trusted. (No "
                               "evidence file: an invalid proof is not signed by the "
                               "relay.)") from exc
        return Lookup(verified, answer.checkpoint, answer.answer)

    async def confirm(self, conn: RelayConnection, name: str, key: bytes,
                      warn: bool = True) -> Verified:
        """The directory must bind `name` to exactly `key` (the key the relay served).
        Raises DirectoryRefused (with an evidence file, and with `warn` a warning in
        `name`'s conversation) otherwise; NotConnected if the relay cannot be asked,
        RelayRefused if it refuses the lookup."""
        try:
            found = await self.lookup(conn, name)
        except DirectoryRefused as exc:
            if warn:
                self._warn(name, exc.alert)
            raise
        verified = found.verified
        bound = verified.identity
        if bound is not None and hmac.compare_digest(bound, key):
            self.confirmed[name] = verified
            return verified
        if bound is None:
            kind, what = KtAlertKind.NOT_IN_DIRECTORY, (
                f"the key directory has no key for {name} (the name is "
                f"{'deleted' if verified.binding is not None else 'not registered'} there)")
        else:
            kind, what = KtAlertKind.KEY_MISMATCH, (
                f"the key directory binds {name} to ANOTHER key "
                f"({safety_form(bound, name)}) than the one the relay served "
                f"({safety_form(key, name)})")
        state = self.state()
        assert state is not None
        evidence = binding_evidence(state.log_key, state.vrf_public_key, found.note, name,
                                    found.answer, f"the relay served this key for {name!r} "
                                    "in a key bundle or identity lookup", key)
        path = self._write(evidence)
        alert = self._refuse(kind, name, f"{what}. Someone may be intercepting your "
                             f"conversation with {name}: nothing is sent to or accepted "
                             "from that key.", path)
        if warn:
            self._warn(name, alert.alert)
        raise alert

    def describe(self, name: str, identity: bytes, previous: bytes | None) -> str:
        """What the directory says about `name`'s (new) key, for the key-change notice:
        a CHANGE signed by the previous key, or a RESET by the relay's operator."""
        verified = self.confirmed.get(name)
        if verified is None or verified.binding is None or verified.identity != identity:
            return ""
        binding = verified.binding
        if binding.kind is EntryKind.CHANGE:
            signed = previous is not None and _signed_by(name, binding, previous)
            by = ("signed by the key you knew" if signed
                  else "signed by an intermediate key you never saw")
            return (f"The key directory confirms the new key as a CHANGE {by} (version "
                    f"{binding.version}).")
        if binding.kind is EntryKind.RESET:
            return (f"The key directory confirms the new key, as a RESET by the relay's "
                    f"operator (version {binding.version}): {name}'s account was deleted "
                    "and registered again, and the old key did NOT sign the change.")
        return f"The key directory confirms the new key ({binding.kind.name})."

    # -- owner monitoring

    async def monitor(self, conn: RelayConnection) -> MonitorResult:
        """One pass over the log leaves appended since the last check (19.8)."""
        state = await self._pinned(conn)
        keys = self.keys(state)
        me, my_key = self.username(), self.identity()
        with relay_errors():
            own = await conn.kt_own()
            info = await conn.kt_info()
        try:
            label = label_of(keys.vrf_public_key, own.vrf_proof, me)
        except ProtocolError as exc:
            raise self._refuse(KtAlertKind.BAD_PROOF, me, "the relay's VRF proof of your own "
                               f"name does not verify ({exc})") from exc
        if info.log_key != state.log_key or info.vrf_public_key != state.vrf_public_key:
            await self.start(conn)  # raises the keys-changed alert
        head = await self._advance(conn, state, info.checkpoint)
        state = self.state() or state
        start, root = state.checked_size, state.checked_root
        if start is None:  # a profile registered before it knew the directory
            start = min((e.index for e in own.entries if _binds(e, label, my_key)), default=0)
        ranger: RangeVerifier | None = None
        mine: dict[int, LogEntry] = {}
        result = MonitorResult(start, head.size)
        try:
            position = start
            while position < head.size:
                count = min(MAX_RANGE, head.size - position)
                with relay_errors():
                    page = await conn.kt_entries(position, count)
                if page.start != position or len(page.entries) != count:
                    raise DecodeError(f"asked for entries {position}+{count}, got "
                                      f"{page.start}+{len(page.entries)}")
                if ranger is None:
                    expected = fold_frontier(page.frontier) if root is None else root
                    ranger = RangeVerifier(position, page.frontier, expected)
                for i, data in enumerate(page.entries):
                    entry = LogEntry.decode(data)
                    ranger.add(entry.leaf())
                    if hmac.compare_digest(entry.label, label):
                        mine[position + i] = entry
                position += count
            if ranger is not None:
                ranger.finish(head.size, head.root)
        except ProtocolError as exc:
            raise self._refuse(KtAlertKind.BAD_PROOF, me, "the directory's log entries do "
                               f"not match its signed heads ({exc})") from exc
        if any(i not in {e.index for e in own.entries} for i in mine):
            with relay_errors():
                own = await conn.kt_own()
        openings = {e.index: e for e in own.entries}
        foreign: list[str] = []
        for index, entry in sorted(mine.items()):
            result.own_leaves.append(index)
            problem = _not_ours(entry, openings.get(index), label, my_key)
            if problem is not None:
                foreign.append(f"entry {index}: {problem}")
        if foreign:
            result.alerts.append(await self._foreign(conn, me, foreign, label, mine))
        state.checked_size, state.checked_root = head.size, head.root
        self.repo.save(state)
        return result

    async def _foreign(self, conn: RelayConnection, me: str, problems: list[str],
                       label: bytes, mine: dict[int, LogEntry]) -> KtAlert:
        """Alert, with evidence: the first entry under our label that is not ours, with
        its inclusion proof against a signed head (19.9 "entry"); if the relay will not
        reveal it, a lookup of our own name showing what it binds now."""
        path = None
        testimony = "the owner did not make this binding (" + "; ".join(problems) + ")"
        try:
            with relay_errors():
                own = await conn.kt_own()
            head = await self._advance(conn, self.state() or self._must_state(), own.checkpoint)
            state = self._must_state()
            my_key = self.identity()
            revealed = {e.index: e for e in own.entries}
            for index, entry in sorted(mine.items()):
                opened = revealed.get(index)
                if opened is None or not opened.inclusion or \
                        _not_ours(entry, opened, label, my_key) is None:
                    continue
                path = self._write(entry_evidence(
                    state.log_key, state.vrf_public_key, head.note, me, own.vrf_proof,
                    index, entry.encode(), opened.inclusion, opened.opening, opened.value,
                    testimony))
                if path is not None:
                    break
            if path is None:
                found = await self.lookup(conn, me)
                path = self._write(binding_evidence(
                    state.log_key, state.vrf_public_key, found.note, me, found.answer,
                    testimony))
        except ClientError as exc:
            log.warning("no evidence for the foreign binding: %s", exc)
        alert = self._alert(
            KtAlertKind.FOREIGN_BINDING, me,
            f"ALERT: the key directory holds a binding for YOUR name {me} that this device "
            f"did not make ({'; '.join(problems)}). Someone (the relay's operator, or "
            "whoever controls it) may be giving others a key that is not yours.", path)
        return alert

    def _must_state(self) -> KtState:
        state = self.state()
        if state is None:
            raise DirectoryRefused(self._alert(KtAlertKind.BAD_PROOF, "",
                                               "the key directory is not pinned yet"))
        return state

    # -- alerts and evidence

    def _alert(self, kind: KtAlertKind, name: str, text: str,
               path: Path | None = None) -> KtAlert:
        if path is not None:
            text += f" Evidence: {path} ({CHECK_IT})."
        alert = KtAlert(kind, name, text, path)
        log.info("key directory alert: %s", text)  # views show it (KtAlert), loudly
        self.events.emit(alert)
        return alert

    def _refuse(self, kind: KtAlertKind, name: str, text: str,
                path: Path | None = None) -> DirectoryRefused:
        return DirectoryRefused(self._alert(kind, name, text, path))

    def _warn(self, name: str, alert: KtAlert) -> None:
        """The blocking warning in the conversation, where key-change warnings go."""
        if not name or name == self.username():
            return
        with self.store.transaction():
            self.history.notice(name, "KEY DIRECTORY WARNING: " + alert.text)
        self.events.flush()

    def _write(self, evidence: Evidence) -> Path | None:
        """Writes an evidence file, only if it holds up (verify_evidence)."""
        text = evidence.to_json()
        try:
            verify_evidence(text)
        except (ProtocolError, ValueError) as exc:
            log.warning("evidence that does not verify was not written: %s", exc)
            return None
        path = evidence_path(self.home, evidence.kind, self.clock())
        path.write_text(text, encoding="utf-8")
        return path


@dataclass
class AuditResult:
    """What `audit` established: entries checked, the head, and the first failure."""

    checked: int
    head: Head | None
    failure: str | None = None


async def audit(conn: RelayConnection) -> AuditResult:
    """What a third-party auditor does (19.9), with no account: the newest head from
    KT_INFO, every leaf from 0 in pages checked against it (RangeVerifier), and every
    leaf's prefix root replayed from the updates before it (audit_entries)."""
    info = await conn.kt_info()
    checked = 0
    head: Head | None = None
    try:
        keys = DirectoryKeys(parse_verifier_key(info.log_key).name, info.log_key,
                             info.vrf_public_key)
        head = open_head(keys, info.checkpoint)
        ranger = RangeVerifier(0, [], fold_frontier([]))
        tree = None
        while checked < head.size:
            count = min(MAX_RANGE, head.size - checked)
            page = await conn.kt_entries(checked, count)
            if page.start != checked or len(page.entries) != count:
                raise DecodeError(f"asked for entries {checked}+{count}, got "
                                  f"{page.start}+{len(page.entries)}")
            for data in page.entries:
                entry = LogEntry.decode(data)
                ranger.add(entry.leaf())
                try:
                    tree = audit_entries([entry], tree)
                except ProofError:
                    raise ProofError(f"entry {checked}'s prefix root does not follow from "
                                     "the updates before it") from None
                checked += 1
        ranger.finish(head.size, head.root)
    except ProtocolError as exc:
        return AuditResult(checked, head, str(exc))
    return AuditResult(checked, head)


def _binds(entry: OwnEntry, label: bytes, key: bytes) -> bool:
    try:
        binding = Binding.decode(entry.value)
    except DecodeError:
        return False
    return binding.identity is not None and hmac.compare_digest(binding.identity, key)


def _not_ours(entry: LogEntry, opening: OwnEntry | None, label: bytes, key: bytes
              ) -> str | None:
    """Why a leaf under our label is not a binding this profile made, or None."""
    if opening is None:
        return "the relay does not reveal what it binds"
    try:
        verify_commitment(entry.commitment, opening.opening, label, opening.value)
        binding = Binding.decode(opening.value)
    except (ProtocolError, ValueError):
        return "what the relay reveals for it does not open its commitment"
    if binding.identity is None:
        return f"a {binding.kind.name} of your name (version {binding.version})"
    if not hmac.compare_digest(binding.identity, key):
        return (f"a {binding.kind.name} binding your name to another key (version "
                f"{binding.version})")
    if binding.kind not in (EntryKind.REGISTER, EntryKind.RESET):
        return f"a {binding.kind.name} to your key that this device did not sign"
    return None


def _signed_by(name: str, binding: Binding, previous: bytes) -> bool:
    assert binding.identity is not None
    try:
        verify_signature(previous, binding.signature,
                         change_statement(name, binding.version, binding.identity))
    except Exception:
        return False
    return True

