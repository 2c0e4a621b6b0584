"""What an envelope's size tells the relay (PROTOCOL.md section 10.1): its class, which
depends on the plaintext's length only, never on the sender's name or on whether the
message is a first (PreKey) message, a later one, a receipt or a text."""

from __future__ import annotations

import pytest

from protocol.e2e.content import Receipt, ReceiptType, Text
from protocol.e2e.errors import MessageTooLarge
from protocol.e2e.sealed import MessageKind, SealedContent, seal, unseal
from protocol.e2e.session import Session
from protocol.e2e.size_classes import (
    ENVELOPE_CLASSES,
    MAX_ENVELOPE_CLASS,
    PREKEY_PREFIX_MAX,
    RATCHET_OVERHEAD,
    envelope_size,
    max_plaintext_len,
)
from protocol.wire.errors import LocalProtocolError
from protocol.wire.usernames import check_username
from tests.protocol.support import DetRng, Device, certificate

SHORT = check_username("bob")
LONG = check_username("a-name-of-exactly-32-characters0")
assert len(LONG) == 32
CERTS = {SHORT: certificate(SHORT), LONG: certificate(LONG)}
"""The shortest and the longest certificates (139 bytes) a relay issues."""
assert len(CERTS[LONG]) == 139

TEXTS = [0, 1, 2, 100, 448, 449, 1000, 2528, 2529, 5000, 20_000, 60_000]
RECEIPT_IDS = [1, 2, 29, 30, 100, 500]


def plaintexts() -> list[tuple[str, bytes]]:
    out = [(f"text of {n} bytes", Text(bytes(16), 1_700_000_000_000, "x" * n).encode())
           for n in TEXTS]
    out += [(f"receipt for {n} messages", Receipt(ReceiptType.READ,
                                                   tuple(bytes([i % 256]) * 16
                                                         for i in range(n))).encode())
            for n in RECEIPT_IDS]
    return out


def first_and_later(opk: bool) -> tuple[Session, Session]:
    """alice's session before bob replied (her messages carry the PQXDH prefix) and
    after (they do not)."""
    bob = Device.create("sizes-bob")
    alice = Device.create("sizes-alice")
    first = Session.initiate(alice.identity, bob.bundle(opk=opk), rng=DetRng(b"sizes"))
    later = Session.deserialize(first.serialize())
    kind, message = later.encrypt(b"hello")
    assert kind is MessageKind.PREKEY
    responder, _, _ = Session.respond(bob.identity, message, bob.lookup)
    later.decrypt(*responder.encrypt(b"reply"))
    return first, later


@pytest.mark.parametrize("opk", [True, False], ids=["with OPK", "without OPK"])
def test_sender_name_and_message_kind_leave_no_trace_in_the_size(opk: bool) -> None:
    first, later = first_and_later(opk)
    recipient = Device.create("sizes-bob").public
    seen: dict[str, int] = {}
    for what, plaintext in plaintexts():
        sizes = {}
        for stage, session in (("first", first), ("later", later)):
            kind, message = session.encrypt(plaintext)
            assert kind is (MessageKind.PREKEY if stage == "first" else MessageKind.RATCHET)
            for name in (SHORT, LONG):
                sizes[stage, name] = len(seal(recipient, SealedContent(CERTS[name], kind, message)))
        assert len(set(sizes.values())) == 1, f"{what}: {sizes}"
        size = sizes["first", SHORT]
        assert size in ENVELOPE_CLASSES
        assert size == envelope_size(len(plaintext))  # what a client predicts before encrypting
        seen[what] = size
    # a short text, a first message with a short text and any receipt of a few messages
    # all look alike; only long messages move up
    assert {seen[f"text of {n} bytes"] for n in (0, 2, 100, 448)} == {2048}
    assert {seen[f"receipt for {n} messages"] for n in (1, 2, 29)} == {2048}
    assert seen["text of 449 bytes"] == seen["receipt for 30 messages"] == 4096
    assert seen["text of 2528 bytes"] == 4096
    assert seen["text of 2529 bytes"] == 8192
    assert seen["text of 60000 bytes"] == 65536


