"""A deliberately malicious relay, for the teaching demo and the tests ONLY.

`blindrelay serve` never imports this module (tests/test_layering.py checks that).
It shows what a relay operator who turns hostile can and cannot do:

- mitm-first-contact: hand Alice a bundle with the relay's own identity key in place
  of Bob's, and sit in the middle re-encrypting everything. Messages flow; only the
  safety numbers (which differ on the two screens) reveal it.
- key-swap: claim, after Alice and Bob have talked, that Bob has a new identity key.
  Alice's client warns and sends nothing until she accepts.
- tamper: flip bits in a ciphertext. Authentication fails; the next message is fine.
- replay: deliver an old envelope again. The ratchet rejects it as a duplicate.
- drop: acknowledge an envelope and throw it away. The message counters show the gap.
- keep-everything: keep a copy of every ciphertext, then "seize" Bob's device state and
  try to decrypt the copies with it. Forward secrecy: the earlier ones stay sealed.

Unlike the real relay, the attacker here has to do cryptography (it plays a client to
each side), so it imports the session code. That is exactly the point: an honest relay
has no such code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import Bundle, Send, Sent
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from server.relay import Relay
from server.storage import StoredEnvelope
from teaching.names import Scenario


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


class HostileRelay(Relay):
    """A Relay with one hostile behaviour switched on. `narrate` receives one plain
    sentence per thing it does, for the demo's status line."""

    def __init__(self, *args: Any, behaviour: Scenario,
                 narrate: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.narrate = narrate or (lambda _s: None)
        self.kept: list[Kept] = []
        self.delivered: dict[str, list[bytes]] = {}
        self.tamper_next: str | None = None
        self.drop_next: str | None = None
        # man in the middle: the identity it shows each victim, and its sessions
        self.victims: tuple[str, str] | None = None
        self.fakes: dict[str, FakeIdentity] = {}
        self.sessions: dict[str, Session] = {}
        # (who asks, about whom) -> the identity key the relay lies with
        self.lies: dict[tuple[str, str], bytes] = {}

    # -- hooks on the honest relay's behaviour

    async def _lookup_identity(self, username: str, requester: str) -> bytes:
        lie = self.lies.get((requester, username))
        if lie is None:
            return await super()._lookup_identity(username, requester)
        self.narrate(f"{requester.capitalize()}'s client asked the relay for "
                     f"{username.capitalize()}'s identity key; the relay answered with "
                     "its own fake key.")
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
            return Bundle(fake.bundle().encode())
        return await super()._fetch_bundle(username, requester)

    async def _send(self, frame: Send, sender: str) -> Sent:
        self._check_send(frame)
        ids: list[bytes] = []
        for out in frame.envelopes:
            body = out.body
            if self.behaviour is Scenario.KEEP_EVERYTHING:
                self.kept.append(Kept(out.recipient, body, int(self.clock())))
                self.narrate(f"The relay secretly kept a copy of an envelope for "
                             f"{out.recipient} ({len(body)} bytes); {len(self.kept)} kept.")
            if self.drop_next == out.recipient:
                self.drop_next = None
                ids.append(os.urandom(16))  # the sender is told it was stored
                self.narrate(f"The relay acknowledged {sender}'s envelope and silently "
                             "threw it away.")
                continue
            if self.tamper_next == out.recipient:
                self.tamper_next = None
                index = len(body) // 2
                body = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1:]
                self.narrate(f"The relay flipped one bit in byte {index} of the envelope "
                             f"for {out.recipient}.")
            if self.behaviour is Scenario.MITM_FIRST_CONTACT and self.victims is not None \
                    and out.recipient in self.fakes_for(sender):
                body = await self._relay_through(sender, out.recipient, body)
            self.delivered.setdefault(out.recipient, []).append(body)
            (env,) = await self.store_and_push([(out.recipient, body)])
            ids.append(env.envelope_id)
        return Sent(tuple(ids))

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
        return env

    async def claim_new_key(self, victim: str, impersonated: str, text: str) -> None:
        """key-swap: starts a session with `victim` as if from `impersonated`, under an
        identity key the relay made up, and sends one message."""
        fake = self.fakes.setdefault(impersonated, FakeIdentity())
        self.lies[(victim, impersonated)] = fake.identity.public
        parts = await self.storage.take_bundle(victim)
        bundle = _bundle(parts.identity, parts.signed_prekey, parts.kem_kind,
                         parts.kem_prekey, parts.one_time_prekey)
        session = Session.initiate(fake.identity, bundle)
        body = self._seal_text(session, impersonated, bundle.identity, text)
        await self.store_and_push([(victim, body)])
        self.narrate(f"The relay told {victim} that {impersonated} has a new identity key, "
                     "with a message signed by nobody but the relay.")

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
        fake_recipient = self.fakes.setdefault(recipient, FakeIdentity())
        fake_sender = self.fakes.setdefault(sender, FakeIdentity())
        try:
            content = unseal(fake_recipient.identity, body)
        except ProtocolError:
            return body  # not sealed to a fake key: pass it on untouched
        inbound = self.sessions.get(sender)
        if content.kind is MessageKind.PREKEY and (
                inbound is None
                or inbound.base_key != PreKeyMessage.decode(content.message).ephemeral):
            inbound, plaintext, _ = Session.respond(fake_recipient.identity, content.message,
                                                    fake_recipient.lookup)
            self.sessions[sender] = inbound
        else:
            if inbound is None:
                return body
            plaintext = inbound.decrypt(content.kind, content.message)
        self.narrate(f"The relay decrypted {sender}'s message with the fake key it gave "
                     f"out for {recipient}, read {len(plaintext)} bytes of plaintext, and "
                     f"re-encrypted it to the real {recipient}.")
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
        return seal(real_identity, SealedContent(sender, kind, message))

    def _seal_text(self, session: Session, sender: str, recipient_identity: bytes,
                   text: str) -> bytes:
        from protocol.e2e.content import Text

        plaintext = Text(os.urandom(16), int(self.clock() * 1000), text).encode()
        kind, message = session.encrypt(plaintext)
        return seal(recipient_identity, SealedContent(sender, kind, message))


def _bundle(identity: bytes, spk: bytes, kind: KemKind, kem: bytes,
            opk: bytes | None) -> PreKeyBundle:
    return PreKeyBundle(identity, SignedPreKey.decode(spk), kind, KemPreKey.decode(kem),
                        None if opk is None else OneTimePreKey.decode(opk))
