"""The kit's relay: enough of the protocol for a client to register, upload prekeys,
fetch bundles, send, receive and check keys in the key directory, with switches that
make it lie the way a hostile relay would.

Built only on protocol.wire (the frames, the sans-I/O `ServerConnection`, the key
directory) and websockets, so the kit stays a black box: nothing here comes from
server/ (pyproject's "conformance is a black box" contract). Everything is held in
memory and is gone when the relay stops: a run leaves nothing behind.

The kit's own users ("peers", conformance/client/peer.py) do not connect: they are
written into the relay's state directly, and read what the client under test sends
them from `sent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.wire.certificates import CERT_SEED_LEN, DEFAULT_LIFETIME, issue, signer_from_seed
from protocol.wire.connection import RequestRefused, check_prekeys, check_send
from protocol.wire.connection import ServerConnection as Core
from protocol.wire.events import Refusal
from protocol.wire.frames import (
    Ack,
    Bundle,
    Certificate,
    CertKey,
    CertKeyAnswer,
    Deliver,
    ErrorCode,
    FetchBundle,
    Frame,
    GetCertificate,
    Identity,
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
    Limits,
    Login,
    LookupIdentity,
    Ok,
    OwnEntry,
    PrekeyCount,
    PrekeyCounts,
    QueueDone,
    Register,
    SealedSend,
    Send,
    Sent,
    SetCapability,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    encode_frame,
    normalize_url,
    url_origin,
)
from protocol.wire.kt.commitment import OPENING_LEN
from protocol.wire.kt.directory import Directory
from protocol.wire.kt.note import Signer
from protocol.wire.prekeys import KemKind, KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey

LIMITS = Limits(max_frame=256 * 1024, max_envelope=64 * 1024, max_recipients=64,
                max_queue=10_000, max_prekeys=500, rate_per_second=1000, rate_burst=2000,
                envelope_ttl=30 * 24 * 3600, prekey_low=10)
"""What the kit's relay announces: the reference relay's defaults, with a rate no
client under test will meet."""


@dataclass
class Account:
    identity: bytes
    signed_prekey: SignedPreKey | None = None
    last_resort: KemPreKey | None = None
    one_time: list[OneTimePreKey] = field(default_factory=list)
    kem_one_time: list[KemPreKey] = field(default_factory=list)
    capability_hash: bytes | None = None
    """SHA-256 of the delivery capability the account set (PROTOCOL.md 16.10)."""
    allow_anyone: bool = False

    def bundle(self, one_time: bool = True) -> PreKeyBundle:
        """A bundle as an honest relay hands it out (one-time prekeys used up);
        `one_time=False`: as a relay that claims to have none left."""
        if self.signed_prekey is None or self.last_resort is None:
            raise RequestRefused(ErrorCode.NO_PREKEYS, "no prekeys uploaded")
        opk = self.one_time.pop(0) if one_time and self.one_time else None
        if one_time and self.kem_one_time:
            return PreKeyBundle(self.identity, self.signed_prekey, KemKind.ONE_TIME,
                                self.kem_one_time.pop(0), opk)
        return PreKeyBundle(self.identity, self.signed_prekey, KemKind.LAST_RESORT,
                            self.last_resort, opk)


@dataclass(frozen=True)
class Envelope:
    """What a client sent: to whom, the body, and when the relay got it; `sender` is
    the account logged in on the connection, or "" for a SEALED_SEND (none is), whose
    `capability` is what the envelope carried."""

    sender: str
    recipient: str
    body: bytes
    at: float
    capability: bytes | None = None


@dataclass
class Queued:
    """An envelope (or any raw frame, for the hostile pushes) waiting for its
    recipient's next login."""

    envelope_id: bytes
    frame: bytes


