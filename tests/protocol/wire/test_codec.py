"""Strict decoding of every encoded structure: truncation, trailing bytes, unknown
version, type, kind and flag bytes are DecodeErrors, and no input whatever makes a
decoder raise anything outside protocol.errors.ProtocolError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.e2e.keys import IdentityKeyPair, decode_key
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage, RatchetMessage
from protocol.e2e.padding import unpad
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIPPED_KEYS, Ratchet
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.wire import codec
from protocol.wire.errors import DecodeError, ProtocolError
from protocol.wire.prekeys import KemPreKey, OneTimePreKey, PreKeyBundle, SignedPreKey
from protocol.wire.usernames import decode_username
from tests.protocol.support import DetRng, Device, certificate, ratchet_pair, talking_pair

# -- sample encodings of every structure


def _samples() -> dict[str, list[bytes]]:
    bob = Device.create("codec-bob")
    alice_id = IdentityKeyPair.generate(DetRng(b"codec-alice"))
    with_opk = bob.bundle(opk=True, one_time_kem=True)
    without = bob.bundle(opk=False, one_time_kem=False)

    alice = Session.initiate(alice_id, with_opk)
    prekey_message = alice.encrypt(b"first")[1]
    alice_no_opk = Session.initiate(alice_id, without)
    prekey_message_no_opk = alice_no_opk.encrypt(b"x" * 300)[1]
    responder, _, _ = Session.respond(bob.identity, prekey_message, bob.lookup)
    reply = responder.encrypt(b"reply")[1]
    initiator_after_reply = Session.deserialize(alice.serialize())
    initiator_after_reply.decrypt(MessageKind.RATCHET, reply)

    r_alice, r_bob = talking_pair(DetRng(b"codec"))
    r_alice.encrypt(b"skipped")
    r_bob.decrypt(r_alice.encrypt(b"skipping"))
    fresh_alice, fresh_bob = ratchet_pair(DetRng(b"codec-fresh"))
    assert with_opk.one_time_prekey is not None

    return {
        "bundle": [with_opk.encode(), without.encode()],
        "signed-prekey": [with_opk.signed_prekey.encode()],
        "kem-prekey": [with_opk.kem_prekey.encode()],
        "one-time-prekey": [with_opk.one_time_prekey.encode()],
        "header": [reply[:HEADER_LEN]],
        "ratchet-message": [reply],
        "prekey-message": [prekey_message, prekey_message_no_opk],
        "sealed-content": [
            SealedContent(certificate("alice"), MessageKind.PREKEY, prekey_message).encode(),
            SealedContent(certificate("bob.b-2_c"), MessageKind.RATCHET, reply).encode(),
        ],
        "ratchet-state": [r.serialize() for r in (r_alice, r_bob, fresh_alice, fresh_bob)],
        "session-state": [alice.serialize(), responder.serialize(),
                          initiator_after_reply.serialize()],
    }


SAMPLES = _samples()


DECODERS: dict[str, Callable[[bytes], object]] = {
    "bundle": PreKeyBundle.decode,
    "signed-prekey": SignedPreKey.decode,
    "kem-prekey": KemPreKey.decode,
    "one-time-prekey": OneTimePreKey.decode,
    "header": Header.decode,
    "ratchet-message": RatchetMessage.decode,
    "prekey-message": PreKeyMessage.decode,
    "sealed-content": SealedContent.decode,
    "ratchet-state": Ratchet.deserialize,
    "session-state": Session.deserialize,
}

# Structures whose every field has a known length: any proper prefix and any
# appended byte is malformed. (A ratchet message's body runs to the end, so only its
# fixed parts can be checked this way. A sealed content is padded to its size class,
# which its message's length fixes: PROTOCOL.md section 10.)
SELF_DELIMITING = ["bundle", "signed-prekey", "kem-prekey", "one-time-prekey", "header",
                   "sealed-content", "ratchet-state", "session-state"]


def _cases(names: list[str]) -> list[tuple[str, int]]:
    return [(name, i) for name in names for i in range(len(SAMPLES[name]))]


def _reencode(value: object) -> bytes:
    if isinstance(value, Ratchet | Session):
        return value.serialize()
    encoded = value.encode()  # type: ignore[attr-defined]
    assert isinstance(encoded, bytes)
    return encoded


@pytest.mark.parametrize(("name", "index"), _cases(list(DECODERS)))
def test_every_structure_round_trips(name: str, index: int) -> None:
    data = SAMPLES[name][index]
    assert _reencode(DECODERS[name](data)) == data


@pytest.mark.parametrize(("name", "index"), _cases(SELF_DELIMITING))
def test_every_truncation_and_any_trailing_byte_is_rejected(name: str, index: int) -> None:
    data = SAMPLES[name][index]
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            DECODERS[name](data[:cut])
    for extra in (b"\x00", b"\x01", data):
        with pytest.raises(DecodeError):
            DECODERS[name](data + extra)


def _body_start(data: bytes) -> int:
    """Where the ciphertext of a ratchet or initial message starts."""
    if data[:2] == b"\x01\x05":  # a ratchet message starts with its header
        return HEADER_LEN
    return len(PreKeyMessage.decode(data).encode_prefix()) + HEADER_LEN


def _whole_blocks_cut(data: bytes, cut: int) -> bool:
    body = cut - _body_start(data)
    return body >= 48 and (len(data) - cut) % 16 == 0


@pytest.mark.parametrize(("name", "index"), _cases(["ratchet-message", "prekey-message"]))
def test_messages_reject_truncations_that_break_the_layout(name: str, index: int) -> None:
    """A message's ciphertext runs to the end, so a cut of whole blocks still parses
    (the MAC rejects it: see test_ratchet and test_session); every other cut, and any
    cut into the header or the PQXDH prefix, is a DecodeError."""
    data = SAMPLES[name][index]
    for cut in range(len(data)):
        if _whole_blocks_cut(data, cut):
            DECODERS[name](data[:cut])
        else:
            with pytest.raises(DecodeError):
                DECODERS[name](data[:cut])
    for extra in (1, 15, 17):
        with pytest.raises(DecodeError):
            DECODERS[name](data + bytes(extra))


# -- unknown version, type, kind and flag bytes


@dataclass(frozen=True)
class Byte:
    name: str
    index: int  # which sample
    offset: int
    valid: frozenset[int]


_BUNDLE_OPK = 1 + 33 + 101 + 1 + 1253 + 1  # where the one-time prekey record starts
BYTES = [
    Byte("bundle", 0, 0, frozenset({1})),  # version
    Byte("bundle", 0, 1, frozenset({0x01})),  # Encode(IK) type
    Byte("bundle", 0, 1 + 33 + 4, frozenset({0x05})),  # SPK type
    Byte("bundle", 0, 1 + 33 + 101, frozenset({1, 2})),  # KEM kind
    Byte("bundle", 0, 1 + 33 + 101 + 1 + 4, frozenset({0x0A})),  # KEM key type
    Byte("bundle", 1, _BUNDLE_OPK - 1, frozenset({0})),  # has_opk (1 would need an OPK)
    Byte("bundle", 0, _BUNDLE_OPK - 1, frozenset({1})),  # has_opk (0 leaves trailing bytes)
    Byte("bundle", 0, _BUNDLE_OPK + 4, frozenset({0x05})),  # OPK type
    Byte("signed-prekey", 0, 4, frozenset({0x05})),
    Byte("kem-prekey", 0, 4, frozenset({0x0A})),
    Byte("one-time-prekey", 0, 4, frozenset({0x05})),
    Byte("header", 0, 0, frozenset({1})),
    Byte("header", 0, 1, frozenset({0x05})),
    Byte("ratchet-message", 0, 0, frozenset({1})),
    Byte("ratchet-message", 0, 1, frozenset({0x05})),
    Byte("prekey-message", 0, 0, frozenset({1})),  # version
    Byte("prekey-message", 0, 1, frozenset({0x01})),  # Encode(IK_A) type
    Byte("prekey-message", 0, 34, frozenset({0x05})),  # Encode(EK_A) type
    Byte("prekey-message", 0, 71, frozenset({1, 2})),  # KEM kind
    Byte("prekey-message", 0, 76, frozenset({1})),  # has_opk
    Byte("prekey-message", 1, 76, frozenset({0})),
    Byte("sealed-content", 0, 0, frozenset({3})),  # version
    Byte("sealed-content", 0, 1, frozenset({1, 2})),  # kind
    Byte("sealed-content", 0, 4, frozenset({1})),  # the certificate's version
    Byte("sealed-content", 0, 11, frozenset({0x01})),  # the certificate's Encode(IK) type
    Byte("ratchet-state", 0, 0, frozenset({1})),  # version
    Byte("ratchet-state", 0, 33, frozenset({1})),  # DHr present
    Byte("ratchet-state", 0, 98, frozenset({1})),  # CKs present
    Byte("ratchet-state", 0, 131, frozenset({1})),  # CKr present
    Byte("session-state", 0, 0, frozenset({1})),  # version
    Byte("session-state", 0, 1, frozenset({0x01})),  # Encode(peer IK) type
    Byte("session-state", 0, 34, frozenset({1})),  # pending prefix present
]


@pytest.mark.parametrize("byte", BYTES, ids=lambda b: f"{b.name}[{b.index}]@{b.offset}")
def test_every_unknown_version_type_kind_or_flag_value_is_rejected(byte: Byte) -> None:
    data = SAMPLES[byte.name][byte.index]
    assert data[byte.offset] in byte.valid
    for value in range(256):
        if value in byte.valid:
            continue
        changed = data[: byte.offset] + bytes((value,)) + data[byte.offset + 1 :]
        with pytest.raises(DecodeError):
            DECODERS[byte.name](changed)


def test_saved_ratchet_states_with_too_many_entries_are_rejected() -> None:
    alice, _ = ratchet_pair()
    base = alice.serialize()
    assert base.endswith(codec.u32(0) + b"\x00")  # no skipped keys, no retired keys
    head = base[:-5]
    too_many = head + codec.u32(MAX_SKIPPED_KEYS + 1) + bytes(68 * (MAX_SKIPPED_KEYS + 1)) + b"\0"
    with pytest.raises(DecodeError):
        Ratchet.deserialize(too_many)
    retired = head + codec.u32(0) + bytes((MAX_RETIRED + 1,)) + bytes(32 * (MAX_RETIRED + 1))
    with pytest.raises(DecodeError):
        Ratchet.deserialize(retired)
    at_limit = head + codec.u32(0) + bytes((MAX_RETIRED,)) + bytes(32 * MAX_RETIRED)
    assert Ratchet.deserialize(at_limit).serialize() == at_limit


def test_a_saved_session_with_prefix_bytes_but_no_prefix_flag_is_rejected() -> None:
    data = SAMPLES["session-state"][0]  # the initiator, with a pending prefix
    assert data[34] == 1
    with pytest.raises(DecodeError):
        Session.deserialize(data[:34] + b"\x00" + data[35:])


# -- no input makes a decoder raise anything but a ProtocolError


_BOB = Device.create("codec-bob")
ALL_DECODERS: dict[str, Callable[[bytes], object]] = {
    **DECODERS,
    "unpad": unpad,
    "username": decode_username,
    "ed25519-key": lambda d: decode_key(0x01, d),
    "x25519-key": lambda d: decode_key(0x05, d),
    "mlkem-key": lambda d: decode_key(0x0A, d),
    "unseal": lambda d: unseal(_BOB.identity, d),
    "session-respond": lambda d: Session.respond(_BOB.identity, d, _BOB.lookup),
}

_MUTATION_SOURCES = {
    "unpad": [b"abc\x80" + bytes(155)],
    "username": [b"alice"],
    "ed25519-key": [b"\x01" + bytes(32)],
    "x25519-key": [b"\x05" + bytes(32)],
    "mlkem-key": [b"\x0a" + bytes(1184)],
    "unseal": [seal(_BOB.public, SealedContent(certificate("alice"), MessageKind.RATCHET, b"m"))],
    "session-respond": SAMPLES["prekey-message"],
}


def _sources(name: str) -> list[bytes]:
    return SAMPLES.get(name) or _MUTATION_SOURCES.get(name) or [b""]


@st.composite
def mutated(draw: st.DrawFn, sources: list[bytes]) -> bytes:
    """A valid encoding with a few bytes overwritten, flipped, inserted or removed, or
    cut short: inputs that get past the first checks."""
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "flip", "insert", "delete", "cut"]))
        pos = draw(st.integers(0, len(data)))
        value = draw(st.integers(0, 255))
        if op == "set" and pos < len(data):
            data[pos] = value
        elif op == "flip" and pos < len(data):
            data[pos] ^= 1 << (value % 8)
        elif op == "insert":
            data[pos:pos] = bytes((value,))
        elif op == "delete":
            del data[pos : pos + 1 + value % 4]
        elif op == "cut":
            del data[pos:]
    return bytes(data)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_protocol_errors(decode: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@pytest.mark.parametrize("name", sorted(ALL_DECODERS))
@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_protocol_errors(name: str, data: bytes) -> None:
    _only_protocol_errors(ALL_DECODERS[name], data)


@pytest.mark.parametrize("name", sorted(ALL_DECODERS))
@FUZZ
@given(st.data())
def test_mutated_encodings_raise_only_protocol_errors(name: str, data: st.DataObject) -> None:
    sample = data.draw(mutated(_sources(name)))
    _only_protocol_errors(ALL_DECODERS[name], sample)


@pytest.mark.parametrize("name", ["bundle", "signed-prekey", "kem-prekey", "one-time-prekey",
                                  "header", "ratchet-message", "prekey-message",
                                  "sealed-content"])
@FUZZ
@given(st.data())
def test_whatever_decodes_is_canonical(name: str, data: st.DataObject) -> None:
    """Strictness: an accepted input is exactly the encoding of what it decoded to,
    so no structure has two encodings."""
    sample = data.draw(mutated(SAMPLES[name]))
    try:
        value = DECODERS[name](sample)
    except DecodeError:
        return
    assert _reencode(value) == sample


_FUZZ_ALICE, _FUZZ_BOB = talking_pair(DetRng(b"fuzz"))
_FUZZ_WIRES = [_FUZZ_ALICE.encrypt(b"%d" % i) for i in range(3)]


@FUZZ
@given(st.one_of(st.binary(max_size=600), mutated(_FUZZ_WIRES)))
def test_garbage_or_mangled_messages_to_a_ratchet_change_nothing(data: bytes) -> None:
    bob = Ratchet.deserialize(_FUZZ_BOB.serialize())
    before = bob.serialize()
    try:
        plaintext = bob.decrypt(data)
    except ProtocolError:
        assert bob.serialize() == before
    else:
        assert data in _FUZZ_WIRES  # only a genuine message decrypts
        assert plaintext == b"%d" % _FUZZ_WIRES.index(data)
