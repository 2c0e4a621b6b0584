"""tlog checkpoints: strict bodies, signed by the log whose origin they name."""

from __future__ import annotations

import base64

import pytest

from protocol.wire.errors import LocalProtocolError
from protocol.wire.kt.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from protocol.wire.kt.errors import MalformedNote, NoteSignatureError
from protocol.wire.kt.merkle import MerkleTree
from protocol.wire.kt.note import Signer, open_note, sign_note

LOG = Signer("relay.example", bytes(range(32)))
WITNESS = Signer("witness.example", bytes(range(1, 33)))
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_encoding_is_the_c2sp_body() -> None:
    cp = Checkpoint("relay.example", 42, ROOT, ("ext one",))
    assert cp.encode() == f"relay.example\n42\n{ROOT_B64}\next one\n"
    assert parse_checkpoint(cp.encode()) == cp
    assert parse_checkpoint(f"relay.example\n0\n{ROOT_B64}\n").size == 0


@pytest.mark.parametrize(
    "text",
    [
        f"relay.example\n42\n{ROOT_B64}",  # no final newline
        "relay.example\n42\n",  # no root
        f"\n42\n{ROOT_B64}\n",  # empty origin
        f"relay.example\n042\n{ROOT_B64}\n",  # leading zero
        f"relay.example\n+42\n{ROOT_B64}\n",
        f"relay.example\n-1\n{ROOT_B64}\n",
        f"relay.example\n\u0664\u0662\n{ROOT_B64}\n",  # non-ASCII digits
        f"relay.example\n{2**64}\n{ROOT_B64}\n",  # beyond 64 bits
        f"relay.example\n42\n{ROOT_B64[:-4]}\n",  # short hash
        f"relay.example\n42\n{ROOT_B64.rstrip('=')}\n",  # unpadded
        "relay.example\n42\n" + base64.b64encode(bytes(33)).decode() + "\n",
        f"relay.example\n42\n{ROOT_B64}\n\n",  # empty extension line
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with pytest.raises(MalformedNote):
        parse_checkpoint(text)


def test_non_canonical_base64_is_refused() -> None:
    canonical = base64.b64encode(b"\x00" * 32).decode()  # ends in "A="
    twisted = canonical[:-2] + "B="  # same 32 bytes with non-zero padding bits
    assert base64.b64decode(twisted) == bytes(32)
    with pytest.raises(MalformedNote):
        parse_checkpoint(f"relay.example\n1\n{twisted}\n")


def test_a_signed_tree_head_round_trips_with_a_cosignature() -> None:
    tree = MerkleTree()
    for i in range(10):
        tree.append(b"%d" % i)
    cp = Checkpoint("relay.example", tree.size, tree.root())
    signed = sign_note(cp.encode(), [LOG, WITNESS])
    got, note = open_checkpoint(signed, LOG.verifier, [WITNESS.verifier])
    assert got == cp
    assert [s.name for s in note.signatures] == ["relay.example", "witness.example"]
    assert open_checkpoint(sign_checkpoint(cp, LOG), LOG.verifier)[0] == cp


def test_a_checkpoint_needs_the_logs_own_signature_and_origin() -> None:
    cp = Checkpoint("relay.example", 1, ROOT)
    only_witness = sign_note(cp.encode(), [WITNESS])
    with pytest.raises(NoteSignatureError):
        open_checkpoint(only_witness, LOG.verifier, [WITNESS.verifier])
    other_origin = Checkpoint("elsewhere.example", 1, ROOT)
    with pytest.raises(MalformedNote):
        open_checkpoint(sign_note(other_origin.encode(), [LOG]), LOG.verifier)
    with pytest.raises(LocalProtocolError):
        sign_checkpoint(other_origin, LOG)
    assert open_note(sign_checkpoint(cp, LOG), [LOG.verifier]).text == cp.encode()


def test_encoding_refuses_what_it_could_not_parse_back() -> None:
    for cp in (
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint("relay.example", -1, ROOT),
        Checkpoint("relay.example", 1, ROOT[:31]),
        Checkpoint("relay.example", 1, ROOT, ("",)),
        Checkpoint("relay.example", 1, ROOT, ("tab\there",)),
    ):
        with pytest.raises(LocalProtocolError):
            cp.encode()
