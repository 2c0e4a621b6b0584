"""The kit's own users: peers the client under test talks to, played with
protocol.e2e (conformance may import it; it never imports client/). A peer holds an
identity and prekeys, opens what the client sends it, and crafts what it sends the
client: honest messages, and the forged, replayed, far-ahead or booby-trapped ones
the checks need."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from protocol.e2e.content import Capability, Text, decode_gossiped
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
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey


@dataclass
class Peer:
    name: str
    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    sessions: dict[str, Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._spk_pair, self.signed_prekey = make_signed_prekey(self.identity, 1)
        self._kem_pair, self.last_resort = make_kem_prekey(self.identity, 1)
        self._opk_pair, self.one_time = make_one_time_prekey(1)

    def prekeys(self) -> tuple[SignedPreKey, KemPreKey, list[OneTimePreKey]]:
        return self.signed_prekey, self.last_resort, [self.one_time]

    def bundle(self) -> PreKeyBundle:
        return PreKeyBundle(self.identity.public, self.signed_prekey, KemKind.LAST_RESORT,
                            self.last_resort, self.one_time)

    def _lookup(self, msg: PreKeyMessage) -> PrivatePrekeys:
        if msg.signed_prekey_id != 1 or msg.kem_prekey_id != 1:
            raise ProtocolError("unknown prekey")
        opk: X25519KeyPair | None = self._opk_pair if msg.one_time_prekey_id == 1 else None
        kem: KemKeyPair = self._kem_pair
        return PrivatePrekeys(self._spk_pair, kem, opk)

    # -- receiving what the client sent

    def open(self, body: bytes) -> tuple[str, str | None]:
        """(claimed sender, the text) of an envelope sent to this peer; text None for
        anything but a text message (a receipt). ProtocolError if it does not open."""
        content = unseal(self.identity, body)
        session = self.sessions.get(content.sender)
        if content.kind is MessageKind.PREKEY and (
                session is None
                or session.base_key != PreKeyMessage.decode(content.message).ephemeral):
            session, plaintext, _ = Session.respond(self.identity, content.message,
                                                    self._lookup)
            self.sessions[content.sender] = session
        elif session is None:
            raise ProtocolError("no session with the sender")
        else:
            plaintext = session.decrypt(content.kind, content.message)
        item, _ = decode_gossiped(plaintext)
        return content.sender, item.text if isinstance(item, Text) else None

    # -- sending to the client

    def start(self, to: str, bundle: PreKeyBundle) -> Session:
        """A new session with `to` (its bundle from the relay); replaces the old one."""
        session = Session.initiate(self.identity, bundle)
        self.sessions[to] = session
        return session

    def text(self, to: str, recipient_identity: bytes, text: str, certificate: bytes,
             session: Session | None = None) -> bytes:
        """An envelope carrying `text` in the session with `to`, sealed with the
        sender certificate `certificate` (PROTOCOL.md 20: this peer's own, as the relay
        issued it, or whichever one a check forges with)."""
        session = session or self.sessions[to]
        plaintext = Text(os.urandom(16), int(time.time() * 1000), text).encode()
        kind, message = session.encrypt(plaintext)
        return seal(recipient_identity, SealedContent(certificate, kind, message))

    def capability(self, to: str, recipient_identity: bytes, capability: bytes,
                   certificate: bytes) -> bytes:
        """An envelope giving `to` this peer's delivery capability (content kind
        CAPABILITY, PROTOCOL.md 9.1) in the session with `to`, sealed with the sender
        certificate `certificate`."""
        kind, message = self.sessions[to].encrypt(Capability(capability).encode())
        return seal(recipient_identity, SealedContent(certificate, kind, message))

    def skip(self, to: str, count: int) -> None:
        """Advances the session with `to` by `count` messages that are never sent."""
        session = self.sessions[to]
        for _ in range(count):
            session.encrypt(b"")
