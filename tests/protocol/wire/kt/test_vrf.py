"""RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI (protocol.wire.kt.vrf, PROTOCOL.md 19.3):
the RFC's example byte for byte, then the properties the key directory relies on:
an honest proof verifies, any change to proof, input or key is refused, small-order
keys and non-canonical encodings are refused, points with a small-order component
follow the RFC's equations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire.errors import LocalProtocolError, RemoteProtocolError
from protocol.wire.kt import vrf
from protocol.wire.kt.errors import VrfError
from tests.protocol.support import flip

VECTORS = Path(__file__).parent / "vectors" / "rfc9381_ecvrf.json"
FIELDS = {"source", "sk", "pk", "alpha", "pi", "beta"}

RFC_SK = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")

ORDER_2 = bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
ORDER_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
SMALL_ORDER = [
    vrf.IDENTITY,
    ORDER_2,
    bytes(32),
    bytes(31) + b"\x80",
    ORDER_8,
    ORDER_8[:31] + b"\x85",
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
]
"""The eight points of order dividing 8 (the whole torsion subgroup), canonical."""

secret_keys = st.binary(min_size=32, max_size=32)
alphas = st.binary(max_size=64)


def _entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(VECTORS.read_text())
    return entries


def _hex(entry: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(entry[name])


@pytest.fixture(scope="module")
def rfc_pk() -> bytes:
    return vrf.public_key(RFC_SK)


@pytest.fixture(scope="module")
def rfc_pi() -> bytes:
    return vrf.prove(RFC_SK, b"")


# --- the RFC's example ---------------------------------------------------------------

def test_the_vector_file_holds_the_rfc_example_and_known_fields_only() -> None:
    entries = _entries()
    assert entries, "no entries"
    for entry in entries:
        assert set(entry) == FIELDS, set(entry) ^ FIELDS
    assert any(e["sk"] == RFC_SK.hex() for e in entries)


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["source"][:32])
def test_every_vector_entry(entry: dict[str, Any]) -> None:
    sk, pk, alpha = _hex(entry, "sk"), _hex(entry, "pk"), _hex(entry, "alpha")
    pi, beta = _hex(entry, "pi"), _hex(entry, "beta")
    assert vrf.public_key(sk) == pk
    assert bytes(nacl.signing.SigningKey(sk).verify_key) == pk
    assert vrf.prove(sk, alpha) == pi
    assert vrf.proof_to_hash(pi) == beta
    assert vrf.verify(pk, pi, alpha) == beta


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["source"][:32])
def test_each_step_matches_the_parts_of_the_rfc_proof(entry: dict[str, Any]) -> None:
    """Gamma, c and s of the RFC's pi, recomputed step by step: encode_to_curve (H),
    the RFC 8032 nonce (k, hence U = k*B and V = k*H) and the challenge."""
    sk, pk, alpha = _hex(entry, "sk"), _hex(entry, "pk"), _hex(entry, "alpha")
    proof = vrf.decode_proof(_hex(entry, "pi"))
    h = vrf.encode_to_curve(pk, alpha)
    assert sodium.crypto_core_ed25519_is_valid_point(h)
    x = vrf._secret_scalar(sk)
    assert sodium.crypto_scalarmult_ed25519_noclamp(x, h) == proof.gamma
    k = vrf.nonce_generation(sk, h)
    u = sodium.crypto_scalarmult_ed25519_base_noclamp(k)
    v = sodium.crypto_scalarmult_ed25519_noclamp(k, h)
    assert vrf.challenge_generation(pk, h, proof.gamma, u, v) == proof.c
    k_int, x_int = int.from_bytes(k, "little"), int.from_bytes(x, "little")
    assert proof.s == (k_int + proof.c * x_int) % vrf.L


# --- round trips -----------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(sk=secret_keys, alpha=alphas)
def test_an_honest_proof_verifies_and_gives_its_hash(sk: bytes, alpha: bytes) -> None:
    pk = vrf.public_key(sk)
    assert pk == bytes(nacl.signing.SigningKey(sk).verify_key)
    pi = vrf.prove(sk, alpha)
    assert len(pi) == vrf.PROOF_LEN
    beta = vrf.verify(pk, pi, alpha)
    assert beta == vrf.proof_to_hash(pi)
    assert len(beta) == vrf.BETA_LEN
    assert vrf.prove(sk, alpha) == pi  # deterministic: one label per name


@settings(max_examples=30, deadline=None)
@given(sk=secret_keys, alpha=alphas, other=alphas)
def test_different_inputs_give_different_outputs(sk: bytes, alpha: bytes, other: bytes) -> None:
    if alpha == other:
        return
    assert vrf.proof_to_hash(vrf.prove(sk, alpha)) != vrf.proof_to_hash(vrf.prove(sk, other))


@settings(max_examples=30, deadline=None)
@given(sk=secret_keys, other=secret_keys, alpha=alphas)
def test_a_proof_does_not_verify_under_another_key(sk: bytes, other: bytes,
                                                   alpha: bytes) -> None:
    if sk == other:
        return
    with pytest.raises(VrfError):
        vrf.verify(vrf.public_key(other), vrf.prove(sk, alpha), alpha)


# --- tampering -------------------------------------------------------------------------

def test_every_bit_flip_of_the_rfc_proof_is_refused(rfc_pk: bytes, rfc_pi: bytes) -> None:
    for bit in range(len(rfc_pi) * 8):
        with pytest.raises(VrfError):
            vrf.verify(rfc_pk, flip(rfc_pi, bit), b"")


def test_every_bit_flip_of_the_rfc_key_is_refused(rfc_pk: bytes, rfc_pi: bytes) -> None:
    for bit in range(len(rfc_pk) * 8):
        with pytest.raises(VrfError):
            vrf.verify(flip(rfc_pk, bit), rfc_pi, b"")


@settings(max_examples=40, deadline=None)
@given(sk=secret_keys, alpha=alphas, data=st.data())
def test_any_bit_flip_in_pi_alpha_or_key_is_refused(sk: bytes, alpha: bytes,
                                                    data: st.DataObject) -> None:
    pk, pi = vrf.public_key(sk), vrf.prove(sk, alpha)
    bit = data.draw(st.integers(0, len(pi) * 8 - 1), label="pi bit")
    with pytest.raises(VrfError):
        vrf.verify(pk, flip(pi, bit), alpha)
    bit = data.draw(st.integers(0, len(pk) * 8 - 1), label="pk bit")
    with pytest.raises(VrfError):
        vrf.verify(flip(pk, bit), pi, alpha)
    longer = alpha or b"\x00"
    bit = data.draw(st.integers(0, len(longer) * 8 - 1), label="alpha bit")
    with pytest.raises(VrfError):
        vrf.verify(pk, pi, flip(longer, bit))
    with pytest.raises(VrfError):
        vrf.verify(pk, pi, alpha + b"\x00")


@pytest.mark.parametrize("length", [0, 79, 81, 160])
def test_a_proof_of_the_wrong_length_is_refused(rfc_pk: bytes, rfc_pi: bytes,
                                                length: int) -> None:
    pi = (rfc_pi * 2)[:length]
    with pytest.raises(VrfError):
        vrf.verify(rfc_pk, pi, b"")
    with pytest.raises(VrfError):
        vrf.proof_to_hash(pi)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_a_key_of_the_wrong_length_is_refused(rfc_pk: bytes, rfc_pi: bytes,
                                              length: int) -> None:
    with pytest.raises(VrfError):
        vrf.verify((rfc_pk * 2)[:length], rfc_pi, b"")


def test_vrf_error_is_the_peers_fault() -> None:
    assert issubclass(VrfError, RemoteProtocolError)


# --- non-canonical encodings ---------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(sk=secret_keys, alpha=alphas, multiple=st.integers(1, 15))
def test_s_plus_a_multiple_of_l_is_refused(sk: bytes, alpha: bytes, multiple: int) -> None:
    """s + m*L satisfies the same equation mod L: only the canonical s < L is a proof
    (otherwise one output would have many proofs)."""
    pk, pi = vrf.public_key(sk), vrf.prove(sk, alpha)
    s = int.from_bytes(pi[48:], "little") + multiple * vrf.L
    forged = pi[:48] + s.to_bytes(32, "little")
    for call in (lambda: vrf.verify(pk, forged, alpha), lambda: vrf.proof_to_hash(forged),
                 lambda: vrf.decode_proof(forged)):
        with pytest.raises(VrfError, match="below the group order"):
            call()


NON_CANONICAL = [
    *[(vrf.P + y).to_bytes(32, "little") for y in range(19)],  # y >= p (x_0 = 0)
    *[((vrf.P + y) | (1 << 255)).to_bytes(32, "little") for y in range(19)],
    (1 | (1 << 255)).to_bytes(32, "little"),  # y = 1 with a "negative" x = 0
    ((vrf.P - 1) | (1 << 255)).to_bytes(32, "little"),  # y = -1 likewise
    ((1 << 255) - 1).to_bytes(32, "little"),
]


@pytest.mark.parametrize("encoding", NON_CANONICAL, ids=lambda e: e.hex()[:8] + e.hex()[-2:])
def test_non_canonical_point_encodings_are_refused(encoding: bytes, rfc_pi: bytes) -> None:
    assert not vrf.is_point(encoding)
    with pytest.raises(VrfError, match="Gamma"):
        vrf.decode_proof(encoding + rfc_pi[32:])
    with pytest.raises(VrfError, match="not a canonical"):
        vrf.validate_key(encoding)


@settings(max_examples=300, deadline=None)
@given(encoding=st.binary(min_size=32, max_size=32))
def test_point_decoding_agrees_with_libsodium(encoding: bytes) -> None:
    """For encodings with y < p and no negative zero (where libsodium's decoder is
    lenient), `is_point` accepts exactly what libsodium can decode, and the point
    re-encodes to the same bytes."""
    value = int.from_bytes(encoding, "little")
    y = value & ((1 << 255) - 1)
    if y >= vrf.P or y in (1, vrf.P - 1):
        return
    try:
        reencoded = bytes(sodium.crypto_core_ed25519_add(encoding, vrf.IDENTITY))
    except nacl.exceptions.RuntimeError:  # the encoding is no point
        assert not vrf.is_point(encoding)
    else:
        assert vrf.is_point(encoding)
        assert reencoded == encoding


# --- small-order keys ----------------------------------------------------------------

def test_the_small_order_list_is_the_torsion_subgroup() -> None:
    multiples = [vrf.IDENTITY]
    for _ in range(7):
        multiples.append(bytes(sodium.crypto_core_ed25519_add(multiples[-1], ORDER_8)))
    assert sorted(multiples) == sorted(SMALL_ORDER)
    assert len(set(SMALL_ORDER)) == 8
    assert all(vrf.is_point(point) for point in SMALL_ORDER)


def _forged_proof(pk: bytes, alpha: bytes) -> bytes:
    """A proof that satisfies RFC 9381's verification equations for a small-order pk
    without any secret: with Gamma = identity and c = 0 mod 8, c*Y and c*Gamma vanish,
    so U = s*B and V = s*H pass for any s. Only validate_key stops it."""
    h = vrf.encode_to_curve(pk, alpha)
    for s in range(1, 1000):
        u = sodium.crypto_scalarmult_ed25519_base_noclamp(s.to_bytes(32, "little"))
        v = sodium.crypto_scalarmult_ed25519_noclamp(s.to_bytes(32, "little"), h)
        c = vrf.challenge_generation(pk, h, vrf.IDENTITY, u, v)
        if c % 8 == 0:
            return vrf.IDENTITY + c.to_bytes(16, "little") + s.to_bytes(32, "little")
    raise AssertionError("no c = 0 mod 8 in 1000 tries")


@pytest.mark.parametrize("pk", SMALL_ORDER, ids=lambda p: p.hex()[:8])
def test_small_order_keys_are_refused(pk: bytes, rfc_pi: bytes) -> None:
    with pytest.raises(VrfError, match="small order"):
        vrf.validate_key(pk)
    with pytest.raises(VrfError, match="small order"):
        vrf.verify(pk, rfc_pi, b"")
    forged = _forged_proof(pk, b"alice")
    with pytest.raises(VrfError, match="small order"):
        vrf.verify(pk, forged, b"alice")


# --- points with a small-order component (RFC 9381 does not require the subgroup) ---

TORSION = {2: ORDER_2, 4: bytes(32), 8: ORDER_8}
"""A point of each order in the torsion subgroup, by order."""


def _with_torsion(point: bytes, order: int) -> bytes:
    return bytes(sodium.crypto_core_ed25519_add(point, TORSION[order]))


def _prove_with_torsion(sk: bytes, alpha: bytes, order: int, *, in_key: bool,
                        in_gamma: bool) -> tuple[bytes, bytes]:
    """ECVRF_prove's steps by a prover who adds T (of the given order) to Y, to Gamma,
    or both: returns (pk, pi). U and V stay k*B and k*H, so the verifier's
    U = s*B - c*Y and V = s*H - c*Gamma are off by c*T, which vanishes exactly when
    c is a multiple of T's order."""
    pk = vrf.public_key(sk)
    if in_key:
        pk = _with_torsion(pk, order)
    x = vrf._secret_scalar(sk)
    h = vrf.encode_to_curve(pk, alpha)
    gamma = bytes(sodium.crypto_scalarmult_ed25519_noclamp(x, h))
    if in_gamma:
        gamma = _with_torsion(gamma, order)
    k = vrf.nonce_generation(sk, h)
    u = sodium.crypto_scalarmult_ed25519_base_noclamp(k)
    v = sodium.crypto_scalarmult_ed25519_noclamp(k, h)
    c = vrf.challenge_generation(pk, h, gamma, u, v)
    s = (int.from_bytes(k, "little") + c * int.from_bytes(x, "little")) % vrf.L
    return pk, gamma + c.to_bytes(16, "little") + s.to_bytes(32, "little")


