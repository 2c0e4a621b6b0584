"""state.json: serialised session and ratchet state cut into named fields, and states
that must be rejected (docs/PROTOCOL.md section 13)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import TYPE_ED25519, encode_key
from protocol.e2e.ratchet import MAX_RETIRED, MAX_SKIP, MAX_SKIPPED_KEYS
from protocol.e2e.session import Session

NAME = "state"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "limits", "limits")], listed(NAME, doc, "states"),
                  listed(NAME, doc, "decode_errors"))


def check_limits(at: At, data: Any) -> None:
    limits = data["limits"]
    at.eq("limits.max_skip", limits["max_skip"], MAX_SKIP)
    at.eq("limits.max_skipped_keys", limits["max_skipped_keys"], MAX_SKIPPED_KEYS)
    at.eq("limits.max_retired", limits["max_retired"], MAX_RETIRED)


def check_layout(at: At, entry: Any) -> None:
    state = b(entry["state"])
    fields = [(seg["field"], b(seg["hex"])) for seg in entry["segments"]]
    at.eq("segments (joined)", state, b"".join(data for _, data in fields))
    session = Session.deserialize(state)
    at.eq("state", state, session.serialize())
    r = session.ratchet
    single = {name: data for name, data in fields if not name.startswith("ratchet.skipped.")
              and name != "ratchet.retired.key"}

    def seg(name: str) -> bytes:
        if name not in single:
            raise at.mismatch("segments", f"a segment {name!r}", "none")
        return single[name]

    at.eq("segments[version]", b"\x01", seg("version"))
    at.eq("segments[ratchet.version]", b"\x01", seg("ratchet.version"))
    at.eq("segments[peer_identity]", encode_key(TYPE_ED25519, session.peer_identity),
          seg("peer_identity"))
    at.eq("segments[pending_prefix]", session.pending_prefix or b"", seg("pending_prefix"))
    at.eq("segments[base_key]", session.base_key or b"", seg("base_key"))
    at.eq("segments[ratchet_state_length]", len(r.serialize()),
          int.from_bytes(seg("ratchet_state_length"), "big"))
    at.eq("segments[ratchet.dhs_private]", r.dhs.private, seg("ratchet.dhs_private"))
    at.eq("segments[ratchet.rk]", r.rk, seg("ratchet.rk"))
    for name, value in (("dhr", r.dhr), ("cks", r.cks), ("ckr", r.ckr)):
        at.eq(f"segments[ratchet.{name}]", b"\x00" if value is None else b"\x01" + value,
              seg(f"ratchet.{name}"))
    for name, number in (("ns", r.ns), ("nr", r.nr), ("pn", r.pn)):
        at.eq(f"segments[ratchet.{name}]", number, int.from_bytes(seg(f"ratchet.{name}"), "big"))
    at.eq("segments[ratchet.ad]", r.ad, seg("ratchet.ad"))
    skipped = [data for name, data in fields if name == "ratchet.skipped.entry"]
    at.eq("segments[ratchet.skipped.entry]",
          [dh + n.to_bytes(4, "big") + mk for (dh, n), mk in r.skipped.items()], skipped)
    at.eq("segments[ratchet.retired.key]", r.retired,
          [data for name, data in fields if name == "ratchet.retired.key"])


def check_decode_error(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: Session.deserialize(b(entry["state"])))


check = dispatch({"limits": check_limits, "states": check_layout,
                  "decode_errors": check_decode_error})
