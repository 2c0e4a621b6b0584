"""The local store's key metadata (docs/CLIENT.md "Encrypted at rest"): the Argon2id
parameters and salt the master key is derived with, their bounds, and the MAC that
authenticates them once the key is known; and the store's errors.

Why both a bound and a MAC: the parameters must be read before the key exists, so
they cannot be authenticated before deriving. Parameters outside the bounds are
refused before deriving ("below the minimum": someone lowered them; "above the
maximum": a derivation that would exhaust the machine). After deriving, the key check
says whether the passphrase is right, and then the MAC under a key derived from the
master key says whether the metadata is the one the profile was created with.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha256

import nacl.pwhash
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.errors import ClientError

META_MAC_LABEL = b"blindrelay local store metadata v1\x00"
AUTHENTICATED_META = ("protection", "salt", "kdf")


class StoreError(ClientError):
    """Base of the local store's errors (under the client's one root, so a view that
    catches ClientError also catches a damaged or locked store)."""


class NoProfile(StoreError):
    pass


class ProfileExists(StoreError):
    pass


class WrongPassphrase(StoreError):
    pass


class CorruptStore(StoreError):
    pass


class WeakParameters(CorruptStore):
    """The stored key derivation parameters are below the minimum: the file was
    changed (a profile is never written with them)."""


class RolledBack(CorruptStore):
    """A row, or the store's record of its rows, is older than the rest: the profile
    (or part of it) was restored from an older copy."""


@dataclass(frozen=True)
class KdfParams:
    opslimit: int = 3
    memlimit: int = 64 * 1024 * 1024

    def encode(self) -> bytes:
        return self.opslimit.to_bytes(4, "big") + self.memlimit.to_bytes(8, "big")

    @classmethod
    def decode(cls, data: bytes) -> KdfParams:
        if len(data) != 12:
            raise CorruptStore("the profile's key metadata is damaged (KDF parameters)")
        return cls(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big"))

    def __str__(self) -> str:
        return f"{self.opslimit} passes, {self.memlimit // (1024 * 1024)} MiB"


DEFAULT_KDF = KdfParams()
MIN_KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)
"""The weakest parameters a profile may have: the test profiles' (the default is 3
passes and 64 MiB). Anything weaker was written by someone else."""
MAX_KDF = KdfParams(opslimit=64, memlimit=4 * 1024 * 1024 * 1024)


def check_params(params: KdfParams) -> None:
    """Refuses parameters outside the bounds, before anything is derived."""
    if params.opslimit < MIN_KDF.opslimit or params.memlimit < MIN_KDF.memlimit:
        raise WeakParameters(
            f"the profile's key derivation parameters ({params}) are below the minimum "
            f"({MIN_KDF}): the profile was tampered with or damaged; not deriving a key "
            "from your passphrase with them")
    if params.opslimit > MAX_KDF.opslimit or params.memlimit > MAX_KDF.memlimit:
        raise CorruptStore(
            f"the profile's key derivation parameters ({params}) are above the maximum "
            f"({MAX_KDF}): the profile is damaged")


def check_salt(salt: bytes) -> None:
    if len(salt) != nacl.pwhash.argon2id.SALTBYTES:
        raise CorruptStore("the profile's key metadata is damaged (salt)")


def derive(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    check_params(params)
    check_salt(salt)
    return bytes(nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=params.opslimit,
                                          memlimit=params.memlimit))


def meta_mac(master: bytes, meta: dict[str, bytes]) -> bytes:
    """HMAC-SHA256 under HKDF(master, "blindrelay local store metadata v1") over the
    label and each authenticated metadata field as var16(name) || var16(value)."""
    key = HKDF(hashes.SHA256(), 32, b"\x00" * 32, b"blindrelay local store metadata v1"
               ).derive(master)
    parts = [META_MAC_LABEL]
    for name in AUTHENTICATED_META:
        value = bytes(meta.get(name, b""))
        parts += [len(name).to_bytes(2, "big"), name.encode(),
                  len(value).to_bytes(2, "big"), value]
    return hmac.new(key, b"".join(parts), sha256).digest()


def check_meta_mac(master: bytes, meta: dict[str, bytes]) -> None:
    """After the key check: the metadata must be what the profile was created with."""
    stored = meta.get("meta_mac")
    if stored is None or not hmac.compare_digest(bytes(stored), meta_mac(master, meta)):
        raise CorruptStore("the profile's key metadata is damaged: it does not match its "
                           "authentication code (salt, KDF parameters or protection "
                           "were changed)")
