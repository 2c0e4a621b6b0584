"""The client-relay conversation, sans-I/O: the one place its rules live.

In the style of h11 and websockets' protocol core: `ClientConnection` and
`ServerConnection` take bytes in and hand back typed events (protocol.wire.events),
and turn frames into bytes to send; they never touch a socket, a task or a clock (the
relay passes the time in for its token bucket). The asyncio shells (client/connection.py,
server/relay.py, the conformance probe) move bytes and act on the events.

The rules, stated once (docs/PROTOCOL.md 16.9, "Connection states"):

- `CLIENT_MAY_SEND`: which requests each state allows. A relay refuses the others with
  `REFUSED_IN_STATE`'s code; a client never sends them.
- `ANSWERS`: the answer each request calls for when it succeeds; ERROR may answer any.
- `PUSHES`: the frames the relay sends unasked (request id 0), and in which state.
- `QUIET`: the requests a client may send with request id 0, which then get no answer
  when they succeed (16.5: the quiet ACK).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterable
from enum import Enum

from protocol.wire.errors import (
    BadSignature,
    DecodeError,
    InvalidUsername,
    LocalProtocolError,
    RemoteProtocolError,
    UnknownFrameType,
    UnsupportedVersion,
)
from protocol.wire.events import (
    Answered,
    Delivered,
    HelloReceived,
    PrekeysRunningLow,
    QueueDrained,
    Refusal,
    Refused,
    Request,
    ServerEvent,
    Violation,
)
from protocol.wire.frames import (
    FRAME_HEADER_LEN,
    Ack,
    Bundle,
    Certificate,
    CertKey,
    CertKeyAnswer,
    DeleteAccount,
    Deliver,
    Error,
    ErrorCode,
    FetchBundle,
    FetchKeyPackage,
    Frame,
    GetCertificate,
    GroupDeliver,
    GroupSend,
    Hello,
    Identity,
    KeyPackageAnswer,
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
    PrekeyCount,
    PrekeyCounts,
    PrekeysLow,
    QueueDone,
    Register,
    SealedSend,
    Send,
    Sent,
    SetCapability,
    UploadKeyPackages,
    UploadOneTimePrekeys,
    UploadSignedPrekeys,
    decode_client_frame,
    decode_server_frame,
    delete_account_statement,
    encode_frame,
    login_statement,
    normalize_url,
    register_statement,
)
from protocol.wire.prekeys import KemPreKey, SignedPreKey
from protocol.wire.publickeys import verify_signature
from protocol.wire.ratelimit import TokenBucket


class State(Enum):
    """Where a connection is in its conversation (PROTOCOL.md 16.3-16.5)."""

    AWAITING_HELLO = "awaiting HELLO"
    ANONYMOUS = "not logged in"
    LOGGING_IN = "REGISTER or LOGIN in flight"
    """Client side only: the relay handles frames in order, so it has no such state."""
    LOGGED_IN = "logged in"
    SENDING = "sending sealed envelopes"
    """After a SEALED_SEND: the connection never logs in (16.10)."""


_PUBLIC = frozenset({KtInfo, KtConsistency, KtEntries, CertKey})
"""The directory's public reads (19.10), for witnesses and auditors, and the relay's
certificate key (20.3): before login too."""
_AUTH = frozenset({Register, Login, SealedSend}) | _PUBLIC
_ACCOUNT = frozenset({UploadSignedPrekeys, UploadOneTimePrekeys, FetchBundle,
                      LookupIdentity, PrekeyCount, Send, Ack, DeleteAccount,
                      KtLookup, KtOwn, SetCapability, GetCertificate,
                      UploadKeyPackages, FetchKeyPackage, GroupSend}) | _PUBLIC

CLIENT_MAY_SEND: dict[State, frozenset[type[Frame]]] = {
    State.AWAITING_HELLO: frozenset(),
    State.ANONYMOUS: _AUTH,
    State.LOGGING_IN: frozenset(),
    State.LOGGED_IN: _ACCOUNT,
    State.SENDING: frozenset({SealedSend}) | _PUBLIC,
}
"""The requests a client may send in each state."""

REFUSED_IN_STATE: dict[State, ErrorCode] = {
    State.ANONYMOUS: ErrorCode.NOT_AUTHENTICATED,
    State.LOGGED_IN: ErrorCode.ALREADY_AUTHENTICATED,
    State.SENDING: ErrorCode.NOT_AUTHENTICATED,
}
"""The ERROR a relay answers a request with that its state does not allow; but a
sending connection's REGISTER or LOGIN gets ALREADY_AUTHENTICATED (16.10: it never
logs in, so "log in first" would be wrong)."""

ANSWERS: dict[type[Frame], type[Frame]] = {
    Register: Ok,
    Login: Ok,
    UploadSignedPrekeys: Ok,
    UploadOneTimePrekeys: Ok,
    FetchBundle: Bundle,
    LookupIdentity: Identity,
    PrekeyCount: PrekeyCounts,
    Send: Sent,
    SealedSend: Sent,
    GroupSend: Sent,
    UploadKeyPackages: Ok,
    FetchKeyPackage: KeyPackageAnswer,
    SetCapability: Ok,
    Ack: Ok,
    DeleteAccount: Ok,
    KtInfo: KtInfoAnswer,
    KtConsistency: KtConsistencyProof,
    KtLookup: KtLookupAnswer,
    KtEntries: KtEntryRange,
    KtOwn: KtOwnEntries,
    GetCertificate: Certificate,
    CertKey: CertKeyAnswer,
}
"""The answer each request calls for when it succeeds; ERROR may answer any request."""

PUSHES: dict[type[Frame], frozenset[State]] = {
    Hello: frozenset({State.AWAITING_HELLO}),
    Deliver: frozenset({State.LOGGED_IN}),
    GroupDeliver: frozenset({State.LOGGED_IN}),
    QueueDone: frozenset({State.LOGGED_IN}),
    PrekeysLow: frozenset({State.LOGGED_IN}),
}
"""Frames the relay sends unasked (request id 0), and the client states they may
arrive in. ERROR with request id 0 answers a frame too short to carry an id, or a
quiet request (`QUIET`) that failed."""

QUIET: frozenset[type[Frame]] = frozenset({Ack})
"""Requests that, sent with request id 0, get no answer when they succeed (16.5, 16.6):
a client acknowledges what it received without a round trip per ACK. A quiet request
that fails is still refused, with ERROR and request id 0."""


def is_quiet(request_id: int, frame: Frame) -> bool:
    """Whether this request gets no answer when it succeeds (`QUIET`)."""
    return request_id == 0 and type(frame) in QUIET


class RequestRefused(RemoteProtocolError):
    """A request the relay answers with ERROR `code` (PROTOCOL.md 16.7)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame_name(frame: Frame | type[Frame]) -> str:
    """REGISTER, UPLOAD_SIGNED_PREKEYS, ...: the names docs/PROTOCOL.md uses."""
    cls = frame if isinstance(frame, type) else type(frame)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).upper()


