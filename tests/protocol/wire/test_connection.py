"""The sans-I/O conversation cores: bytes in, typed events out, for both sides
(docs/PROTOCOL.md 16.9, "Connection states")."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.e2e.keys import IdentityKeyPair, make_kem_prekey, make_signed_prekey
from protocol.wire.connection import (
    ANSWERS,
    CLIENT_MAY_SEND,
    PUSHES,
    ClientConnection,
    RequestRefused,
    ServerConnection,
    State,
    check_prekeys,
    check_send,
    frame_name,
    request_id_of,
)
from protocol.wire.errors import LocalProtocolError, RemoteProtocolError
from protocol.wire.events import (
    Answered,
    Delivered,
    HelloReceived,
    PrekeysRunningLow,
    QueueDrained,
    Refusal,
    Refused,
    Request,
    Violation,
)
from protocol.wire.frames import (
    CLIENT_FRAMES,
    SERVER_FRAMES,
    Ack,
    Bundle,
    CertKey,
    Deliver,
    Error,
    ErrorCode,
    FetchBundle,
    Frame,
    Hello,
    KtConsistency,
    KtEntries,
    KtInfo,
    Limits,
    Login,
    Ok,
    Outgoing,
    PrekeyCount,
    PrekeyCounts,
    PrekeysLow,
    QueueDone,
    Register,
    SealedOutgoing,
    SealedSend,
    Send,
    Sent,
    SetCapability,
    decode_client_frame,
    decode_server_frame,
    encode_frame,
    login_statement,
)
from protocol.wire.publickeys import verify_signature

URL = "ws://127.0.0.1:8765"
CHALLENGE = bytes(range(32))
LIMITS = Limits(max_frame=4096, max_envelope=1000, max_recipients=3, max_queue=50,
                max_prekeys=20, rate_per_second=10, rate_burst=5, envelope_ttl=3600,
                prekey_low=10)
ALICE = IdentityKeyPair.generate()
MALLORY = IdentityKeyPair.generate()
HELLO = encode_frame(Hello(CHALLENGE, LIMITS))


def deliver(n: int) -> Deliver:
    return Deliver(bytes([n]) * 16, 1_700_000_000 + n, b"body %d" % n)


# ---- the client side -------------------------------------------------------------


def hello_client() -> ClientConnection:
    client = ClientConnection(URL)
    (event,) = client.receive_data(HELLO)
    assert isinstance(event, HelloReceived)
    return client


def logged_in_client(name: str = "alice") -> ClientConnection:
    client = hello_client()
    data = client.send(client.login_frame(name, ALICE.sign))
    (event,) = client.receive_data(encode_frame(Ok(), request_id_of(data)))
    assert isinstance(event, Answered)
    return client


def test_hello_opens_the_conversation_and_gives_the_challenge_and_limits() -> None:
    client = ClientConnection("WS://127.0.0.1:8765/")
    before = client.state
    (event,) = client.receive_data(HELLO)
    assert isinstance(event, HelloReceived)
    assert (event.challenge, event.limits, event.request_id) == (CHALLENGE, LIMITS, 0)
    assert (before, client.state) == (State.AWAITING_HELLO, State.ANONYMOUS)
    assert (client.challenge, client.limits, client.url) == (CHALLENGE, LIMITS, URL)


@pytest.mark.parametrize("first", [
    encode_frame(Ok(), 1),
    encode_frame(QueueDone(0)),
    encode_frame(Error(ErrorCode.INTERNAL_ERROR, "x")),
    encode_frame(Hello(CHALLENGE, LIMITS), 7),
])
def test_anything_but_hello_with_id_0_first_is_a_violation(first: bytes) -> None:
    client = ClientConnection(URL)
    (event,) = client.receive_data(first)
    assert isinstance(event, Violation)
    assert client.state is State.AWAITING_HELLO
    with pytest.raises(LocalProtocolError):
        client.login_frame("alice", ALICE.sign)  # no challenge yet


def test_a_second_hello_is_a_violation() -> None:
    client = hello_client()
    (event,) = client.receive_data(HELLO)
    assert isinstance(event, Violation) and "HELLO" in event.reason


def test_requests_get_fresh_nonzero_ids() -> None:
    client = logged_in_client()
    ids = [request_id_of(client.send(PrekeyCount())) for _ in range(5)]
    assert 0 not in ids and len(set(ids)) == 5 and ids == sorted(ids)
    assert set(client.outstanding) >= set(ids)


def test_the_state_decides_what_a_client_may_send() -> None:
    client = ClientConnection(URL)
    with pytest.raises(LocalProtocolError):
        client.send(Login("alice", bytes(64)))  # before HELLO
    client.receive_data(HELLO)
    with pytest.raises(LocalProtocolError, match="PREKEY_COUNT"):
        client.send(PrekeyCount())  # before login
    client.send(client.login_frame("alice", ALICE.sign))
    assert client.state is State.LOGGING_IN
    with pytest.raises(LocalProtocolError):
        client.send(PrekeyCount())  # while the login is in flight
    with pytest.raises(LocalProtocolError):
        client.send(Login("alice", bytes(64)))
    assert not client.outstanding.keys() - {1}


def test_login_signs_the_documented_statement_and_ok_logs_in() -> None:
    client = hello_client()
    frame = client.login_frame("alice", ALICE.sign)
    verify_signature(ALICE.public, frame.signature, login_statement(URL, CHALLENGE, "alice"))
    data = client.send(frame)
    (event,) = client.receive_data(encode_frame(Ok(), request_id_of(data)))
    assert isinstance(event, Answered) and event.request is Login
    assert (client.state, client.username) == (State.LOGGED_IN, "alice")
    with pytest.raises(LocalProtocolError):
        client.send(Login("alice", bytes(64)))  # once per connection
    client.send(PrekeyCount())


def test_register_builds_a_frame_the_server_accepts() -> None:
    client, server = hello_client(), ServerConnection(CHALLENGE, LIMITS, frozenset({URL}), 0)
    server.hello()
    frame = client.register_frame("alice", ALICE.public, ALICE.sign)
    server.check_register(frame)
    with pytest.raises(RequestRefused) as refused:
        server.check_register(dataclasses.replace(frame, identity=MALLORY.public))
    assert refused.value.code is ErrorCode.BAD_SIGNATURE


def test_a_refused_login_leaves_the_client_logged_out() -> None:
    client = hello_client()
    data = client.send(client.login_frame("alice", ALICE.sign))
    (event,) = client.receive_data(
        encode_frame(Error(ErrorCode.UNKNOWN_USER, "no user"), request_id_of(data)))
    assert isinstance(event, Refused)
    assert (event.code, event.message) == (ErrorCode.UNKNOWN_USER, "no user")
    assert (client.state, client.username) == (State.ANONYMOUS, None)
    client.send(client.login_frame("alice", ALICE.sign))  # may try again


@pytest.mark.parametrize(("request_frame", "answer"), [
    (PrekeyCount(), PrekeyCounts(3, 4)),
    (Send((Outgoing("bob", b"x"),)), Sent((bytes(16),))),
    (Ack((bytes(16),)), Ok()),
    (FetchBundle("bob"), Bundle(b"bundle bytes")),
])
def test_each_request_gets_its_typed_answer(request_frame: Frame, answer: Frame) -> None:
    client = logged_in_client()
    data = client.send(request_frame)
    assert ANSWERS[type(request_frame)] is type(answer)
    (event,) = client.receive_data(encode_frame(answer, request_id_of(data)))
    assert isinstance(event, Answered)
    assert (event.request, event.frame) == (type(request_frame), answer)
    assert request_id_of(data) not in client.outstanding


def test_an_answer_of_the_wrong_type_is_a_violation() -> None:
    client = logged_in_client()
    data = client.send(PrekeyCount())
    (event,) = client.receive_data(encode_frame(Ok(), request_id_of(data)))
    assert isinstance(event, Violation)
    assert event.reason == "OK answering PREKEY_COUNT, expected PREKEY_COUNTS or ERROR"
    assert event.request_id == request_id_of(data)


def test_an_answer_to_no_request_is_a_violation() -> None:
    client = logged_in_client()
    (event,) = client.receive_data(encode_frame(PrekeyCounts(1, 1), 99))
    assert isinstance(event, Violation) and "answers no request in flight" in event.reason
    data = client.send(PrekeyCount())
    client.receive_data(encode_frame(PrekeyCounts(1, 1), request_id_of(data)))
    (again,) = client.receive_data(encode_frame(PrekeyCounts(1, 1), request_id_of(data)))
    assert isinstance(again, Violation)  # each request is answered once


def test_a_forgotten_request_has_its_late_answer_reported() -> None:
    client = logged_in_client()
    rid = request_id_of(client.send(PrekeyCount()))
    client.forget(rid)
    (event,) = client.receive_data(encode_frame(PrekeyCounts(1, 1), rid))
    assert isinstance(event, Violation)


def test_pushes_are_typed_and_only_after_login() -> None:
    anonymous = hello_client()
    for push in (deliver(1), QueueDone(0), PrekeysLow(1, 2)):
        (event,) = anonymous.receive_data(encode_frame(push))
        assert isinstance(event, Violation) and "not logged in" in event.reason
    client = logged_in_client()
    events = [client.receive_data(encode_frame(f))[0]
              for f in (deliver(1), QueueDone(1), PrekeysLow(1, 2), deliver(2))]
    assert [type(e) for e in events] == [Delivered, QueueDrained, PrekeysRunningLow,
                                         Delivered]
    assert isinstance(events[1], QueueDrained) and events[1].delivered == 1
    assert isinstance(events[2], PrekeysRunningLow) and \
        (events[2].one_time, events[2].kem_one_time) == (1, 2)
    (twice,) = client.receive_data(encode_frame(QueueDone(0)))
    assert isinstance(twice, Violation) and "second QUEUE_DONE" in twice.reason


def test_a_push_with_a_request_id_and_an_answer_without_one_are_violations() -> None:
    client = logged_in_client()
    rid = request_id_of(client.send(PrekeyCount()))
    (push,) = client.receive_data(encode_frame(deliver(1), rid))
    assert isinstance(push, Violation) and "pushes carry 0" in push.reason
    (answer,) = client.receive_data(encode_frame(PrekeyCounts(0, 0)))
    assert isinstance(answer, Violation) and "request id 0" in answer.reason


def test_an_error_with_request_id_0_is_a_refusal_of_an_unreadable_frame() -> None:
    client = hello_client()
    (event,) = client.receive_data(encode_frame(Error(ErrorCode.MALFORMED_FRAME, "short")))
    assert isinstance(event, Refused) and event.request_id == 0


def test_raw_bytes_bypass_the_state_but_their_answers_are_matched() -> None:
    client = hello_client()
    assert client.expect(b"\x01\x13") == 0  # too short to carry an id
    rid = client.expect(encode_frame(PrekeyCount(), 40))  # not allowed yet: on purpose
    assert rid == 40
    (refused,) = client.receive_data(
        encode_frame(Error(ErrorCode.NOT_AUTHENTICATED, "log in first"), 40))
    assert isinstance(refused, Refused)
    garbage = b"\x01\x13\x00\x00\x00\x29trailing"
    client.expect(garbage)
    (wrong,) = client.receive_data(encode_frame(PrekeyCounts(0, 0), 41))
    assert isinstance(wrong, Violation) and "do not decode" in wrong.reason
    client.expect(encode_frame(PrekeyCount(), 50))
    with pytest.raises(LocalProtocolError):  # the same id twice in flight
        client.expect(encode_frame(PrekeyCount(), 50))
    # a raw LOGIN that succeeds logs the core in, so the pushes after it are expected
    client.expect(encode_frame(client.login_frame("alice", ALICE.sign), 60))
    client.receive_data(encode_frame(Ok(), 60))
    assert client.username == "alice"
    (drained,) = client.receive_data(encode_frame(QueueDone(0)))
    assert isinstance(drained, QueueDrained)


def framed(types: list[int]) -> st.SearchStrategy[bytes]:
    """Mostly a version-1 header of a known type, an id and a random payload, so that
    the payload parsers are reached, not just the header check."""
    header = st.tuples(st.sampled_from(types), st.sampled_from([0, 1, 2, 7, 2**32 - 1]))
    return st.one_of(
        st.binary(max_size=64),
        st.builds(lambda h, p: bytes((1, h[0])) + h[1].to_bytes(4, "big") + p,
                  header, st.binary(max_size=120)),
    )


@settings(max_examples=400)
@given(data=framed(sorted(SERVER_FRAMES)), logged_in=st.booleans())
def test_any_bytes_give_an_event_or_a_remote_protocol_error(data: bytes,
                                                            logged_in: bool) -> None:
    client = logged_in_client() if logged_in else ClientConnection(URL)
    if logged_in:
        client.send(PrekeyCount())
    try:
        events = client.receive_data(data)
    except RemoteProtocolError:
        return
    assert len(events) == 1


@given(frame_type=st.sampled_from(sorted(PUSHES, key=lambda c: c.TYPE)),
       request_id=st.integers(0, 2**32 - 1))
def test_server_frames_headers_alone_never_crash_the_client(frame_type: type[Frame],
                                                           request_id: int) -> None:
    client = logged_in_client()
    data = bytes((1, frame_type.TYPE)) + request_id.to_bytes(4, "big")
    with pytest.raises(RemoteProtocolError):
        client.receive_data(data)  # payload missing: a decode error, nothing else


# ---- the server side -------------------------------------------------------------


def server(now: float = 0.0, limits: Limits = LIMITS) -> ServerConnection:
    conn = ServerConnection(CHALLENGE, limits, frozenset({URL}), now)
    assert decode_server_frame(conn.hello()) == (0, Hello(CHALLENGE, limits))
    return conn


def logged_in_server(name: str = "alice") -> ServerConnection:
    conn = server()
    conn.log_in(name)
    return conn


def test_the_server_says_hello_once_and_before_anything_else() -> None:
    conn = ServerConnection(CHALLENGE, LIMITS, frozenset({URL}), 0)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(encode_frame(PrekeyCount(), 1), 0)
    conn.hello()
    with pytest.raises(LocalProtocolError):
        conn.hello()


def test_a_request_the_state_allows_is_a_request() -> None:
    conn = server()
    frame = Login("alice", bytes(64))
    assert conn.receive_data(encode_frame(frame, 9), 0) == Request(9, frame)
    after = logged_in_server()
    assert after.receive_data(encode_frame(PrekeyCount(), 3), 0) == Request(3, PrekeyCount())


@pytest.mark.parametrize(("data", "code", "request_id"), [
    ("text", ErrorCode.MALFORMED_FRAME, 0),
    (b"\x01\x13\x00", ErrorCode.MALFORMED_FRAME, 0),
    (b"\x02\x13\x00\x00\x00\x05", ErrorCode.UNSUPPORTED_VERSION, 5),
    (b"\x01\x77\x00\x00\x00\x06", ErrorCode.UNKNOWN_FRAME_TYPE, 6),
    (b"\x01\x13\x00\x00\x00\x07extra", ErrorCode.MALFORMED_FRAME, 7),
    (b"\x01\x12\x00\x00\x00\x08\x03B!b", ErrorCode.USERNAME_INVALID, 8),
    (b"\x01\x13\x00\x00\x00\x09" + bytes(5000), ErrorCode.FRAME_TOO_LARGE, 9),
])
def test_bad_frames_are_refused_with_their_documented_code(data: bytes | str,
                                                           code: ErrorCode,
                                                           request_id: int) -> None:
    event = logged_in_server().receive_data(data, 0)
    assert isinstance(event, Refusal)
    assert (event.code, event.request_id, event.frame) == (code, request_id, None)


def test_the_token_bucket_refuses_frames_beyond_the_rate() -> None:
    conn = logged_in_server()
    frame = encode_frame(PrekeyCount(), 1)
    answers = [conn.receive_data(frame, 0.0) for _ in range(LIMITS.rate_burst + 1)]
    assert all(isinstance(a, Request) for a in answers[:-1])
    assert isinstance(answers[-1], Refusal) and answers[-1].code is ErrorCode.RATE_LIMITED
    # rate limiting comes before parsing (16.7): even garbage spends and waits
    assert conn.receive_data(b"junk", 0.0).code is ErrorCode.RATE_LIMITED  # type: ignore[union-attr]
    assert isinstance(conn.receive_data(frame, 1.0 / LIMITS.rate_per_second), Request)


def test_requests_before_login_and_logins_after_it_are_refused() -> None:
    anonymous = server()
    event = anonymous.receive_data(encode_frame(PrekeyCount(), 4), 0)
    assert isinstance(event, Refusal)
    assert (event.code, event.message, event.frame) == (ErrorCode.NOT_AUTHENTICATED,
                                                        "log in first", PrekeyCount())
    again = logged_in_server("bob").receive_data(encode_frame(Login("bob", bytes(64)), 5), 0)
    assert isinstance(again, Refusal)
    assert (again.code, again.message) == (ErrorCode.ALREADY_AUTHENTICATED,
                                           "already logged in as bob")


def test_every_client_frame_is_allowed_in_exactly_one_state() -> None:
    """...except the directory's public reads (PROTOCOL.md 19.10), which witnesses and
    auditors send without an account, and CERT_KEY (20.3): allowed before and after
    login."""
    public = {KtInfo, KtConsistency, KtEntries, CertKey}
    allowed = [t for state in State for t in CLIENT_MAY_SEND[state]
               if t not in public | {SealedSend}]
    assert sorted(allowed, key=lambda c: c.TYPE) == sorted(
        set(CLIENT_FRAMES.values()) - public - {SealedSend}, key=lambda c: c.TYPE)
    assert public <= CLIENT_MAY_SEND[State.ANONYMOUS] & CLIENT_MAY_SEND[State.LOGGED_IN]
    assert public <= CLIENT_MAY_SEND[State.SENDING]
    # SEALED_SEND: before login and on a sending connection, never after login (16.10)
    assert {s for s in State if SealedSend in CLIENT_MAY_SEND[s]} == {State.ANONYMOUS,
                                                                      State.SENDING}
    assert set(ANSWERS) == set(CLIENT_FRAMES.values())


def test_login_checks_the_account_and_the_signature() -> None:
    conn = server()
    client = hello_client()
    good = client.login_frame("alice", ALICE.sign)
    conn.check_login(good, ALICE.public)
    with pytest.raises(RequestRefused) as unknown:
        conn.check_login(good, None)
    with pytest.raises(RequestRefused) as bad:
        conn.check_login(good, MALLORY.public)
    assert bad.value.code is ErrorCode.BAD_SIGNATURE
    # an unknown name is answered like a wrong key: LOGIN does not tell names apart
    assert (unknown.value.code, unknown.value.message) == (bad.value.code, bad.value.message)
    elsewhere = ClientConnection("ws://evil.example:8765")
    elsewhere.receive_data(HELLO)
    with pytest.raises(RequestRefused):  # signed for another server
        conn.check_login(elsewhere.login_frame("alice", ALICE.sign), ALICE.public)
    conn.log_in("alice")
    assert conn.challenge == b""  # used up
    with pytest.raises(LocalProtocolError):
        conn.log_in("alice")


def test_answers_are_encoded_only_with_the_type_their_request_calls_for() -> None:
    conn = logged_in_server()
    request = Request(12, PrekeyCount())
    answer = conn.answer(request, PrekeyCounts(1, 2))
    assert answer is not None and decode_server_frame(answer) == (12, PrekeyCounts(1, 2))
    with pytest.raises(LocalProtocolError):
        conn.answer(request, Ok())
    assert decode_server_frame(conn.refuse(12, ErrorCode.NO_PREKEYS, "none")) == \
        (12, Error(ErrorCode.NO_PREKEYS, "none"))


def test_a_quiet_ack_gets_no_answer_and_a_numbered_one_gets_ok() -> None:
    """PROTOCOL.md 16.5: ACK with request id 0 is carried out and answered by nothing;
    with any other id it is answered by OK as before."""
    ids = (bytes(16), bytes([1]) * 16)
    client = logged_in_client()
    quiet = client.send_quiet(Ack(ids))
    assert decode_client_frame(quiet) == (0, Ack(ids))
    assert not client.outstanding  # nothing awaited
    conn = logged_in_server()
    request = conn.receive_data(quiet, 0)
    assert request == Request(0, Ack(ids))
    assert conn.answer(request, Ok()) is None
    numbered = conn.receive_data(encode_frame(Ack(ids), 7), 0)
    assert isinstance(numbered, Request)
    assert conn.answer(numbered, Ok()) == encode_frame(Ok(), 7)
    # only ACK is quiet: anything else with request id 0 is answered as before
    count = conn.receive_data(encode_frame(PrekeyCount(), 0), 0)
    assert isinstance(count, Request)
    assert conn.answer(count, PrekeyCounts(1, 2)) == encode_frame(PrekeyCounts(1, 2), 0)


def test_a_quiet_ack_that_fails_is_refused_with_request_id_0() -> None:
    """Not logged in, or not an ACK at all: ERROR with request id 0, which the client
    reads as the refusal of its quiet ACK."""
    event = server().receive_data(encode_frame(Ack((bytes(16),)), 0), 0)
    assert isinstance(event, Refusal)
    assert (event.request_id, event.code) == (0, ErrorCode.NOT_AUTHENTICATED)
    bad = logged_in_server().receive_data(bytes((1, Ack.TYPE)) + bytes(4) + b"\x00\x00", 0)
    assert isinstance(bad, Refusal)
    assert (bad.request_id, bad.code) == (0, ErrorCode.MALFORMED_FRAME)
    client = logged_in_client()
    (refused,) = client.receive_data(encode_frame(Error(ErrorCode.INTERNAL_ERROR, "x")))
    assert isinstance(refused, Refused) and refused.request_id == 0


def test_only_a_logged_in_client_sends_a_quiet_ack_and_only_an_ack() -> None:
    with pytest.raises(LocalProtocolError):
        hello_client().send_quiet(Ack((bytes(16),)))
    with pytest.raises(LocalProtocolError):
        logged_in_client().send_quiet(PrekeyCount())  # type: ignore[arg-type]


def test_send_limits_are_checked_before_storage() -> None:
    conn = logged_in_server()
    conn.check_send(Send(tuple(Outgoing("bob", b"x") for _ in range(3))))
    with pytest.raises(RequestRefused) as many:
        conn.check_send(Send(tuple(Outgoing("bob", b"x") for _ in range(4))))
    assert many.value.code is ErrorCode.TOO_MANY_RECIPIENTS
    with pytest.raises(RequestRefused) as large:
        conn.check_send(Send((Outgoing("bob", bytes(1001)),)))
    assert large.value.code is ErrorCode.ENVELOPE_TOO_LARGE


def test_prekey_signatures_must_be_the_accounts() -> None:
    _, spk = make_signed_prekey(ALICE, 1)
    _, kem = make_kem_prekey(ALICE, 2)
    check_prekeys((spk, kem), ALICE.public)
    with pytest.raises(RequestRefused) as refused:
        check_prekeys((spk, kem), MALLORY.public)
    assert refused.value.code is ErrorCode.BAD_SIGNATURE
    assert "prekey 1" in refused.value.message


def _frames(data: list[bytes | None]) -> list[Frame]:
    return [decode_server_frame(d)[1] for d in data if d is not None]


def test_the_queue_goes_out_before_live_pushes_and_queue_done_counts_it() -> None:
    conn = logged_in_server()
    conn.start_drain()
    out: list[bytes | None] = [conn.deliver(1, deliver(1))]
    assert conn.push(3, deliver(3)) is None  # held: it must not overtake the queue
    assert conn.push(2, deliver(2)) is None
    out.append(conn.deliver(2, deliver(2)))  # the queue read it too
    while (data := conn.next_held()) is not None:
        out.append(data)
    out.append(conn.end_drain())
    assert _frames(out) == [deliver(1), deliver(2), deliver(3), QueueDone(3)]
    # live from now on, each envelope at most once
    assert conn.push(3, deliver(3)) is None
    assert _frames([conn.push(4, deliver(4))]) == [deliver(4)]


def test_the_queue_is_only_delivered_after_login() -> None:
    with pytest.raises(LocalProtocolError):
        server().start_drain()


def test_prekeys_low_below_the_threshold_only() -> None:
    conn = logged_in_server()
    assert conn.prekeys_low(10, 10) is None
    assert _frames([conn.prekeys_low(10, 9)]) == [PrekeysLow(10, 9)]


@settings(max_examples=400)
@given(data=st.one_of(framed(sorted(CLIENT_FRAMES)), st.text(max_size=8)),
       logged_in=st.booleans())
def test_the_server_core_answers_any_message_with_a_request_or_a_refusal(
        data: bytes | str, logged_in: bool) -> None:
    conn = logged_in_server() if logged_in else server()
    event = conn.receive_data(data, 0.0)
    assert isinstance(event, Request | Refusal)
    if isinstance(event, Request):
        assert type(event.frame) in CLIENT_MAY_SEND[conn.state]


# ---- both sides together ---------------------------------------------------------


def test_a_whole_conversation_between_the_two_cores() -> None:
    srv = ServerConnection(CHALLENGE, LIMITS, frozenset({URL}), 0)
    client = ClientConnection(URL)
    assert isinstance(client.receive_data(srv.hello())[0], HelloReceived)
    request = srv.receive_data(client.send(client.register_frame("alice", ALICE.public,
                                                                 ALICE.sign)), 0)
    assert isinstance(request, Request) and isinstance(request.frame, Register)
    srv.check_register(request.frame)
    srv.log_in(request.frame.username)
    srv.start_drain()
    wire = [srv.answer(request, Ok()), srv.deliver(1, deliver(1)), srv.end_drain()]
    events = [e for data in wire if data is not None for e in client.receive_data(data)]
    assert [type(e) for e in events] == [Answered, Delivered, QueueDrained]
    assert client.username == srv.username == "alice"
    count = srv.receive_data(client.send(PrekeyCount()), 0.1)
    assert isinstance(count, Request)
    answered = srv.answer(count, PrekeyCounts(5, 6))
    assert answered is not None
    (answer,) = client.receive_data(answered)
    assert isinstance(answer, Answered) and answer.frame == PrekeyCounts(5, 6)
    assert not client.outstanding


def test_frame_names_are_the_spec_names() -> None:
    assert [frame_name(c) for c in (Ok, PrekeyCounts, PrekeysLow, QueueDone, Register)] == \
        ["OK", "PREKEY_COUNTS", "PREKEYS_LOW", "QUEUE_DONE", "REGISTER"]


# ---- sealed sending (PROTOCOL.md 16.10) ---------------------------------------------


SEALED = SealedSend((SealedOutgoing("bob", bytes(range(32)), b"sealed"),
                     SealedOutgoing("carol.x", b"\xff" * 32, b"\x01" * 300)))


def test_sealed_frames_round_trip_and_refuse_bad_layouts() -> None:
    for frame in (SEALED, SetCapability(True, b"\x07" * 32), SetCapability(False, bytes(32))):
        assert decode_client_frame(encode_frame(frame, 9)) == (9, frame)
    cap = encode_frame(SetCapability(False, bytes(32)), 9)
    assert cap[1] == 0x15 and len(cap) == 6 + 1 + 32
    for flags in (2, 0x80, 0xFF):
        with pytest.raises(RemoteProtocolError, match="flags"):
            decode_client_frame(cap[:6] + bytes([flags]) + cap[7:])
    sealed = encode_frame(SEALED, 9)
    assert sealed[1] == 0x22 and sealed[6:8] == b"\x00\x02"
    for bad in (sealed[:6] + b"\x00\x00", sealed[:-1], sealed + b"\x00",
                encode_frame(SealedSend((SealedOutgoing("bob", bytes(32), b""),)), 9)):
        with pytest.raises(RemoteProtocolError):
            decode_client_frame(bad)
    assert ANSWERS[SealedSend] is Sent and ANSWERS[SetCapability] is Ok


def test_a_sealed_send_makes_a_connection_that_never_logs_in() -> None:
    conn = server(limits=dataclasses.replace(LIMITS, rate_burst=100))
    event = conn.receive_data(encode_frame(SEALED, 3), 0)
    assert isinstance(event, Request) and conn.state is State.SENDING
    again = conn.receive_data(encode_frame(SEALED, 4), 0)
    assert isinstance(again, Request)
    assert isinstance(conn.receive_data(encode_frame(KtInfo(), 5), 0), Request)
    for login in (Login("alice", bytes(64)), Register("alice", ALICE.public, bytes(64))):
        refused = conn.receive_data(encode_frame(login, 6), 0)
        assert isinstance(refused, Refusal)
        assert refused.code is ErrorCode.ALREADY_AUTHENTICATED
        assert "never logs in" in refused.message
    for frame in (PrekeyCount(), Send((Outgoing("bob", b"x"),)),
                  SetCapability(False, bytes(32))):
        refused = conn.receive_data(encode_frame(frame, 7), 0)
        assert isinstance(refused, Refusal) and refused.code is ErrorCode.NOT_AUTHENTICATED
    with pytest.raises(LocalProtocolError):
        conn.log_in("alice")
    # a client connection follows along
    client = hello_client()
    client.send(SEALED)
    assert client.state is State.SENDING
    with pytest.raises(LocalProtocolError):
        client.send(client.login_frame("alice", ALICE.sign))


def test_sealed_send_is_refused_after_login_and_set_capability_before() -> None:
    refused = logged_in_server("bob").receive_data(encode_frame(SEALED, 5), 0)
    assert isinstance(refused, Refusal) and refused.code is ErrorCode.ALREADY_AUTHENTICATED
    assert isinstance(logged_in_server("bob").receive_data(
        encode_frame(SetCapability(True, bytes(32)), 6), 0), Request)
    anonymous = server()
    refused = anonymous.receive_data(encode_frame(SetCapability(True, bytes(32)), 6), 0)
    assert isinstance(refused, Refusal) and refused.code is ErrorCode.NOT_AUTHENTICATED
    assert anonymous.state is State.ANONYMOUS  # only an accepted SEALED_SEND changes it
    with pytest.raises(LocalProtocolError):
        logged_in_client().send(SEALED)


def test_sealed_send_has_sends_limits() -> None:
    conn = server()
    too_many = SealedSend(tuple(SealedOutgoing("bob", bytes(32), b"x") for _ in range(4)))
    with pytest.raises(RequestRefused) as many:
        check_send(too_many, LIMITS)
    assert many.value.code is ErrorCode.TOO_MANY_RECIPIENTS
    with pytest.raises(RequestRefused) as big:
        check_send(SealedSend((SealedOutgoing("bob", bytes(32), b"x" * 1001),)), conn.limits)
    assert big.value.code is ErrorCode.ENVELOPE_TOO_LARGE
