"""A deliberately malicious relay, for the teaching demo and the tests ONLY.

`blindrelay serve` never imports this module (tests/test_layering.py checks that).
It shows what a relay operator who turns hostile can and cannot do:

- mitm-first-contact: hand Alice a bundle with the relay's own identity key in place
  of Bob's, and sit in the middle re-encrypting everything. Messages flow; the safety
  numbers differ on the two screens, and the key directory catches it (below).
- key-swap: claim, after Alice and Bob have talked, that Bob has a new identity key.
  Alice's client warns and sends nothing until she accepts; the directory catches it.
- tamper: flip bits in a ciphertext. Authentication fails; the next message is fine.
- replay: deliver an old envelope again. The ratchet rejects it as a duplicate.
- drop: acknowledge an envelope and throw it away. The message counters show the gap.
- keep-everything: keep a copy of every ciphertext, then "seize" Bob's device state and
  try to decrypt the copies with it. Forward secrecy: the earlier ones stay sealed.
- split-view: keep two key directories, signed with the same keys: a fork shown to
  Alice, in which Carol registered with the relay's key, and the real one shown to
  everyone else (Carol included, so her own monitoring sees nothing wrong). Caught by
  gossip: Bob's messages carry his newest checkpoint, and the two cannot both be true.

A hostile relay can also forge sender certificates (docs/PROTOCOL.md 20): it holds
the certificate key, so whatever it seals "from" a victim carries a certificate that
verifies, binding the victim's name to the relay's fake key. That is the point of the
key directory: the recipient checks the certificate's key there too.

With key transparency (docs/PROTOCOL.md 19) the two key lies each have two versions,
and both are caught: the relay either does not log its fake key in the directory, and
the client's lookup at first contact (or at the key change) refuses it, or it logs
the key as an operator RESET so that the lookup verifies, and the victim's own client,
watching its name in the directory, finds a binding it never made (`cover_up`).

Unlike the real relay, the attacker here has to do cryptography (it plays a client to
each side), so it imports the session code. That is exactly the point: an honest relay
has no such code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client.sanitize import one_line
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    X25519KeyPair,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import PrivatePrekeys, Session
from protocol.wire.certificates import issue
from protocol.wire.connection import RequestRefused, check_send
from protocol.wire.errors import LocalProtocolError, ProtocolError
from protocol.wire.frames import (
    Bundle,
    ErrorCode,
    Frame,
    GroupSend,
    KtConsistency,
    KtConsistencyProof,
    KtEntries,
    KtEntryRange,
    KtInfo,
    KtInfoAnswer,
    KtLookup,
    KtLookupAnswer,
    KtOwn,
    KtOwnEntries,
    OwnEntry,
    SealedSend,
    Send,
    Sent,
)
from protocol.wire.kt.directory import Directory, EntryKind
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from server.relay import Connection, Relay
from server.storage import DirectoryUpdate, StoredEnvelope
from server.witnessing import Witnesses
from teaching.names import HostileAct, Scenario


@dataclass
class FakeIdentity:
    """A client identity the attacker makes up, with the private prekeys behind it."""

    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    prekeys: dict[tuple[str, int], X25519KeyPair | KemKeyPair] = field(default_factory=dict)

    def bundle(self) -> PreKeyBundle:
        spk_pair, spk = make_signed_prekey(self.identity, 1)
        kem_pair, kem = make_kem_prekey(self.identity, 1)
        opk_pair, opk = make_one_time_prekey(1)
        self.prekeys = {("spk", 1): spk_pair, ("kem", 1): kem_pair, ("opk", 1): opk_pair}
        return PreKeyBundle(self.identity.public, spk, KemKind.ONE_TIME, kem, opk)

    def lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        spk = self.prekeys[("spk", msg.signed_prekey_id)]
        kem = self.prekeys[("kem", msg.kem_prekey_id)]
        opk = None if msg.one_time_prekey_id is None else \
            self.prekeys[("opk", msg.one_time_prekey_id)]
        assert isinstance(spk, X25519KeyPair) and isinstance(kem, KemKeyPair)
        assert opk is None or isinstance(opk, X25519KeyPair)
        return PrivatePrekeys(spk, kem, opk)


@dataclass
class Kept:
    recipient: str
    body: bytes
    received_at: int


@dataclass
class KeptGroupMessage:
    """A group message the relay kept a copy of, and what it could read of it: its
    cleartext header (protocol/wire/mls_header.py) and whom the sender named."""

    sender: str
    recipients: tuple[str, ...]
    body: bytes
    group_id: bytes
    epoch: int
    commit: bool


KT_FRAMES = (KtInfo, KtConsistency, KtLookup, KtEntries, KtOwn)
"""The key directory's requests (PROTOCOL.md 19.10): a split view answers them per
connection."""


class SplitView:
    """A fork of the relay's directory, shown to `victims` only.

    Same log signing key and VRF key as the real one (so every signature and proof in
    it verifies), the same history up to the moment of the fork, and after it: every
    update the real directory gains is copied in (new users appear in both views),
    except that the names in `fakes` are bound to the relay's keys instead. Each view
    is consistent on its own; the two cannot both be true, and that is what gossip
    between a victim and someone shown the real view proves."""

    def __init__(self, honest: Directory, victims: frozenset[str],
                 fakes: dict[str, bytes]) -> None:
        self.honest = honest
        self.victims = victims
        self.fakes = fakes
        self.fork = Directory(honest.signer, honest.vrf_secret)
        for update in honest.updates:
            self.fork.append(update.username, update.binding, update.opening)
        self.base = honest.size
        """Entries both views share: the fork point."""
        self.copied = honest.size
        for name in fakes:  # a name already bound: the fork re-binds it, as a RESET
            if self.fork.current(name) is not None:
                self._bind_fake(name)

    def _bind_fake(self, name: str) -> None:
        self.fork.append(name, self.fork.next_binding(name, self.fakes[name]),
                         os.urandom(16))

    def view(self) -> Directory:
        """The fork, brought up to date with what the real directory gained since."""
        for update in self.honest.updates[self.copied:]:
            self.copied += 1
            name = update.username
            try:
                if name in self.fakes and update.binding.kind is not EntryKind.DELETE:
                    self._bind_fake(name)
                else:
                    self.fork.append(name, update.binding, update.opening)
            except LocalProtocolError:
                continue  # the real name moved on in a way the fork cannot follow
        return self.fork


class HostileRelay(Relay):
    """A Relay with one hostile behaviour switched on. `narrate` receives one plain
    sentence per thing it does, for the demo's status line."""

    def __init__(self, *args: Any, behaviour: Scenario,
                 narrate: Callable[[str], None] | None = None, cover_up: bool = True,
                 witnessed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.narrate = narrate or (lambda _s: None)
        self.marks: list[Callable[[HostileAct], None]] = []
        """Observers of what it does that an honest relay never does (the demo marks
        each in its relay pane)."""
        self.cover_up = cover_up
        """Whether the relay logs its fake keys in the key directory (as RESETs)."""
        self.witnessed = witnessed
        """split-view: the victim's client requires a witness's cosignature."""
        self.split: SplitView | None = None
        self._fork_signed = 0
        self._fork_note: tuple[int, bytes] | None = None
        self.logged: list[tuple[str, int]] = []
        """(name, log index) of every fake binding the relay logged in the real view."""
        self.opened: list[tuple[str, str, bytes]] = []
        """(sender, meant for, plaintext) of what the relay decrypted."""
        self.kept: list[Kept] = []
        self.kept_group: list[KeptGroupMessage] = []
        self.delivered: dict[str, list[bytes]] = {}
        self.tamper_next: str | None = None
        self.drop_next: str | None = None
        # man in the middle: the identity it shows each victim, and its sessions
        self.victims: tuple[str, str] | None = None
        self.fakes: dict[str, FakeIdentity] = {}
        self.sessions: dict[str, Session] = {}
        # (who asks, about whom) -> the identity key the relay lies with
        self.lies: dict[tuple[str, str], bytes] = {}
        self.forged: set[tuple[str, bytes]] = set()
        """(name, identity key) of every sender certificate the relay forged."""

    def mark(self, kind: str, what: str) -> None:
        for observer in self.marks:
            observer(HostileAct(kind, what))

    # -- hooks on the honest relay's behaviour

    async def _lookup_identity(self, username: str, requester: str) -> bytes:
        lie = self.lies.get((requester, username))
        if lie is None:
            return await super()._lookup_identity(username, requester)
        self.narrate(f"{requester.capitalize()}'s client asked the relay for "
                     f"{username.capitalize()}'s identity key; the relay answered with "
                     "its own fake key.")
        self.mark("FAKE KEY", f"as {username}'s identity key, to {requester}")
        return lie

    async def _fetch_bundle(self, username: str, requester: str) -> Bundle:
        if self.behaviour is Scenario.MITM_FIRST_CONTACT and self.victims == (requester,
                                                                               username):
            fake = self.fakes.setdefault(username, FakeIdentity())
            self.lies[(requester, username)] = fake.identity.public
            self.lies[(username, requester)] = self.fakes.setdefault(
                requester, FakeIdentity()).identity.public
            self.narrate(f"The relay answered {requester}'s request for {username}'s key "
                         f"bundle with a bundle of its OWN identity key.")
            self.mark("FAKE KEY", f"its own bundle as {username}'s, to {requester}")
            if self.cover_up:
                await self.log_fake_key(username, fake.identity.public, requester)
                await self.log_fake_key(requester, self.fakes[requester].identity.public,
                                        username)
            else:
                self.narrate("The relay did NOT log the fake key in the key directory: "
                             "the directory still binds the real key.")
            return Bundle(fake.bundle().encode())
        split = self.split
        if split is not None and requester in split.victims and username in split.fakes:
            fake = self.fakes[username]
            self.lies[(requester, username)] = fake.identity.public
            self.narrate(f"The relay answered {requester}'s request for {username}'s key "
                         "bundle with a bundle of its OWN identity key, the one its fork "
                         f"of the directory shows {requester}.")
            self.mark("FAKE KEY", f"its own bundle as {username}'s, to {requester}")
            return Bundle(fake.bundle().encode())
        return await super()._fetch_bundle(username, requester)

    # -- the key directory

    async def log_fake_key(self, username: str, identity: bytes, victim: str) -> None:
        """Appends a RESET of `username` to the relay's fake key in the REAL directory,
        the one everyone is shown: the only way a lookup proof for the fake key can
        verify without a split view."""
        async def store(update: DirectoryUpdate) -> None:
            await self.storage.append_directory_updates([update])

        await self._update_directory(username, identity, store)
        self._published()
        index = self.directory.size - 1
        binding = self.directory.updates[index].binding
        self.logged.append((username, index))
        self.mark("FAKE KEY", f"logged: RESET of {username}, entry {index}")
        self.narrate(f"To get past {victim.capitalize()}'s client, which checks every key "
                     "against the key directory, the relay LOGGED its fake key: entry "
                     f"{index} says the operator RESET {username}'s account (version "
                     f"{binding.version}). That entry is public, forever, and it is "
                     f"exactly what {username.capitalize()}'s client watches.")

    def start_split_view(self, victim: str, target: str) -> SplitView:
        """From now on `victim` is shown a fork in which `target` is bound to a key the
        relay holds; everyone else the real directory."""
        fake = self.fakes.setdefault(target, FakeIdentity())
        self.split = SplitView(self.directory, frozenset({victim}),
                               {target: fake.identity.public})
        self._fork_signed = self.split.fork.size
        self.narrate(f"The relay forked its key directory at {self.split.base} entries: "
                     f"{victim.capitalize()} will be shown a copy, signed with the same "
                     f"key, in which {target.capitalize()} is bound to the relay's key; "
                     "everyone else sees the real one.")
        return self.split

    async def _carry_out(self, conn: Connection, frame: Frame) -> Frame:
        split = self.split
        user = conn.username
        if split is not None and user in split.victims and isinstance(frame, KT_FRAMES):
            assert user is not None
            view = split.view()
            if view.size != self._fork_signed:
                self._fork_signed = view.size
                self._narrate_fork(view, user)
            return self._kt_answer(view, await self._view_note(view), frame, user)
        return await super()._carry_out(conn, frame)

    async def _view_note(self, view: Directory) -> bytes:
        """The checkpoint served with a view: the real one (with its witnesses'
        cosignatures) while the fork has not diverged, else the fork's own, which the
        relay tries to have cosigned by the same witnesses."""
        real = self.directory
        if view.size == real.size and view.log.root() == real.log.root():
            return self.head_note()
        if self._fork_note is not None and self._fork_note[0] == view.size:
            return self._fork_note[1]
        note = view.checkpoint()
        if self.witnesses.urls:
            attempt = Witnesses(self.witnesses.urls, self.witnesses.timeout)
            await attempt.publish(view)
            cosigned = attempt.note(view)
            if cosigned == note:
                self.narrate(f"The relay asked the witness to cosign its fork checkpoint of "
                             f"{view.size} entries: REFUSED, because the witness already "
                             "cosigned another head of that size. A witness cosigns one "
                             "history only.")
            note = cosigned
        self._fork_note = (view.size, note)
        return note

    def _narrate_fork(self, view: Directory, user: str) -> None:
        """The fork's checkpoints are published too, to its victims only."""
        real = self.directory
        size = view.size
        other = (f"the real directory's checkpoint of {size} entries has root "
                 f"{real.log.root(size).hex()[:8]}" if real.size >= size else
                 f"the real directory has {real.size} entries")
        self.narrate(f"The relay signed a FORK checkpoint for {user.capitalize()}'s eyes "
                     f"only: {size} entries, root {view.log.root().hex()[:8]}; {other}. "
                     "Same signing key: both verify, and both are the relay's word.")

    def _kt_answer(self, view: Directory, note: bytes, frame: Frame, user: str) -> Frame:
        """The KT answers (PROTOCOL.md 19.10), from the view this user is shown, with
        `note` its checkpoint as served."""
        if isinstance(frame, KtInfo):
            return KtInfoAnswer(view.signer.verifier.encode(), view.vrf_public_key, note)
        if isinstance(frame, KtConsistency):
            old, new = frame.old_size, frame.new_size
            if not 0 < old <= new <= view.size:
                raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                     f"the log has {view.size} entries")
            return KtConsistencyProof(view.log.root(old), tuple(view.consistency(old, new)))
        if isinstance(frame, KtLookup):
            if not self.lookups.take(user, self.monotonic()):
                raise RequestRefused(ErrorCode.RATE_LIMITED, "too many lookups")
            if self.split is not None and frame.username in self.split.fakes:
                self.narrate(f"{user.capitalize()}'s client looked up "
                             f"{frame.username.capitalize()} in the key directory; the "
                             "relay answered from its FORK (the proof itself verifies "
                             "against the fork's checkpoint).")
            return KtLookupAnswer(note, view.lookup(frame.username).encode())
        if isinstance(frame, KtEntries):
            start = frame.start
            if start > view.size:
                raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                     f"the log has {view.size} entries")
            end = min(view.size, start + frame.count)
            return KtEntryRange(start, tuple(view.frontier(start)),
                                tuple(e.encode() for e in view.entries[start:end]))
        assert isinstance(frame, KtOwn)
        size = view.size  # the proofs are against this checkpoint
        return KtOwnEntries(note, view.label(user)[1],
                            tuple(OwnEntry(i, opening, value,
                                           tuple(view.log.inclusion_proof(i, size)))
                                  for i, opening, value in view.owned(user)))

    async def _group_send(self, frame: GroupSend, sender: str) -> Sent:
        """The groups scenario: a curious relay keeps a copy of every group message and
        says what it could read of it (all it can: the header and the recipients)."""
        if self.behaviour is Scenario.GROUPS:
            header = frame.header
            kind = ("a Welcome" if not header.group_id else
                    "a commit" if header.is_commit else "a message or proposal")
            self.kept_group.append(KeptGroupMessage(
                sender, frame.recipients, frame.message, header.group_id, header.epoch,
                header.is_commit))
            where = (f"group {header.group_id.hex()[:8]}…, epoch {header.epoch}"
                     if header.group_id else "no group id (a Welcome hides it)")
            self.narrate(f"Relay saw: {sender} → {', '.join(frame.recipients)}: {kind}, "
                         f"{where}, {len(frame.message)} bytes. Kept a copy.")
            self.mark("KEPT", f"group: {sender} → {len(frame.recipients)}, "
                              f"{len(frame.message)} B")
        return await super()._group_send(frame, sender)

    async def _send(self, frame: Send, sender: str) -> Sent:
        self._check_send(frame)
        return Sent(tuple(await self._take(
            [(out.recipient, out.body) for out in frame.envelopes], sender)))

    async def _sealed_send(self, frame: SealedSend) -> Sent:
        """Sealed envelopes (PROTOCOL.md 16.10) go through the same tricks. The relay
        has no sender for them, and this one does not even check capabilities; but
        where it can open the seal (one sealed to a fake key of its own, as in the man
        in the middle) it reads the sender's name inside, as any relay in the middle
        could."""
        check_send(frame, self.limits)
        return Sent(tuple(await self._take(
            [(out.recipient, out.body) for out in frame.envelopes], None)))

    def _sender_inside(self, recipient: str, body: bytes) -> str | None:
        """The sender named inside an envelope sealed to the relay's fake key for
        `recipient` (None: it is not)."""
        fake = self.fakes.get(recipient)
        if fake is None:
            return None
        try:
            return unseal(fake.identity, body).sender
        except ProtocolError:
            return None

    async def _take(self, envelopes: list[tuple[str, bytes]], sender: str | None
                    ) -> list[bytes]:
        ids: list[bytes] = []
        for recipient, body in envelopes:
            # a sealed send names no sender, unless the seal is one of the relay's own
            sender_here = self._sender_inside(recipient, body) if sender is None else sender
            who = sender_here or "a sealed sender"
            if self.behaviour is Scenario.KEEP_EVERYTHING:
                self.kept.append(Kept(recipient, body, int(self.clock())))
                self.narrate(f"The relay secretly kept a copy of an envelope for "
                             f"{recipient} ({len(body)} bytes); {len(self.kept)} kept.")
                self.mark("KEPT", f"a copy: to {recipient}, {len(body)} B")
            if self.drop_next == recipient:
                self.drop_next = None
                ids.append(os.urandom(16))  # the sender is told it was stored
                self.narrate(f"The relay acknowledged {who}'s envelope and silently "
                             "threw it away.")
                self.mark("DROPPED", f"to {recipient}, {len(body)} B, thrown away")
                continue
            if self.tamper_next == recipient:
                self.tamper_next = None
                index = len(body) // 2
                body = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1:]
                self.narrate(f"The relay flipped one bit in byte {index} of the envelope "
                             f"for {recipient}.")
                self.mark("TAMPERED", f"to {recipient}, {len(body)} B, 1 bit flipped")
            if sender_here is not None and self.behaviour is Scenario.MITM_FIRST_CONTACT \
                    and self.victims is not None and recipient in self.fakes_for(sender_here):
                body = await self._relay_through(sender_here, recipient, body)
            split = self.split
            if split is not None and sender_here is not None \
                    and sender_here in split.victims and recipient in split.fakes \
                    and self._open(sender_here, recipient, body) is not None:
                ids.append(os.urandom(16))  # kept, not forwarded: see split_view
                self.mark("KEPT", f"{sender_here} to {recipient}: read, not sent on")
                self.narrate(f"The relay kept {sender_here}'s message to {recipient} "
                             "instead of forwarding it: re-encrypting it for the real "
                             f"{recipient.capitalize()} would need a fake "
                             f"'{sender_here}' key, which {recipient.capitalize()}'s client "
                             "would look up in the real directory.")
                continue
            self.delivered.setdefault(recipient, []).append(body)
            (env,) = await self.store_and_push([(recipient, body)])
            ids.append(env.envelope_id)
        return ids

    # -- what a scenario switches on

    def arm_tamper(self, recipient: str) -> None:
        self.tamper_next = recipient

    def arm_drop(self, recipient: str) -> None:
        self.drop_next = recipient

    async def replay(self, recipient: str, index: int = -1) -> StoredEnvelope:
        """Delivers an envelope the recipient already got, again, under a new id."""
        body = self.delivered[recipient][index]
        (env,) = await self.store_and_push([(recipient, body)])
        self.narrate(f"The relay delivered an old envelope to {recipient} a second time.")
        self.mark("REPLAYED", f"old envelope to {recipient}, {len(body)} B")
        return env

    async def claim_new_key(self, victim: str, impersonated: str, text: str) -> None:
        """key-swap: starts a session with `victim` as if from `impersonated`, under an
        identity key the relay made up, and sends one message."""
        fake = self.fakes.setdefault(impersonated, FakeIdentity())
        self.lies[(victim, impersonated)] = fake.identity.public
        if self.cover_up:
            await self.log_fake_key(impersonated, fake.identity.public, victim)
        else:
            self.narrate("The relay did NOT log the new key in the key directory: the "
                         f"directory still binds {impersonated}'s real key.")
        parts = await self.storage.take_bundle(victim)
        bundle = _bundle(parts.identity, parts.signed_prekey, parts.kem_kind,
                         parts.kem_prekey, parts.one_time_prekey)
        session = Session.initiate(fake.identity, bundle)
        body = self._seal_text(session, impersonated, fake.identity.public, bundle.identity,
                               text)
        await self.store_and_push([(victim, body)])
        self.narrate(f"The relay told {victim} that {impersonated} has a new identity key, "
                     "with a message signed by nobody but the relay.")
        self.mark("FAKE KEY", f"new key for {impersonated}, to {victim}")

    # -- man in the middle

    def start_mitm(self, alice: str, bob: str) -> None:
        self.victims = (alice, bob)

    def fakes_for(self, sender: str) -> set[str]:
        assert self.victims is not None
        alice, bob = self.victims
        return {bob} if sender == alice else {alice} if sender == bob else set()

    async def _relay_through(self, sender: str, recipient: str, body: bytes) -> bytes:
        """Opens what `sender` sealed to the fake `recipient` key, decrypts it in the
        relay's session with `sender`, and re-encrypts it in the relay's session with
        the real `recipient`, posing as `sender` under a fake identity key."""
        fake_sender = self.fakes.setdefault(sender, FakeIdentity())
        plaintext = self._open(sender, recipient, body)
        if plaintext is None:
            return body  # not sealed to a fake key: pass it on untouched
        self.narrate(f"The relay decrypted {sender}'s message with the fake key it gave "
                     f"out for {recipient} and read {len(plaintext)} bytes of plaintext: "
                     f"{readable(plaintext)}. It re-encrypted them to the real {recipient}.")
        self.mark("READ", f"{sender} to {recipient}: {len(plaintext)} B plaintext")
        outbound = self.sessions.get(recipient)
        if outbound is None:
            parts = await self.storage.take_bundle(recipient)
            bundle = _bundle(parts.identity, parts.signed_prekey, parts.kem_kind,
                             parts.kem_prekey, parts.one_time_prekey)
            outbound = Session.initiate(fake_sender.identity, bundle)
            self.sessions[recipient] = outbound
        real_identity = await self.storage.identity(recipient)
        assert real_identity is not None
        kind, message = outbound.encrypt(plaintext)
        return seal(real_identity, SealedContent(
            self.forge_certificate(sender, fake_sender.identity.public), kind, message))

    def forge_certificate(self, username: str, identity: bytes) -> bytes:
        """A sender certificate binding `username` to a key the relay chose, signed with
        the relay's own certificate key: it verifies like any other (PROTOCOL.md 20).
        Only the key directory tells it apart."""
        if (username, identity) not in self.forged:
            self.mark("FAKE CERTIFICATE", f"{username} bound to the relay's key")
            self.narrate(f"The relay issued itself a sender certificate saying that "
                         f"{username.capitalize()}'s identity key is its own fake key: it "
                         "holds the certificate key, so the certificate verifies.")
        self.forged.add((username, identity))
        return issue(self._cert_sign, username, identity,
                     int(self.clock()) + self.certificate_lifetime)

    def _open(self, sender: str, recipient: str, body: bytes) -> bytes | None:
        """The plaintext of what `sender` sealed to the relay's fake key for
        `recipient`, decrypted in the relay's session with `sender` (None: not sealed
        to a fake key)."""
        fake_recipient = self.fakes.get(recipient)
        if fake_recipient is None:
            return None
        try:
            content = unseal(fake_recipient.identity, body)
        except ProtocolError:
            return None
        inbound = self.sessions.get(sender)
        if content.kind is MessageKind.PREKEY and (
                inbound is None
                or inbound.base_key != PreKeyMessage.decode(content.message).ephemeral):
            inbound, plaintext, _ = Session.respond(fake_recipient.identity, content.message,
                                                    fake_recipient.lookup)
            self.sessions[sender] = inbound
        else:
            if inbound is None:
                return None
            plaintext = inbound.decrypt(content.kind, content.message)
        self.opened.append((sender, recipient, plaintext))
        return plaintext

    def _seal_text(self, session: Session, sender: str, sender_identity: bytes,
                   recipient_identity: bytes, text: str) -> bytes:
        from protocol.e2e.content import Text

        plaintext = Text(os.urandom(16), int(self.clock() * 1000), text).encode()
        kind, message = session.encrypt(plaintext)
        return seal(recipient_identity, SealedContent(
            self.forge_certificate(sender, sender_identity), kind, message))


def readable(plaintext: bytes) -> str:
    """What a decrypted message says, as the narration shows it: a text in quotes, or
    which kind of content it is (a receipt, say)."""
    from protocol.e2e.content import Text, decode_gossiped

    try:
        item, _head = decode_gossiped(plaintext)
    except ProtocolError:
        return "content it could not parse"
    if isinstance(item, Text):
        return f"the text “{one_line(item.text)}”"
    return f"a {type(item).__name__}"


def _bundle(identity: bytes, spk: bytes, kind: KemKind, kem: bytes,
            opk: bytes | None) -> PreKeyBundle:
    return PreKeyBundle(identity, SignedPreKey.decode(spk), kind, KemPreKey.decode(kem),
                        None if opk is None else OneTimePreKey.decode(opk))