def request_id_of(data: bytes) -> int:
    """The request id in a frame's header, or 0 if it is too short to have one."""
    return int.from_bytes(data[2:6], "big") if len(data) >= FRAME_HEADER_LEN else 0


def check_send(frame: Send | SealedSend | GroupSend, limits: Limits) -> None:
    """SEND's own limits (16.6), checked before anything is stored; a GROUP_SEND's
    recipients count as envelopes and its message as each one's body (21.3)."""
    bodies = ([frame.message] * len(frame.recipients) if isinstance(frame, GroupSend)
              else [out.body for out in frame.envelopes])
    if len(bodies) > limits.max_recipients:
        raise RequestRefused(ErrorCode.TOO_MANY_RECIPIENTS,
                             f"at most {limits.max_recipients} envelopes per SEND")
    for body in bodies[:1] if isinstance(frame, GroupSend) else bodies:
        if len(body) > limits.max_envelope:
            raise RequestRefused(ErrorCode.ENVELOPE_TOO_LARGE,
                                 f"envelope of {len(body)} bytes; the limit is "
                                 f"{limits.max_envelope}")


def check_prekeys(records: Iterable[SignedPreKey | KemPreKey], identity: bytes) -> None:
    """Every uploaded signature must verify against the account's identity key (16.6)."""
    for record in records:
        try:
            record.verify(identity)
        except BadSignature:
            raise RequestRefused(ErrorCode.BAD_SIGNATURE,
                                 f"prekey {record.key_id}: signature does not verify "
                                 "against the account's identity key") from None