def test_a_first_message_with_a_short_text_from_the_longest_name_fits_the_smallest_class() \
        -> None:
    first, _ = first_and_later(opk=True)
    kind, message = first.encrypt(Text(bytes(16), 0, "hi").encode())
    assert len(message) == PREKEY_PREFIX_MAX + RATCHET_OVERHEAD + 160
    envelope = seal(Device.create("sizes-bob").public, SealedContent(CERTS[LONG], kind, message))
    assert len(envelope) == ENVELOPE_CLASSES[0] == 2048


def test_the_classes_are_2048_doubling_to_the_relays_default_max_envelope() -> None:
    from server.config import default_limits

    assert tuple(2048 << i for i in range(6)) == ENVELOPE_CLASSES
    assert default_limits().max_envelope == MAX_ENVELOPE_CLASS


def test_every_bucket_count_lands_alike_for_every_kind_and_name() -> None:
    """Arithmetic over every possible ratchet message length (74 + 160k): a PreKey message
    with or without a one-time prekey id (1169 or 1165 prefix bytes) and a ratchet
    message, with the certificate of a 3- or a 32-character name, always share a class."""
    k = 1
    while True:
        ratchet = RATCHET_OVERHEAD + 160 * k
        variants = [(MessageKind.RATCHET, ratchet), (MessageKind.PREKEY, ratchet + 1169),
                    (MessageKind.PREKEY, ratchet + 1165)]
        sizes = set()
        for kind, length in variants:
            for name in (SHORT, LONG):
                try:
                    sizes.add(len(SealedContent(CERTS[name], kind, bytes(length)).encode()))
                except MessageTooLarge:
                    sizes.add(-1)
        assert len(sizes) == 1, (k, sizes)
        if sizes == {-1}:
            break
        k += 1
    assert k == 401  # 400 buckets (a 63998-byte plaintext) is the most the largest class holds


@pytest.mark.parametrize("size", ENVELOPE_CLASSES)
def test_each_class_ends_where_the_spec_says(size: int) -> None:
    longest = max_plaintext_len(size)
    assert envelope_size(longest) == size
    if size == MAX_ENVELOPE_CLASS:
        with pytest.raises(MessageTooLarge):
            envelope_size(longest + 1)
    else:
        assert envelope_size(longest + 1) == size * 2


def test_nothing_is_sealed_above_the_relays_limit_or_the_largest_class() -> None:
    recipient = Device.create("sizes-bob").public
    content = SealedContent(CERTS[SHORT], MessageKind.RATCHET, bytes(3000))  # needs 8192
    assert len(seal(recipient, content, limit=8192)) == 8192
    for limit in (8191, 4096, 2048, 100):
        with pytest.raises(MessageTooLarge):
            seal(recipient, content, limit=limit)
        with pytest.raises(MessageTooLarge):
            envelope_size(3000, limit)
    too_long = SealedContent(CERTS[SHORT], MessageKind.RATCHET, bytes(MAX_ENVELOPE_CLASS))
    with pytest.raises(MessageTooLarge) as info:
        seal(recipient, too_long)
    assert isinstance(info.value, LocalProtocolError)  # our misuse, not the peer's
    assert "65536" in str(info.value)
    assert max_plaintext_len(2047) == -1


def test_a_message_filling_the_largest_class_round_trips() -> None:
    bob = Device.create("sizes-bob")
    content = SealedContent(CERTS[LONG], MessageKind.RATCHET,
                            bytes(MAX_ENVELOPE_CLASS - 48 - 147 - 1169))
    envelope = seal(bob.public, content)
    assert len(envelope) == MAX_ENVELOPE_CLASS
    assert unseal(bob.identity, envelope) == content
