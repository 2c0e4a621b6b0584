"""groups.json: a member's MLS identity, the group-name extension and the epoch code
(docs/PROTOCOL.md 21.4, 21.5), recomputed here from the spec's words too."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e import groups
from protocol.e2e.keys import IdentityKeyPair
from protocol.wire import tls

NAME = "groups"


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat([whole(NAME, doc, "parameters", "name_extension_type", "max_name")],
                  listed(NAME, doc, "members"), listed(NAME, doc, "names"),
                  listed(NAME, doc, "invalid_names"), listed(NAME, doc, "codes"))


def check_parameters(at: At, data: Any) -> None:
    at.eq("name_extension_type", data["name_extension_type"], groups.GROUP_NAME_EXTENSION)
    at.eq("max_name", data["max_name"], groups.MAX_GROUP_NAME)


def check_member(at: At, entry: Any) -> None:
    seed, username = b(entry["identity_seed"]), entry["username"]
    identity = groups.member_identity(seed, username)
    at.eq("identity_public", b(entry["identity_public"]), IdentityKeyPair.from_seed(seed).public)
    at.eq("signature_key", b(entry["signature_key"]), b(entry["identity_public"]))
    at.eq("signature_key", b(entry["signature_key"]), identity.signature_public)
    # a basic credential: credential_type u16 (1) || identity<V> (the ASCII username)
    spec = tls.u16(1) + tls.opaque(username.encode("ascii"))
    at.eq("credential", b(entry["credential"]), spec)
    at.eq("credential", b(entry["credential"]), identity.credential.encode())


def check_name(at: At, entry: Any) -> None:
    stored = entry["stored"]
    at.eq("stored", stored, entry["name"].strip())
    at.eq("stored", groups.check_group_name(entry["name"]), stored)
    # Extension: extension_type u16 || extension_data<V>
    spec = tls.u16(0xF000) + tls.opaque(stored.encode("utf-8"))
    at.eq("extension", b(entry["extension"]), spec)
    at.eq("extension", groups.name_extension(entry["name"]).encode(), spec)
    at.eq("name", groups.group_name((groups.name_extension(entry["name"]),)), stored)


def check_invalid_name(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: groups.check_group_name(entry["name"]))


def check_code(at: At, entry: Any) -> None:
    authenticator = b(entry["epoch_authenticator"])
    value = int.from_bytes(authenticator, "big") % 10**30
    digits = f"{value:030d}"
    spec = " ".join(digits[i:i + 5] for i in range(0, 30, 5))
    at.eq("code", entry["code"], spec)
    at.eq("code", groups.epoch_code(authenticator), spec)


check = dispatch({"parameters": check_parameters, "members": check_member,
                  "names": check_name, "invalid_names": check_invalid_name,
                  "codes": check_code})