class KitRelay:
    """The relay the client under test talks to. The switches (`bundles`,
    `identities`, `errors`, `queue`) are set by the checks between the client's
    commands."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.accounts: dict[str, Account] = {}
        self.queues: dict[str, list[Queued]] = {}
        self.sent: list[Envelope] = []
        self.acked: set[bytes] = set()
        self.bundles: dict[str, bytes] = {}
        """name -> the encoded bundle FETCH_BUNDLE answers with instead of the truth."""
        self.identities: dict[str, bytes] = {}
        """name -> the identity key LOOKUP_IDENTITY answers with instead of the truth."""
        self.errors: dict[str, str] = {}
        """name -> the message of the UNKNOWN_USER error FETCH_BUNDLE answers with."""
        self.no_one_time = False
        """Hand out bundles without one-time prekeys (as if they ran out)."""
        self.close_codes: list[int | None] = []
        """How each client connection ended (1009: the client refused a frame)."""
        self.directory: Directory | None = None
        self.cert_seed = os.urandom(CERT_SEED_LEN)
        """The relay's sender-certificate key (PROTOCOL.md 20.3)."""
        self._server: Server | None = None
        self.url = ""

    # -- running

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None,
                                   max_size=self.limits.max_frame)
        port = self._server.sockets[0].getsockname()[1]
        self.url = normalize_url(f"ws://127.0.0.1:{port}")
        self._urls = frozenset({self.url, normalize_url(f"ws://localhost:{port}")})
        self.directory = Directory(Signer.generate(url_origin(self.url)), os.urandom(32))
        self.directory.checkpoint()
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    # -- the kit's side

    def _dir(self) -> Directory:
        assert self.directory is not None, "start the relay first"
        return self.directory

    def bind(self, name: str, identity: bytes) -> None:
        """Registers `name` (or re-binds it: a RESET, logged like an operator's) in the
        accounts and in the key directory, as the real relay does at REGISTER."""
        directory = self._dir()
        directory.append(name, directory.next_binding(name, identity),
                         os.urandom(OPENING_LEN))
        directory.checkpoint()
        self.accounts[name] = Account(identity)

    def certificate(self, name: str, lifetime: int = DEFAULT_LIFETIME) -> bytes:
        """A sender certificate for `name` and the key it is registered with now, as
        GET_CERTIFICATE answers it (a peer puts it in what it seals)."""
        return issue(self.cert_seed, name, self.accounts[name].identity,
                     int(time.time()) + lifetime)

    def publish(self, name: str, signed: SignedPreKey, last_resort: KemPreKey,
                one_time: list[OneTimePreKey] | None = None) -> None:
        account = self.accounts[name]
        account.signed_prekey, account.last_resort = signed, last_resort
        account.one_time = list(one_time or [])

    def take_bundle(self, name: str, one_time: bool = True) -> PreKeyBundle:
        """The bundle of a user (the client under test): what a peer starts from."""
        return self.accounts[name].bundle(one_time)

    def queue(self, recipient: str, body: bytes, envelope_id: bytes | None = None) -> bytes:
        """Queues an envelope for the recipient's next login; returns its id."""
        envelope_id = envelope_id or os.urandom(16)
        frame = encode_frame(Deliver(envelope_id, int(time.time()), body))
        self.queues.setdefault(recipient, []).append(Queued(envelope_id, frame))
        return envelope_id

    def queue_raw(self, recipient: str, envelope_id: bytes, frame: bytes) -> None:
        """Queues a frame as it is (an oversized DELIVER, say)."""
        self.queues.setdefault(recipient, []).append(Queued(envelope_id, frame))

    def drop_queue(self, recipient: str) -> None:
        self.queues.pop(recipient, None)

    def sent_to(self, recipient: str, since: int = 0) -> list[Envelope]:
        return [e for e in self.sent[since:] if e.recipient == recipient]

    # -- the connection

    async def _handle(self, ws: ServerConnection) -> None:
        core = Core(os.urandom(32), self.limits, self._urls, time.monotonic())
        code: int | None = None
        try:
            await ws.send(core.hello())
            async for message in ws:
                event = core.receive_data(message, time.monotonic())
                if isinstance(event, Refusal):
                    await ws.send(core.refuse(event.request_id, event.code, event.message))
                    continue
                try:
                    data = core.answer(event, self._carry_out(core, event.frame))
                except RequestRefused as exc:
                    data = core.refuse(event.request_id, exc.code, exc.message)
                if data is not None:  # None: a quiet ACK, answered by nothing (16.5)
                    await ws.send(data)
                if isinstance(event.frame, Register | Login) and core.username is not None:
                    await self._drain(ws, core.username)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(Exception):
                await ws.wait_closed()
            code = ws.close_code
            self.close_codes.append(code)

    async def _drain(self, ws: ServerConnection, user: str) -> None:
        items = list(self.queues.get(user, []))
        for item in items:
            await ws.send(item.frame)
        await ws.send(encode_frame(QueueDone(len(items))))

    def _account(self, name: str) -> Account:
        account = self.accounts.get(name)
        if account is None:
            raise RequestRefused(ErrorCode.UNKNOWN_USER, f"no user {name!r}")
        return account

    def _carry_out(self, core: Core, frame: Frame) -> Frame:
        directory = self._dir()
        if isinstance(frame, Register):
            core.check_register(frame)
            if frame.username in self.accounts:
                raise RequestRefused(ErrorCode.USERNAME_TAKEN, "that name is taken")
            self.bind(frame.username, frame.identity)
            core.log_in(frame.username)
            return Ok()
        if isinstance(frame, Login):
            account = self.accounts.get(frame.username)
            core.check_login(frame, None if account is None else account.identity)
            core.log_in(frame.username)
            return Ok()
        if isinstance(frame, KtInfo):
            return KtInfoAnswer(directory.signer.verifier.encode(), directory.vrf_public_key,
                                directory.checkpoint())
        if isinstance(frame, KtConsistency):
            old, new = frame.old_size, frame.new_size
            if not 0 < old <= new <= directory.size:
                raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                     f"the log has {directory.size} entries")
            return KtConsistencyProof(directory.log.root(old),
                                      tuple(directory.consistency(old, new)))
        if isinstance(frame, KtEntries):
            if frame.start > directory.size:
                raise RequestRefused(ErrorCode.KT_OUT_OF_RANGE,
                                     f"the log has {directory.size} entries")
            end = min(directory.size, frame.start + frame.count)
            return KtEntryRange(frame.start, tuple(directory.frontier(frame.start)),
                                tuple(e.encode() for e in directory.entries[frame.start:end]))
        if isinstance(frame, CertKey):
            return CertKeyAnswer(signer_from_seed(self.cert_seed)[1])
        if isinstance(frame, SealedSend):  # never logged in: no sender (16.10)
            check_send(frame, self.limits)
            for sealed in frame.envelopes:
                account = self.accounts.get(sealed.recipient)
                digest = hashlib.sha256(sealed.capability).digest()
                if account is None or not (account.allow_anyone or (
                        account.capability_hash is not None
                        and hmac.compare_digest(digest, account.capability_hash))):
                    raise RequestRefused(ErrorCode.BAD_CAPABILITY,
                                         f"no valid capability for {sealed.recipient!r}")
            now = time.time()
            for sealed in frame.envelopes:
                self.sent.append(Envelope("", sealed.recipient, sealed.body, now,
                                          sealed.capability))
            return Sent(tuple(os.urandom(16) for _ in frame.envelopes))
        user = core.username
        assert user is not None  # the core refuses the rest before login
        if isinstance(frame, GetCertificate):
            return Certificate(self.certificate(user))
        if isinstance(frame, SetCapability):
            account = self._account(user)
            account.capability_hash, account.allow_anyone = \
                frame.capability_hash, frame.allow_anyone
            return Ok()
        if isinstance(frame, KtLookup):
            return KtLookupAnswer(directory.checkpoint(),
                                  directory.lookup(frame.username).encode())
        if isinstance(frame, KtOwn):
            size = directory.size
            return KtOwnEntries(directory.checkpoint(), directory.label(user)[1],
                                tuple(OwnEntry(i, opening, value,
                                               tuple(directory.log.inclusion_proof(i, size)))
                                      for i, opening, value in directory.owned(user)))
        if isinstance(frame, UploadSignedPrekeys):
            account = self._account(user)
            check_prekeys((frame.signed_prekey, frame.last_resort_kem), account.identity)
            account.signed_prekey, account.last_resort = \
                frame.signed_prekey, frame.last_resort_kem
            return Ok()
        if isinstance(frame, UploadOneTimePrekeys):
            account = self._account(user)
            check_prekeys(frame.kem_one_time, account.identity)
            account.one_time.extend(frame.one_time)
            account.kem_one_time.extend(frame.kem_one_time)
            return Ok()
        if isinstance(frame, PrekeyCount):
            account = self._account(user)
            return PrekeyCounts(len(account.one_time), len(account.kem_one_time))
        if isinstance(frame, FetchBundle):
            name = frame.username
            if name in self.errors:
                raise RequestRefused(ErrorCode.UNKNOWN_USER, self.errors[name])
            if name in self.bundles:
                return Bundle(self.bundles[name])
            return Bundle(self._account(name).bundle(not self.no_one_time).encode())
        if isinstance(frame, LookupIdentity):
            lie = self.identities.get(frame.username)
            return Identity(lie if lie is not None else self._account(frame.username).identity)
        if isinstance(frame, Send):
            core.check_send(frame)
            now = time.time()
            for out in frame.envelopes:
                self.sent.append(Envelope(user, out.recipient, out.body, now))
            return Sent(tuple(os.urandom(16) for _ in frame.envelopes))
        if isinstance(frame, Ack):
            ids = set(frame.envelope_ids)
            self.acked |= ids
            queue = self.queues.get(user, [])
            queue[:] = [q for q in queue if q.envelope_id not in ids]
            return Ok()
        raise RequestRefused(ErrorCode.INTERNAL_ERROR,
                             f"the kit's relay does not serve {type(frame).__name__}")