class ClientConnection:
    """A client's side of one connection: `send` turns requests into bytes and
    remembers them; `receive_data` turns the relay's bytes into events."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        """The URL REGISTER and LOGIN sign (16.4)."""
        self.state = State.AWAITING_HELLO
        self.challenge = b""
        self.limits: Limits | None = None
        self.username: str | None = None
        self.outstanding: dict[int, type[Frame] | None] = {}
        """Requests in flight: request id -> request class (None: raw bytes that did
        not decode, which only ERROR may answer)."""
        self.queue_drained = False
        self._logins: dict[int, str] = {}
        self._ids = itertools.count(1)

    # -- sending

    def next_request_id(self) -> int:
        """A fresh request id (never 0, never reused on this connection)."""
        return next(self._ids)

    def send(self, frame: Frame) -> bytes:
        """The bytes of a request the current state allows, with a fresh request id."""
        allowed = CLIENT_MAY_SEND[self.state]
        if type(frame) not in allowed:
            raise LocalProtocolError(f"{frame_name(frame)} may not be sent while "
                                     f"{self.state.value}")
        request_id = self.next_request_id()
        self._track(request_id, frame)
        return encode_frame(frame, request_id)

    def send_quiet(self, frame: Ack) -> bytes:
        """The bytes of a quiet ACK (request id 0, 16.5): the relay deletes the
        envelopes and answers nothing; an ERROR with request id 0 says it failed.
        Nothing is tracked: no answer is awaited."""
        if type(frame) not in QUIET or type(frame) not in CLIENT_MAY_SEND[self.state]:
            raise LocalProtocolError(f"{frame_name(frame)} may not be sent quietly while "
                                     f"{self.state.value}")
        return encode_frame(frame, 0)

    def expect(self, data: bytes) -> int:
        """Records bytes a shell sends without `send` (the conformance suite's
        deliberately wrong frames), whatever the state: their answer is then expected
        like any other. Returns the request id to expect it under, or 0 if they carry
        none (the relay answers those with ERROR and request id 0)."""
        request_id = request_id_of(data)
        if not request_id:
            return 0
        try:
            _, frame = decode_client_frame(data)
        except DecodeError:
            self._track(request_id, None)
        else:
            self._track(request_id, frame)
        return request_id

    def forget(self, request_id: int) -> None:
        """Gives up on a request: an answer arriving later is a Violation."""
        self.outstanding.pop(request_id, None)
        if self._logins.pop(request_id, None) is not None:
            self._login_settled()

    def _track(self, request_id: int, frame: Frame | None) -> None:
        if request_id in self.outstanding:
            raise LocalProtocolError(f"request id {request_id} is already in flight")
        self.outstanding[request_id] = None if frame is None else type(frame)
        if isinstance(frame, Register | Login):
            self._logins[request_id] = frame.username
            if self.state is State.ANONYMOUS:
                self.state = State.LOGGING_IN
        elif isinstance(frame, SealedSend) and self.state is State.ANONYMOUS:
            self.state = State.SENDING

    def _login_settled(self) -> None:
        """A REGISTER or LOGIN was refused or given up: not logging in any more, unless
        another one is still in flight."""
        if self.state is State.LOGGING_IN and not self._logins:
            self.state = State.ANONYMOUS

    def register_frame(self, username: str, identity: bytes,
                       sign: Callable[[bytes], bytes]) -> Register:
        """REGISTER signing register_statement over this connection's challenge."""
        self._need_challenge()
        statement = register_statement(self.url, self.challenge, username, identity)
        return Register(username, identity, sign(statement))

    def login_frame(self, username: str, sign: Callable[[bytes], bytes]) -> Login:
        """LOGIN signing login_statement over this connection's challenge."""
        self._need_challenge()
        return Login(username, sign(login_statement(self.url, self.challenge, username)))

    def delete_account_frame(self, sign: Callable[[bytes], bytes]) -> DeleteAccount:
        """DELETE_ACCOUNT signing delete_account_statement over this connection's
        challenge for the username it is logged in as."""
        if self.state is not State.LOGGED_IN or self.username is None:
            raise LocalProtocolError("DELETE_ACCOUNT needs a logged-in connection")
        return DeleteAccount(sign(delete_account_statement(self.url, self.challenge,
                                                           self.username)))

    def _need_challenge(self) -> None:
        if not self.challenge:
            raise LocalProtocolError("no challenge yet: HELLO has not arrived")

    # -- receiving

    def receive_data(self, data: bytes) -> list[ServerEvent]:
        """One frame from the relay. Raises DecodeError (a RemoteProtocolError) for
        bytes that are not a server frame; a frame out of place is a Violation."""
        request_id, frame = decode_server_frame(data)
        return [self._event(request_id, frame)]

    def _event(self, request_id: int, frame: Frame) -> ServerEvent:
        name = frame_name(frame)
        if self.state is State.AWAITING_HELLO:
            if not isinstance(frame, Hello):
                return Violation(f"{name} before HELLO", request_id, frame)
            if request_id:
                return Violation(f"HELLO carries request id {request_id}, not 0",
                                 request_id, frame)
            self.state, self.challenge, self.limits = State.ANONYMOUS, frame.challenge, \
                frame.limits
            return HelloReceived(frame)
        if request_id:
            return self._answer(request_id, frame)
        if isinstance(frame, Error):
            return Refused(0, frame)
        states = PUSHES.get(type(frame))
        if states is None:
            return Violation(f"{name} with request id 0, which only pushes and errors "
                             "may carry", 0, frame)
        if self.state not in states:
            return Violation(f"{name} while {self.state.value}", 0, frame)
        if isinstance(frame, Deliver):
            return Delivered(frame)
        if isinstance(frame, QueueDone):
            if self.queue_drained:
                return Violation("a second QUEUE_DONE", 0, frame)
            self.queue_drained = True
            return QueueDrained(frame)
        assert isinstance(frame, PrekeysLow)
        return PrekeysRunningLow(frame)

    def _answer(self, request_id: int, frame: Frame) -> ServerEvent:
        name = frame_name(frame)
        if type(frame) in PUSHES:
            return Violation(f"{name} carries request id {request_id}; pushes carry 0",
                             request_id, frame)
        if request_id not in self.outstanding:
            return Violation(f"{name} with request id {request_id}, which answers no "
                             "request in flight", request_id, frame)
        request = self.outstanding.pop(request_id)
        username = self._logins.pop(request_id, None)
        if isinstance(frame, Error):
            if username is not None:
                self._login_settled()
            return Refused(request_id, frame)
        want = None if request is None else ANSWERS[request]
        if want is None or not isinstance(frame, want):
            asked = "bytes that do not decode" if request is None else frame_name(request)
            expected = "ERROR" if want is None else f"{frame_name(want)} or ERROR"
            return Violation(f"{name} answering {asked}, expected {expected}",
                             request_id, frame)
        if username is not None:
            self.state, self.username = State.LOGGED_IN, username
        return Answered(request_id, request, frame)


