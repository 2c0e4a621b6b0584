"""state.json: serialised session and ratchet state cut into named fields, and invalid
states (docs/PROTOCOL.md section 13), from the end of the scripted conversation."""

from __future__ import annotations

from conformance.vectors import FORMAT, Json
from conformance.vectors.common import error_name, h
from conformance.vectors.context import Context
from protocol.e2e.keys import (
    TYPE_ED25519,
    encode_key,
)
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIP, MAX_SKIPPED_KEYS
from protocol.e2e.session import Session
from protocol.wire.codec import u32


def segments_session(s: Session) -> list[Json]:
    """The serialised session state cut into its named fields."""
    r = s.ratchet
    ratchet = r.serialize()
    out: list[tuple[str, bytes]] = [
        ("version", b"\x01"),
        ("peer_identity", encode_key(TYPE_ED25519, s.peer_identity)),
        ("has_pending_prefix", b"\x01" if s.pending_prefix is not None else b"\x00"),
        ("pending_prefix_length", len(s.pending_prefix or b"").to_bytes(2, "big")),
        ("pending_prefix", s.pending_prefix or b""),
        ("has_base_key", b"\x01" if s.base_key is not None else b"\x00"),
        ("base_key", s.base_key or b""),
        ("ratchet_state_length", u32(len(ratchet))),
        ("ratchet.version", b"\x01"),
        ("ratchet.dhs_private", r.dhs.private),
        ("ratchet.dhr", b"\x00" if r.dhr is None else b"\x01" + r.dhr),
        ("ratchet.rk", r.rk),
        ("ratchet.cks", b"\x00" if r.cks is None else b"\x01" + r.cks),
        ("ratchet.ckr", b"\x00" if r.ckr is None else b"\x01" + r.ckr),
        ("ratchet.ns", u32(r.ns)),
        ("ratchet.nr", u32(r.nr)),
        ("ratchet.pn", u32(r.pn)),
        ("ratchet.ad_length", len(r.ad).to_bytes(2, "big")),
        ("ratchet.ad", r.ad),
        ("ratchet.skipped_count", u32(len(r.skipped))),
    ]
    for (dh, n), mk in r.skipped.items():
        out.append(("ratchet.skipped.entry", dh + u32(n) + mk))
    out.append(("ratchet.retired_count", bytes((len(r.retired),))))
    out += [("ratchet.retired.key", key) for key in r.retired]
    joined = b"".join(data for _, data in out)
    assert joined == s.serialize(), "state segments do not add up"
    return [{"field": name, "hex": h(data)} for name, data in out]


def build(ctx: Context) -> Json:
    conv = ctx.conversation
    alice, bob = conv.session("alice"), conv.session("bob")
    states = {"alice_final": alice.serialize(), "bob_final": bob.serialize()}
    initial = conv.alice_initial_state
    base = states["bob_final"]
    ratchet_len = int.from_bytes(base[1 + 33 + 1 + 2 + 1 + 32 : 1 + 33 + 1 + 2 + 1 + 32 + 4], "big")
    ratchet_at = len(base) - ratchet_len
    r = bob.ratchet
    skipped_count_at = ratchet_at + 1 + 32 + 33 + 32 + 33 + 33 + 12 + 2 + len(r.ad)
    errors = [
        ("unknown session state version 2", b"\x02" + base[1:]),
        ("one trailing byte", base + b"\x00"),
        ("last byte missing", base[:-1]),
        ("pending-prefix flag 2", base[:34] + b"\x02" + base[35:]),
        ("unknown ratchet state version 2", base[:ratchet_at] + b"\x02" + base[ratchet_at + 1 :]),
        ("ratchet DHr flag 2", base[: ratchet_at + 33] + b"\x02" + base[ratchet_at + 34 :]),
        ("skipped-key count above MAX_SKIPPED_KEYS", base[:skipped_count_at]
         + u32(MAX_SKIPPED_KEYS + 1) + base[skipped_count_at + 4 :]),
        ("retired count above MAX_RETIRED", base[:-1 - 32 * len(r.retired)]
         + bytes((MAX_RETIRED + 1,)) + base[-32 * len(r.retired) :]),
        ("prefix bytes without the pending-prefix flag",
         base[:35] + b"\x00\x01\xaa" + base[37:]),
    ]
    assert r.retired, "the retired-count case needs retired keys"
    for _, data in errors:
        assert data != base
    return {
        "description": "Serialised session and ratchet state, cut into named fields; "
        "invalid states.",
        "format": FORMAT,
        "limits": {"max_skip": MAX_SKIP, "max_skipped_keys": MAX_SKIPPED_KEYS,
                   "max_retired": MAX_RETIRED},
        "states": [
            {"name": "alice_after_initiate", "state": h(initial),
             "segments": segments_session(Session.deserialize(initial))},
            {"name": "alice_final", "state": h(states["alice_final"]),
             "segments": segments_session(alice)},
            {"name": "bob_final", "state": h(states["bob_final"]),
             "segments": segments_session(bob)},
        ],
        "decode_errors": [
            {"description": description, "state": h(data),
             "error": error_name(Session.deserialize, data)}
            for description, data in errors
        ],
    }
