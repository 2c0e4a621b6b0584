"""Sender certificates (docs/PROTOCOL.md 20): the layout round-trips, and every
refusal is the documented error: a bad signature, an expired certificate, bytes that
do not follow the layout. A flipped byte never verifies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.wire import codec
from protocol.wire.certificates import (
    CERT_PURPOSE,
    MAX_CERTIFICATE_LEN,
    SenderCertificate,
    certificate_statement,
    decode,
    encode,
    issue,
    signer_from_seed,
    verify_certificate,
)
from protocol.wire.errors import (
    BadSignature,
    CertificateExpired,
    DecodeError,
    InvalidUsername,
    RemoteProtocolError,
)
from protocol.wire.publickeys import encode_key, verify_signature

RELAY_SEED = bytes(range(32))
SIGN, RELAY_PUBLIC = signer_from_seed(RELAY_SEED)
OTHER_PUBLIC = signer_from_seed(bytes(32))[1]
ALICE_IK = signer_from_seed(b"\x01" * 32)[1]
EXPIRES = 1_900_000_000
NOW = EXPIRES - 3600

CERT = issue(RELAY_SEED, "alice", ALICE_IK, EXPIRES)


def test_layout_and_round_trip() -> None:
    assert CERT[0] == 0x01
    assert CERT[1:7] == b"\x05alice"
    assert CERT[7:40] == encode_key(0x01, ALICE_IK)
    assert CERT[40:48] == codec.u64(EXPIRES)
    assert len(CERT) == 1 + 6 + 33 + 8 + 64
    cert, signature = decode(CERT)
    assert cert == SenderCertificate("alice", ALICE_IK, EXPIRES)
    assert encode(cert, signature) == CERT
    verify_signature(RELAY_PUBLIC, signature,
                     CERT_PURPOSE + b"\x05alice" + encode_key(0x01, ALICE_IK)
                     + codec.u64(EXPIRES))
    assert verify_certificate(CERT, RELAY_PUBLIC, NOW) == cert


def test_seed_and_callable_issue_the_same_bytes() -> None:
    assert issue(SIGN, "alice", ALICE_IK, EXPIRES) == CERT  # Ed25519 is deterministic


def test_longest_name_fits_the_maximum() -> None:
    long = issue(RELAY_SEED, "a" * 32, ALICE_IK, EXPIRES)
    assert len(long) == MAX_CERTIFICATE_LEN
    assert verify_certificate(long, RELAY_PUBLIC, NOW).username == "a" * 32


def test_statement_differs_from_the_certificate_body() -> None:
    statement = certificate_statement("alice", ALICE_IK, EXPIRES)
    assert statement.startswith(b"blindrelay-sender-cert-v1\x00")
    assert statement[len(CERT_PURPOSE):] == CERT[1:48]


def test_another_relays_key_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify_certificate(CERT, OTHER_PUBLIC, NOW)


def test_a_changed_name_or_key_or_expiry_is_a_bad_signature() -> None:
    _, signature = decode(CERT)
    bob_ik = signer_from_seed(b"\x02" * 32)[1]
    for forged in (SenderCertificate("alicf", ALICE_IK, EXPIRES),
                   SenderCertificate("alice", bob_ik, EXPIRES),
                   SenderCertificate("alice", ALICE_IK, EXPIRES + 1)):
        with pytest.raises(BadSignature):
            verify_certificate(encode(forged, signature), RELAY_PUBLIC, NOW)


def test_expiry_is_exclusive() -> None:
    assert verify_certificate(CERT, RELAY_PUBLIC, EXPIRES - 1)
    for now in (EXPIRES, EXPIRES + 0.5, EXPIRES + 86400):
        with pytest.raises(CertificateExpired):
            verify_certificate(CERT, RELAY_PUBLIC, now)


def test_signature_is_checked_before_expiry() -> None:
    with pytest.raises(BadSignature):
        verify_certificate(CERT, OTHER_PUBLIC, EXPIRES + 1)


@pytest.mark.parametrize(("data", "error"), [
    (b"", DecodeError),
    (b"\x02" + CERT[1:], DecodeError),
    (b"\x00" + CERT[1:], DecodeError),
    (CERT + b"\x00", DecodeError),
    (CERT[:-1], DecodeError),
    (CERT[:48], DecodeError),
    (CERT[:1] + b"\x05Alice" + CERT[7:], InvalidUsername),
    (CERT[:1] + b"\x02al" + CERT[4:], DecodeError),  # misaligned: not a key after it
    (CERT[:7] + b"\x05" + CERT[8:], DecodeError),  # an X25519 type byte
    (CERT[:8] + bytes(32) + CERT[40:], DecodeError),  # a small-order key
])
def test_malformed_bytes_are_refused(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_certificate(data, RELAY_PUBLIC, NOW)
    with pytest.raises(error):
        decode(data)


def test_every_refusal_is_a_remote_protocol_error() -> None:
    for error in (BadSignature, CertificateExpired, DecodeError, InvalidUsername):
        assert issubclass(error, RemoteProtocolError)


def test_issue_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(InvalidUsername):
        issue(RELAY_SEED, "Alice", ALICE_IK, EXPIRES)
    with pytest.raises(ValueError):
        issue(RELAY_SEED, "alice", ALICE_IK[:31], EXPIRES)
    with pytest.raises(DecodeError):
        issue(RELAY_SEED, "alice", bytes(32), EXPIRES)
    with pytest.raises(ValueError):
        issue(RELAY_SEED, "alice", ALICE_IK, 2**64)
    with pytest.raises(ValueError):
        issue(b"short", "alice", ALICE_IK, EXPIRES)


@given(index=st.integers(0, len(CERT) - 1), mask=st.integers(1, 255))
def test_a_flipped_byte_never_verifies(index: int, mask: int) -> None:
    data = bytearray(CERT)
    data[index] ^= mask
    with pytest.raises(RemoteProtocolError):
        verify_certificate(bytes(data), RELAY_PUBLIC, NOW)


@given(extra=st.binary(min_size=1, max_size=8))
def test_trailing_bytes_never_verify(extra: bytes) -> None:
    with pytest.raises(DecodeError):
        verify_certificate(CERT + extra, RELAY_PUBLIC, NOW)