class ServerConnection:
    """The relay's side of one connection: `receive_data` says whether a frame is a
    request to carry out or what ERROR to answer; the checks that need no storage
    (signatures, limits) and the order of deliveries live here too."""

    def __init__(self, challenge: bytes, limits: Limits, accepted_urls: frozenset[str],
                 now: float) -> None:
        self.challenge = challenge
        self.limits = limits
        self.accepted_urls = accepted_urls
        self.rate = TokenBucket(limits.rate_per_second, limits.rate_burst, now)
        self.state = State.AWAITING_HELLO
        self.username: str | None = None
        self.login_challenge = b""
        """The challenge the login used: what DELETE_ACCOUNT signs (16.4)."""
        self.deleted = False
        """The account was deleted on this connection: the relay closes it."""
        self.draining = False
        self.last_seq = 0
        """The newest envelope (by storage sequence) delivered on this connection."""
        self._held: list[tuple[int, Deliver | bytes]] = []
        self.drained = 0
        """Envelopes delivered in the login sequence, the count QUEUE_DONE carries."""

    def hello(self) -> bytes:
        """HELLO, the first frame (16.3)."""
        if self.state is not State.AWAITING_HELLO:
            raise LocalProtocolError("HELLO was already sent")
        self.state = State.ANONYMOUS
        return encode_frame(Hello(self.challenge, self.limits))

    # -- receiving

    def receive_data(self, data: bytes | str, now: float) -> Request | Refusal:
        """One WebSocket message. Faults are checked in the order of PROTOCOL.md 16.7:
        text, size, rate, version, type, parse, authentication."""
        if self.state is State.AWAITING_HELLO:
            raise LocalProtocolError("send HELLO first")
        if isinstance(data, str):
            return Refusal(0, ErrorCode.MALFORMED_FRAME,
                           "text messages are not part of the protocol; send binary")
        request_id = request_id_of(data)
        if len(data) > self.limits.max_frame:
            return Refusal(request_id, ErrorCode.FRAME_TOO_LARGE,
                           f"frame of {len(data)} bytes; the limit is {self.limits.max_frame}")
        if not self.rate.take(now):
            return Refusal(request_id, ErrorCode.RATE_LIMITED,
                           f"more than {self.limits.rate_per_second} frames per second")
        try:
            request_id, frame = decode_client_frame(data)
        except DecodeError as exc:
            return Refusal(request_id, _decode_code(exc), str(exc))
        if type(frame) not in CLIENT_MAY_SEND[self.state]:
            code = REFUSED_IN_STATE[self.state]
            message = "log in first" if code is ErrorCode.NOT_AUTHENTICATED else \
                f"already logged in as {self.username}"
            if self.state is State.SENDING:
                code, message = _refused_sending(frame)
            return Refusal(request_id, code, message, frame)
        if isinstance(frame, SealedSend):
            self.state = State.SENDING
        return Request(request_id, frame)

    # -- answering

    def answer(self, request: Request, frame: Frame) -> bytes | None:
        """The bytes of the answer ANSWERS gives for this request; None for a quiet
        request (`QUIET`, request id 0), which gets no answer when it succeeds."""
        want = ANSWERS[type(request.frame)]
        if not isinstance(frame, want):
            raise LocalProtocolError(f"{frame_name(request.frame)} is answered by "
                                     f"{frame_name(want)}, not {frame_name(frame)}")
        if is_quiet(request.request_id, request.frame):
            return None
        return encode_frame(frame, request.request_id)

    @staticmethod
    def refuse(request_id: int, code: ErrorCode, message: str) -> bytes:
        return encode_frame(Error(code, message), request_id)

    # -- accounts (16.4)

    def check_statement(self, identity: bytes, signature: bytes,
                        statement: Callable[[str], bytes]) -> None:
        """The signature must verify for one of the relay's own URLs."""
        for url in self.accepted_urls:
            try:
                verify_signature(identity, signature, statement(url))
                return
            except BadSignature:
                continue
        raise RequestRefused(ErrorCode.BAD_SIGNATURE, _BAD_SIGNATURE_MESSAGE)

    def check_register(self, frame: Register) -> None:
        challenge = self.challenge
        self.check_statement(
            frame.identity, frame.signature,
            lambda url: register_statement(url, challenge, frame.username, frame.identity))

    def check_login(self, frame: Login, identity: bytes | None) -> None:
        """`identity`: the key the account registered, None if there is no account.
        An unknown name gets the same BAD_SIGNATURE as a wrong key, after the same
        work (a verification against a stand-in key), so LOGIN does not tell strangers
        which names are taken (16.4)."""
        challenge = self.challenge

        def statement(url: str) -> bytes:
            return login_statement(url, challenge, frame.username)

        if identity is None:
            with contextlib.suppress(RequestRefused):
                self.check_statement(_STAND_IN_IDENTITY, frame.signature, statement)
            raise RequestRefused(ErrorCode.BAD_SIGNATURE, _BAD_SIGNATURE_MESSAGE)
        self.check_statement(identity, frame.signature, statement)

    def log_in(self, username: str) -> None:
        """After a REGISTER or LOGIN the relay carried out: the challenge is used up."""
        if self.state is not State.ANONYMOUS:
            raise LocalProtocolError(f"cannot log in while {self.state.value}")
        self.login_challenge = self.challenge
        self.state, self.username, self.challenge = State.LOGGED_IN, username, b""

    def check_delete_account(self, frame: DeleteAccount, identity: bytes | None) -> None:
        """The signature must be the logged-in account's, over this connection's
        challenge: a connection alone (without the identity key) cannot delete."""
        username = self.username
        if username is None or identity is None:
            raise RequestRefused(ErrorCode.UNKNOWN_USER, "the account no longer exists")
        challenge = self.login_challenge
        self.check_statement(
            identity, frame.signature,
            lambda url: delete_account_statement(url, challenge, username))

    def account_deleted(self) -> None:
        """After a DELETE_ACCOUNT the relay carried out: nothing more is handled."""
        self.deleted = True

    def check_send(self, frame: Send) -> None:
        check_send(frame, self.limits)

    # -- pushes (16.5): the queue in order, then live envelopes, each at most once

    def start_drain(self) -> None:
        """The login sequence begins: live envelopes are held until it ends."""
        if self.state is not State.LOGGED_IN:
            raise LocalProtocolError("the queue is delivered after login")
        self.draining, self.drained = True, 0

    def deliver(self, seq: int, frame: Deliver | bytes) -> bytes | None:
        """A queued envelope read during the drain, or a held one; None if this
        connection already delivered it. `frame` may come encoded already (the relay
        encodes a live DELIVER once for all of a user's connections)."""
        if seq <= self.last_seq:
            return None
        self.last_seq = seq
        if self.draining:
            self.drained += 1
        return frame if isinstance(frame, bytes) else encode_frame(frame)

    def push(self, seq: int, frame: Deliver | bytes) -> bytes | None:
        """A freshly stored envelope: its bytes to send now, or None if held for the
        end of the drain (so none overtakes the queue) or already delivered."""
        if self.draining:
            self._held.append((seq, frame))
            return None
        return self.deliver(seq, frame)

    def next_held(self) -> bytes | None:
        """During the drain, after the queue: the next envelope pushed meanwhile."""
        while self._held:
            data = self.deliver(*self._held.pop(0))
            if data is not None:
                return data
        return None

    def end_drain(self) -> bytes:
        """QUEUE_DONE, counting every envelope delivered before it."""
        self.draining, self._held = False, []
        return encode_frame(QueueDone(self.drained))

    def prekeys_low(self, one_time: int, kem_one_time: int) -> bytes | None:
        """PREKEYS_LOW if either count is below prekey_low."""
        if min(one_time, kem_one_time) < self.limits.prekey_low:
            return encode_frame(PrekeysLow(one_time, kem_one_time))
        return None


_STAND_IN_IDENTITY = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
"""RFC 8032's first test key: a LOGIN of an unknown name is verified against it only so
that it costs what a real one costs; it is refused whatever the outcome."""

_BAD_SIGNATURE_MESSAGE = "signature does not verify for this server and challenge"


def _refused_sending(frame: Frame) -> tuple[ErrorCode, str]:
    """What a sending connection (16.10) answers a request it does not allow."""
    if isinstance(frame, Register | Login):
        return (ErrorCode.ALREADY_AUTHENTICATED, "this connection sent a SEALED_SEND: it "
                "never logs in; log in on another connection")
    return ErrorCode.NOT_AUTHENTICATED, "a sending connection only sends sealed envelopes"


def _decode_code(exc: DecodeError) -> ErrorCode:
    if isinstance(exc, UnsupportedVersion):
        return ErrorCode.UNSUPPORTED_VERSION
    if isinstance(exc, UnknownFrameType):
        return ErrorCode.UNKNOWN_FRAME_TYPE
    if isinstance(exc, InvalidUsername):
        return ErrorCode.USERNAME_INVALID
    return ErrorCode.MALFORMED_FRAME
