"""A pairwise session: PQXDH setup, the Double Ratchet, padding, and what the
initiator repeats until the first reply (PQXDH section 4, "Double Ratchet").

Sans-I/O: the caller stores the serialised session and the prekeys, and deletes
one-time prekeys after `respond` succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.e2e import padding, pqxdh
from protocol.e2e.errors import DecryptionFailed, SessionSetupError
from protocol.e2e.keys import (
    ENCODED_ED25519_LEN,
    TYPE_ED25519,
    IdentityKeyPair,
    KemKeyPair,
    Rng,
    X25519KeyPair,
    decode_key,
    default_rng,
    encode_key,
    kem_encapsulate,
)
from protocol.e2e.messages import PreKeyMessage
from protocol.e2e.ratchet import Ratchet
from protocol.e2e.sealed import MessageKind
from protocol.wire import codec
from protocol.wire.errors import DecodeError
from protocol.wire.prekeys import KemKind, PreKeyBundle

SESSION_VERSION = 1


@dataclass(frozen=True, slots=True)
class PrivatePrekeys:
    """The private keys Bob's store returns for the ids an initial message names."""

    signed_prekey: X25519KeyPair
    kem_prekey: KemKeyPair
    one_time_prekey: X25519KeyPair | None


PrekeyLookup = Callable[[PreKeyMessage], PrivatePrekeys]
"""Looks up the private keys named by an initial message; raises SessionSetupError
if one is unknown (for example a one-time prekey already used)."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """One-time prekeys an accepted initial message used: delete them now."""

    one_time_prekey_id: int | None
    kem_prekey_id: int | None  # set only for a one-time KEM prekey


class Session:
    __slots__ = ("base_key", "peer_identity", "pending_prefix", "ratchet")

    def __init__(
        self,
        peer_identity: bytes,
        ratchet: Ratchet,
        pending_prefix: bytes | None = None,
        base_key: bytes | None = None,
    ) -> None:
        self.peer_identity = peer_identity
        self.ratchet = ratchet
        self.pending_prefix = pending_prefix
        self.base_key = base_key  # responder: the EK_A that set the session up

    @classmethod
    def initiate(
        cls,
        identity: IdentityKeyPair,
        bundle: PreKeyBundle,
        rng: Rng = default_rng,
        encapsulate: pqxdh.Encapsulate = kem_encapsulate,
    ) -> Session:
        init = pqxdh.initiate(identity, bundle, rng, encapsulate)
        ratchet = Ratchet.initiator(init.agreement.sk, init.agreement.ad, init.signed_prekey, rng)
        return cls(bundle.identity, ratchet, pending_prefix=init.prefix)

    @classmethod
    def respond(
        cls,
        identity: IdentityKeyPair,
        message: bytes | PreKeyMessage,
        lookup: PrekeyLookup,
        rng: Rng = default_rng,
    ) -> tuple[Session, bytes, Consumed]:
        """Sets up Bob's side from an initial message (encoded, or already decoded by
        the caller so it is parsed once) and decrypts its first ratchet message.
        Returns the session, the plaintext and the one-time prekeys to delete."""
        msg = message if isinstance(message, PreKeyMessage) else PreKeyMessage.decode(message)
        keys = lookup(msg)
        agreement = pqxdh.respond(identity, msg, keys.signed_prekey, keys.kem_prekey,
                                  keys.one_time_prekey)
        ratchet = Ratchet.responder(agreement.sk, agreement.ad, keys.signed_prekey, rng)
        session = cls(msg.identity, ratchet, base_key=msg.ephemeral)
        plaintext = session._open(msg.message.encode())
        consumed = Consumed(
            msg.one_time_prekey_id,
            msg.kem_prekey_id if msg.kem_kind is KemKind.ONE_TIME else None,
        )
        return session, plaintext, consumed

    def encrypt(self, plaintext: bytes) -> tuple[MessageKind, bytes]:
        """Pads and encrypts; an initial message until the peer has replied."""
        message = self.ratchet.encrypt(padding.pad(plaintext))
        if self.pending_prefix is not None:
            return MessageKind.PREKEY, self.pending_prefix + message
        return MessageKind.RATCHET, message

    def decrypt(self, kind: MessageKind, message: bytes) -> bytes:
        """Decrypts a message for this existing session. An initial message must
        repeat the one that set the session up; a fresh one needs `respond`."""
        if kind is MessageKind.PREKEY:
            return self.decrypt_initial(PreKeyMessage.decode(message))
        plaintext = self._open(message)
        self.pending_prefix = None  # the peer has our session: stop repeating PQXDH data
        return plaintext

    def decrypt_initial(self, msg: PreKeyMessage) -> bytes:
        """Decrypts a repeated initial message (already decoded) for this session: it
        must carry the base key EK_A that set the session up (section 9)."""
        if self.base_key is None or msg.ephemeral != self.base_key:
            raise SessionSetupError("initial message for a different session")
        return self._open(msg.message.encode())

    def _open(self, message: bytes) -> bytes:
        return self.ratchet.decrypt(message, _unpad)

    @property
    def missing(self) -> int:
        """Messages the peer sent that have not arrived yet (the counters show a gap)."""
        return self.ratchet.missing

    def serialize(self) -> bytes:
        return b"".join((
            codec.u8(SESSION_VERSION),
            encode_key(TYPE_ED25519, self.peer_identity),
            codec.flag(self.pending_prefix is not None),
            codec.var16(self.pending_prefix or b""),
            codec.flag(self.base_key is not None),
            self.base_key or b"",
            codec.var32(self.ratchet.serialize()),
        ))

    @classmethod
    def deserialize(cls, data: bytes, rng: Rng = default_rng) -> Session:
        r = codec.Reader(data)
        r.expect(SESSION_VERSION, "session state version")
        peer = decode_key(TYPE_ED25519, r.take(ENCODED_ED25519_LEN))
        has_prefix = r.flag()
        prefix = r.var16()
        if has_prefix != bool(prefix):
            raise DecodeError("prefix flag and prefix bytes disagree")
        base_key = r.take(32) if r.flag() else None
        ratchet = Ratchet.deserialize(r.var32(), rng)
        r.finish()
        return cls(peer, ratchet, prefix if has_prefix else None, base_key)


def _unpad(padded: bytes) -> bytes:
    """Runs inside Ratchet.decrypt before it commits, so an authentic message with bad
    padding leaves the session unchanged too."""
    try:
        return padding.unpad(padded)
    except DecodeError as exc:
        raise DecryptionFailed("bad padding") from exc
