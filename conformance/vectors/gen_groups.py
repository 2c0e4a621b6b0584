"""groups.json: blindrelay's conventions on top of MLS (docs/PROTOCOL.md 21.4, 21.5):
a member's MLS signature key and credential from its identity seed and username, the
group-name extension 0xF000, and the epoch code members compare.

Drawn, in this order, from DRBG("blindrelay/vectors/v1/groups"): one identity seed per
user of USERS (32 bytes each), then one epoch authenticator per code case (32 each);
the last code case is all ones (the largest value)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, h
from protocol.e2e import groups
from protocol.e2e.keys import IdentityKeyPair

USERS = ("alice", "bob", "a" * 32, "x.y-z_0")
NAMES = ("trio", "Book club 📚", "  padded  ", "é" * 50, "x" * groups.MAX_GROUP_NAME)
"""Group names: plain, emoji, stripped of outer spaces, 100 bytes of two-byte UTF-8,
the longest."""
BAD_NAMES = ("", "   ", "x" * (groups.MAX_GROUP_NAME + 1), "é" * 51)


def build() -> Json:
    rng = Drbg(LABEL + "groups")
    members: list[Json] = []
    for username in USERS:
        seed = rng(32)
        identity = groups.member_identity(seed, username)
        assert identity.signature_public == IdentityKeyPair.from_seed(seed).public
        members.append({"username": username, "identity_seed": h(seed),
                        "identity_public": h(IdentityKeyPair.from_seed(seed).public),
                        "signature_key": h(identity.signature_public),
                        "credential": h(identity.credential.encode())})
    names = [{"name": name, "stored": groups.check_group_name(name),
              "extension": h(groups.name_extension(name).encode())} for name in NAMES]
    bad = [{"name": name, "error": error_name(groups.check_group_name, name)}
           for name in BAD_NAMES]
    authenticators = [rng(32) for _ in range(3)] + [b"\xff" * 32]
    codes = [{"epoch_authenticator": h(a), "code": groups.epoch_code(a)}
             for a in authenticators]
    return {
        "description": "Groups (PROTOCOL.md 21.4-21.5): a member's MLS identity from its "
        "blindrelay identity seed and username, the group-name extension, the epoch code.",
        "format": FORMAT,
        "name_extension_type": groups.GROUP_NAME_EXTENSION,
        "max_name": groups.MAX_GROUP_NAME,
        "members": members,
        "names": names,
        "invalid_names": bad,
        "codes": codes,
    }