@pytest.mark.parametrize("order", sorted(TORSION))
def test_each_torsion_point_has_its_order(order: int) -> None:
    point, sums = TORSION[order], [TORSION[order]]
    for _ in range(order - 1):
        sums.append(bytes(sodium.crypto_core_ed25519_add(sums[-1], point)))
    assert sums[-1] == vrf.IDENTITY
    assert vrf.IDENTITY not in sums[:-1]


@settings(max_examples=80, deadline=None)
@given(sk=secret_keys, alpha=alphas, order=st.sampled_from(sorted(TORSION)),
       in_key=st.booleans(), in_gamma=st.booleans())
def test_points_with_a_small_order_component_follow_the_rfc_equations(
        sk: bytes, alpha: bytes, order: int, in_key: bool, in_gamma: bool) -> None:
    """Y = x*B + T is not small-order, so validate_key passes it (as RFC 9381 says),
    and Gamma need not lie in the prime-order subgroup either: such a proof verifies
    exactly when c*T vanishes; beta hashes 8*Gamma, so T does not change it.
    This exercises scalar multiplication of points outside the prime-order subgroup,
    which libsodium alone refuses."""
    pk, pi = _prove_with_torsion(sk, alpha, order, in_key=in_key, in_gamma=in_gamma)
    vrf.validate_key(pk)
    if not (in_key or in_gamma) or vrf.decode_proof(pi).c % order == 0:
        beta = vrf.verify(pk, pi, alpha)
        assert beta == vrf.proof_to_hash(pi)
        if not in_key:  # same Y, so same H: the honest beta
            assert beta == vrf.proof_to_hash(vrf.prove(sk, alpha))
    else:
        with pytest.raises(VrfError, match="does not verify"):
            vrf.verify(pk, pi, alpha)


# --- misuse ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_secret_key_of_the_wrong_length_is_a_local_error(length: int) -> None:
    with pytest.raises(LocalProtocolError):
        vrf.prove(bytes(length), b"alice")
    with pytest.raises(LocalProtocolError):
        vrf.public_key(bytes(length))
