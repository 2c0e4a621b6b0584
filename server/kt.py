"""The relay's key directory at rest: its two keys in the data directory, and the
Directory rebuilt from the stored updates at start (docs/PROTOCOL.md 19.10,
docs/DATA.md "The key directory").

Why here and not in protocol/: the directory itself is sans-I/O
(protocol/wire/kt/directory.py); files, modes and the database are the relay's.
Neither key is ever logged or shown: `blindrelay audit` prints the log's public
verifier key only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
from pathlib import Path

from protocol.wire.kt import vrf
from protocol.wire.kt.commitment import OPENING_LEN
from protocol.wire.kt.directory import Binding, Directory
from protocol.wire.kt.errors import MalformedNote
from protocol.wire.kt.note import SEED_SIZE, Signer, parse_signer_key
from server.startup import RelayStartError
from server.storage import DirectoryOutOfStep, DirectoryUpdate, Storage

log = logging.getLogger("blindrelay.server")

LOG_KEY_FILENAME = "kt-log.key"
"""The log's signing key: its C2SP signed-note PRIVATE+KEY string and a newline."""
VRF_KEY_FILENAME = "kt-vrf.key"
"""The VRF secret key: 32 bytes from the OS's random source."""


def _write_secret(path: Path, data: bytes) -> None:
    """Writes a secret file 0600 whatever the umask, atomically (a crash leaves the
    old file or the new one, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_secret(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # a copied file may have come back readable by others
    return path.read_bytes()


def _seed_of(key: str) -> bytes:
    """The seed in a PRIVATE+KEY string, to rename the key (its last field is
    base64(0x01 || seed), PROTOCOL.md 19.2; the base64 itself may hold '+')."""
    try:
        blob = base64.b64decode(key.split("+", 4)[4], validate=True)
    except (IndexError, binascii.Error):
        raise MalformedNote("a signer key ends in base64(0x01 || seed)") from None
    if len(blob) != 1 + SEED_SIZE:
        raise MalformedNote("a signer key's seed is 32 bytes")
    return blob[1:]


def load_log_key(data_dir: Path, origin: str | None) -> Signer:
    """The log's signing key, created on first start. `origin` (None: keep the stored
    name, for `blindrelay admin`) names it (19.2 "Key names"); a relay whose origin
    changed (a new public URL, or another port when it has none) keeps the key under
    the new name, since a checkpoint's first line is its origin: clients that pinned
    the old name see a new log key, as they should."""
    path = data_dir / LOG_KEY_FILENAME
    if not path.exists():
        if origin is None:
            raise RelayStartError(f"{path} is missing: start the relay once to create it")
        signer = Signer.generate(origin)
        _write_secret(path, signer.private_key_string().encode("ascii") + b"\n")
        log.info("created the directory's log key")
        return signer
    try:
        text = _read_secret(path).decode("ascii").strip()
        signer = parse_signer_key(text)
        if origin is not None and signer.name != origin:
            signer = Signer(origin, _seed_of(text))
            _write_secret(path, signer.private_key_string().encode("ascii") + b"\n")
            log.warning("the directory's origin changed; its log key now has the new name "
                        "(clients that pinned the old one will refuse its checkpoints)")
    except (UnicodeDecodeError, MalformedNote) as exc:
        raise RelayStartError(f"{path} does not hold a log signing key: {exc}") from None
    return signer


def load_vrf_key(data_dir: Path) -> bytes:
    """The VRF secret key (32 bytes), created on first start."""
    path = data_dir / VRF_KEY_FILENAME
    if not path.exists():
        secret = os.urandom(vrf.SECRET_KEY_LEN)
        _write_secret(path, secret)
        return secret
    secret = _read_secret(path)
    if len(secret) != vrf.SECRET_KEY_LEN:
        raise RelayStartError(f"{path} does not hold a VRF secret key (32 bytes)")
    return secret


def new_update(directory: Directory, username: str,
               identity: bytes | None) -> tuple[Binding, DirectoryUpdate]:
    """The next update of a name (REGISTER, RESET or DELETE) and its stored row."""
    binding = directory.next_binding(username, identity)
    return binding, DirectoryUpdate(directory.size, username, binding.encode(),
                                    os.urandom(OPENING_LEN))


async def open_directory(storage: Storage, signer: Signer, vrf_secret: bytes) -> Directory:
    """Rebuilds the directory from kt_updates (each update checked as when it was
    made), then makes it bind exactly the stored accounts: accounts kept before the
    relay had a directory get their REGISTER, one deleted by `blindrelay admin`
    without one gets its DELETE (each appended and signed like any other). Under the
    storage's directory lock: relay processes sharing a database start one at a time
    here (server/cluster.py)."""
    async with storage.directory_lock():
        return await _open_directory(storage, signer, vrf_secret)


async def _open_directory(storage: Storage, signer: Signer, vrf_secret: bytes) -> Directory:
    directory = Directory(signer, vrf_secret)
    for update in await storage.directory_updates():
        if update.index != directory.size:
            raise RelayStartError(f"the directory's stored log has a gap at {directory.size}")
        directory.replay(update.username, update.value, update.opening)
    bound: dict[str, bytes | None] = {}
    for past in directory.updates:  # in log order: the last update of a name wins
        bound[past.username] = past.binding.identity
    accounts = dict(await storage.accounts())
    pending: list[tuple[str, Binding, DirectoryUpdate]] = []
    for name in sorted(set(accounts) | set(bound)):
        identity = accounts.get(name)
        if bound.get(name) == identity:
            continue
        binding = directory.next_binding(name, identity)
        update = DirectoryUpdate(directory.size + len(pending), name, binding.encode(),
                                 os.urandom(OPENING_LEN))
        pending.append((name, binding, update))
    if pending:
        await storage.append_directory_updates([u for _, _, u in pending])
        for name, binding, update in pending:
            directory.append(name, binding, update.opening)
        log.info("the directory took %d update(s) to match the stored accounts",
                 len(pending))
    directory.checkpoint()
    return directory


async def catch_up(directory: Directory, storage: Storage) -> int:
    """Replays the updates other relay processes stored beyond this directory's size
    (server/cluster.py), each checked as at start; returns how many. Call under the
    relay's directory lock, so that no update of this process interleaves."""
    updates = await storage.directory_updates_since(directory.size)
    for update in updates:
        if update.index != directory.size:
            raise DirectoryOutOfStep(f"the directory's stored log has a gap at "
                                     f"{directory.size}")
        directory.replay(update.username, update.value, update.opening)
    if updates:
        directory.checkpoint()
    return len(updates)
