"""The JSON views of a session and its ratchet that conversation.json records after
every event (docs/PROTOCOL.md section 17.3); the generator writes the same views."""

from __future__ import annotations

from typing import Any

from protocol.e2e.ratchet import Ratchet
from protocol.e2e.session import Session

Json = dict[str, Any]


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def ratchet_view(r: Ratchet) -> Json:
    return {
        "dhs_private": r.dhs.private.hex(),
        "dhs_public": r.dhs.public.hex(),
        "dhr": _hex(r.dhr),
        "rk": r.rk.hex(),
        "cks": _hex(r.cks),
        "ckr": _hex(r.ckr),
        "ns": r.ns,
        "nr": r.nr,
        "pn": r.pn,
        "skipped": [{"dh": dh.hex(), "n": n, "mk": mk.hex()} for (dh, n), mk in r.skipped.items()],
        "retired": [k.hex() for k in r.retired],
    }


def session_view(s: Session) -> Json:
    return {
        "peer_identity": s.peer_identity.hex(),
        "pending_prefix": s.pending_prefix is not None,
        "base_key": _hex(s.base_key),
        "ratchet": ratchet_view(s.ratchet),
    }
