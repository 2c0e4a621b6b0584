"""The client's encrypted local store: one SQLite file per profile.

Everything secret or personal (identity key, prekeys, sessions, contacts, history,
outbox) is stored as XChaCha20-Poly1305 ciphertext under a key derived from the
passphrase with Argon2id. Each row's associated data names its table, its row key and
its version, so rows cannot be swapped, and a row put back from an older copy is
noticed (client/store_versions.py). Rows are found by HMAC-SHA256 tags of their names,
never by the names themselves: the file shows how many rows there are, not whom they
concern.

A wrong passphrase fails the key check before anything is read or written; key
metadata that was tampered with is reported as such (client/store_meta.py). A row that
does not decrypt, or was rolled back, is moved aside to the `quarantine` table with a
warning (once: it is no longer where it was), and everything else keeps working.

`Store` is the encrypted row engine; the typed repositories below (profile, prekeys,
contacts, session records, messages, outbox) are the only code that names its tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from hashlib import sha256
from pathlib import Path

import nacl.bindings as sodium
import nacl.exceptions
import nacl.pwhash
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.records import (
    CertState,
    Contact,
    Delivery,
    KtState,
    Message,
    OutboxItem,
    PrekeyKind,
    Profile,
)
from client.store_meta import CorruptStore as CorruptStore
from client.store_meta import KdfParams as KdfParams
from client.store_meta import NoProfile as NoProfile
from client.store_meta import ProfileExists as ProfileExists
from client.store_meta import RolledBack as RolledBack
from client.store_meta import StoreError as StoreError
from client.store_meta import WeakParameters as WeakParameters
from client.store_meta import WrongPassphrase as WrongPassphrase
from client.store_meta import check_meta_mac, derive, meta_mac
from client.store_thread import Connection
from client.store_versions import RowVersions
from protocol.e2e.session import Session
from protocol.e2e.session_record import MAX_ACCEPTED, SessionRecord

log = logging.getLogger("blindrelay.client.store")

STORE_FILENAME = "profile.sqlite3"
SCHEMA_VERSION = 2
"""1: rows without versions (read once, to migrate); 2: versioned rows, quarantine."""
CHECK_PLAINTEXT = b"blindrelay local store v1"
NONCE_LEN = 24
VERSIONED = ("settings", "prekeys", "contacts", "sessions", "messages", "outbox")
NAMED = ("settings", "prekeys", "contacts", "sessions")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS settings (tag BLOB PRIMARY KEY, data BLOB NOT NULL, ver INTEGER);
CREATE TABLE IF NOT EXISTS prekeys (tag BLOB PRIMARY KEY, kind TEXT NOT NULL,
                                    data BLOB NOT NULL, ver INTEGER);
CREATE TABLE IF NOT EXISTS contacts (tag BLOB PRIMARY KEY, data BLOB NOT NULL, ver INTEGER);
CREATE TABLE IF NOT EXISTS sessions (tag BLOB PRIMARY KEY, data BLOB NOT NULL, ver INTEGER);
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, contact BLOB NOT NULL,
                                     mid BLOB, data BLOB NOT NULL, ver INTEGER);
CREATE INDEX IF NOT EXISTS messages_by_contact ON messages (contact, id);
CREATE INDEX IF NOT EXISTS messages_by_mid ON messages (mid);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, data BLOB NOT NULL, ver INTEGER);
CREATE TABLE IF NOT EXISTS seen (tag BLOB PRIMARY KEY, at INTEGER NOT NULL);
"""
QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY, source TEXT NOT NULL,
                                       reason TEXT NOT NULL, row BLOB NOT NULL,
                                       data BLOB NOT NULL, ver INTEGER, at INTEGER NOT NULL)
"""
SCHEMA += QUARANTINE_SCHEMA + ";"

CONSEQUENCES = {
    "contacts": "the contact is set up again from their next message; compare safety "
                "numbers with them again",
    "sessions": "the encrypted session with that contact starts over; a message already "
                "on its way may not decrypt",
    "messages": "one message is missing from the history",
    "outbox": "one queued message will not be sent",
    "prekeys": "a first message made with that prekey cannot be decrypted",
}


class SecretKey:
    """Key bytes that never show themselves: `repr` and `str` name only the length,
    so a traceback that prints local variables, or a log line, cannot leak them.
    `reveal()` is the one way to the bytes, at the call that needs them."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return f"<SecretKey: {len(self._value)} bytes, hidden>"

    __str__ = __repr__


def _subkeys(master: bytes) -> tuple[bytes, bytes]:
    out = HKDF(hashes.SHA256(), 64, b"\x00" * 32, b"blindrelay local store keys v1").derive(
        master)
    return out[:32], out[32:]


def _ad(table: bytes, row: bytes, version: int | None) -> bytes:
    """table || 0 || row, and || 0 || u64 version for versioned rows (schema 2)."""
    ad = table + b"\x00" + row
    return ad if version is None else ad + b"\x00" + version.to_bytes(8, "big")


class RowEngine:
    """Encrypted rows over one SQLite connection: sealing and opening them, their
    versions and the quarantine. Use `transaction()` to group writes that must land
    together (a received message and the ratchet state, say), or `atransaction()` in
    a coroutine, whose COMMIT (its fsync) runs off the event loop."""

    def __init__(self, db: sqlite3.Connection, master: bytes, protected: bool) -> None:
        self.db = Connection(db)
        self.db.on_failed = self._commit_failed
        enc_key, index_key = _subkeys(master)
        self._enc_key, self._index_key = SecretKey(enc_key), SecretKey(index_key)
        self._master = SecretKey(master)
        self.protected = protected
        self._depth = 0
        self.versions = RowVersions()
        self._dirty = False
        self._data_version = -1
        self.notices: list[str] = []
        """What was moved aside while this store was open (each said once)."""
        self.on_notice: Callable[[str], None] | None = None
        """A view that shows notices as they come (the chat app); they are logged too."""

    # -- crypto

    def tag(self, kind: bytes, name: bytes) -> bytes:
        """The row key for a name: HMAC-SHA256(index key, kind || 0 || name), 16 bytes."""
        return hmac.new(self._index_key.reveal(), kind + b"\x00" + name, sha256).digest()[:16]

    def _seal(self, table: bytes, row: bytes, plaintext: bytes,
              version: int | None = None) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, _ad(table, row, version), nonce, self._enc_key.reveal()))

    def _open(self, table: bytes, row: bytes, data: bytes, version: int | None = None) -> bytes:
        try:
            return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[NONCE_LEN:], _ad(table, row, version), data[:NONCE_LEN],
                self._enc_key.reveal()))
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise CorruptStore(f"a row of {table.decode()} does not decrypt") from exc

    # -- row versions and the quarantine

    def _load_versions(self, required: bool = False) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name='versions'").fetchone()
        if row is None:
            if required:
                raise RolledBack("the profile's record of its rows is missing: it was "
                                 "damaged or restored from an older copy")
            self.versions = RowVersions()
        else:
            self.versions = RowVersions.decode(self._open(b"meta", b"versions", bytes(row[0])))
        self._dirty = False

    def _refresh(self) -> None:
        """Re-reads the record of row versions if another connection (another process
        on this profile) committed since it was read, so that its rows are not taken for
        rolled back ones and its record is not overwritten with an older one."""
        data_version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._data_version and not self._dirty:
            self._load_versions()
        self._data_version = data_version

    def _save_versions(self) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('versions', ?)",
                        (self._seal(b"meta", b"versions", self.versions.encode()),))
        self._dirty = False

    def _version(self, table: str, tag: bytes | None) -> int:
        self._dirty = True
        return self.versions.bump(table, tag)

    def _read(self, table: str, row: bytes, data: bytes, version: int | None,
              tag: bytes | None, where: str, args: tuple[object, ...]) -> bytes | None:
        """A row's plaintext; None (after moving it aside) if it is damaged or rolled back."""
        rolled_back = False
        if version is None:
            detail = f"a {table} row has no version"
        else:
            try:
                plaintext = self._open(table.encode(), row, data, version)
            except CorruptStore:
                detail = f"a {table} row does not decrypt"
            else:
                problem = self.versions.problem(table, tag, version)
                if problem is not None and not self._depth:
                    self._refresh()
                    problem = self.versions.problem(table, tag, version)
                if problem is None:
                    return plaintext
                detail, rolled_back = problem, True
        if rolled_back:
            notice = ("this profile was rolled back / restored from an older copy: "
                      f"{detail}; the row was moved aside (quarantined), not used")
        else:
            notice = f"the profile is damaged: {detail}; it was moved aside (quarantined)"
        if table not in CONSEQUENCES:  # the profile row itself: nothing works without it
            raise (RolledBack if rolled_back else CorruptStore)(notice)
        self._quarantine(table, row, data, version, "rolled back" if rolled_back
                         else "damaged", where, args, tag)
        notice += f"; {CONSEQUENCES[table]}"
        log.warning("%s", notice)
        self.notices.append(notice)
        if self.on_notice is not None:
            self.on_notice(notice)
        return None

    def _quarantine(self, table: str, row: bytes, data: bytes, version: int | None,
                    reason: str, where: str, args: tuple[object, ...],
                    tag: bytes | None) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO quarantine (source, reason, row, data, ver, at) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (table, reason, row, data, version, int(time.time())))
            self.db.execute(f"DELETE FROM {table} WHERE {where}", args)
            if tag is not None:
                self.versions.forget(table, tag)
                self._dirty = True

    def quarantined(self) -> int:
        """How many rows have been moved aside in this profile, ever."""
        return int(self.db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

    # -- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nests. The record of row
        versions is written once, with the outermost commit."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.transaction_body():
            yield
        self.db.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def atransaction(self, then: Callable[[], None] | None = None
                           ) -> AsyncIterator[None]:
        """`transaction()` for coroutines: the writes inside are made on the event loop
        (no fsync), and the COMMIT runs on the store's thread (client/store_thread.py);
        this returns only once it is durable, so what depends on it (an ACK) waits for
        it, while the connection's reading and sending go on meanwhile. `then` runs
        once it is durable, before the store is used again (the events it raised are
        shown there). Nothing may be awaited inside. Inside another transaction it
        simply nests (and `then` is left to the outer one's caller)."""
        if self._depth:
            with self.transaction():
                yield
            return
        with self.transaction_body():
            yield
        future = self.db.commit_soon(then)
        try:
            await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            # the COMMIT goes on without us; whoever touches the store next waits for it
            raise
        except BaseException:
            if self.db.settling(future):
                self._commit_failed(None)
            raise
        self.db.done(future)

    @contextlib.contextmanager
    def transaction_body(self) -> Iterator[None]:
        """BEGIN, the writes, the record of versions; the caller commits (`atransaction`)."""
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            self._refresh()
            yield
            if self._dirty:
                self._save_versions()
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            with contextlib.suppress(CorruptStore):
                self._load_versions()
            raise
        self._depth = 0

    def _commit_failed(self, _exc: BaseException | None) -> None:
        """A COMMIT that ran on the store's thread failed and was rolled back: the
        record of versions in memory goes back to the one on disk."""
        with contextlib.suppress(CorruptStore):
            self._load_versions()



class Store(RowEngine):
    """The profile's store: opening it, and its rows by kind (named rows, the message
    log, the outbox, envelopes already seen)."""

    # -- opening

    @staticmethod
    def path_in(home: Path) -> Path:
        return home / STORE_FILENAME

    @classmethod
    def create(cls, home: Path, passphrase: bytes | None,
               params: KdfParams | None = None) -> Store:
        """`passphrase=None` stores the key in the file itself: no protection at rest."""
        path = cls.path_in(home)
        if path.exists():
            raise ProfileExists(f"a profile already exists in {home}")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = _connect(path)
        params = params or KdfParams()
        salt = os.urandom(nacl.pwhash.argon2id.SALTBYTES)
        meta: dict[str, bytes]
        if passphrase is None:
            master = os.urandom(32)
            meta = {"protection": b"none", "master": master}
        else:
            master = derive(passphrase, salt, params)
            meta = {"protection": b"argon2id", "salt": salt, "kdf": params.encode()}
        store = cls(db, master, passphrase is not None)
        with store.transaction():
            for name, value in meta.items():
                db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
            db.execute("INSERT INTO meta (name, value) VALUES ('check', ?)",
                       (store._seal(b"meta", b"check", CHECK_PLAINTEXT),))
            db.execute("INSERT INTO meta (name, value) VALUES ('meta_mac', ?)",
                       (meta_mac(master, meta),))
            store._dirty = True
        os.chmod(path, 0o600)
        return store

    @classmethod
    def needs_passphrase(cls, home: Path) -> bool:
        """Whether the profile in `home` is protected (False also if there is none)."""
        path = cls.path_in(home)
        if not path.exists():
            return False
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name='protection'").fetchone()
        except sqlite3.DatabaseError:
            return False
        finally:
            db.close()
        return row is None or bytes(row[0]) != b"none"

    @classmethod
    def open(cls, home: Path, passphrase: bytes | None) -> Store:
        path = cls.path_in(home)
        if not path.exists():
            raise NoProfile(f"no profile in {home}; create one with 'blindrelay init'")
        db = _connect(path)
        try:
            return cls._unlock(db, passphrase)
        except BaseException:
            db.close()
            raise

    @classmethod
    def _unlock(cls, db: sqlite3.Connection, passphrase: bytes | None) -> Store:
        meta = {str(n): bytes(v) for n, v in db.execute("SELECT name, value FROM meta")}
        protection = meta.get("protection")
        if protection == b"none" and len(meta.get("master", b"")) == 32:
            master = meta["master"]
        elif protection == b"argon2id":
            if passphrase is None:
                raise WrongPassphrase("this profile is protected by a passphrase")
            # parameters out of bounds are refused here, before deriving
            master = derive(passphrase, meta.get("salt", b""),
                            KdfParams.decode(meta.get("kdf", b"")))
        else:
            raise CorruptStore("the profile's key metadata is missing or unknown")
        store = cls(db, master, protection == b"argon2id")
        try:
            ok = store._open(b"meta", b"check", meta.get("check", b"")) == CHECK_PLAINTEXT
        except CorruptStore:
            ok = False
        if not ok:
            raise WrongPassphrase("wrong passphrase")
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            store._migrate(meta)
        else:
            check_meta_mac(master, meta)
            store._load_versions(required=True)
        return store

    def close(self) -> None:
        self.db.close()

    def _migrate(self, meta: dict[str, bytes]) -> None:
        """Schema 1 to 2: every row re-sealed with a version, the record of versions
        and the metadata's MAC written; a row that does not decrypt is quarantined."""
        with self.transaction():
            for table in VERSIONED:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN ver INTEGER")
            self.db.execute(QUARANTINE_SCHEMA)
            for table in VERSIONED:
                key = "tag" if table in NAMED else "id"
                for k, data in self.db.execute(f"SELECT {key}, data FROM {table}").fetchall():
                    row = bytes(k) if table in NAMED else str(k).encode()
                    try:
                        plaintext = self._open(table.encode(), row, bytes(data))
                    except CorruptStore:
                        if table == "settings":
                            raise
                        self._quarantine(table, row, bytes(data), None, "damaged",
                                         f"{key}=?", (k,), None)
                        continue
                    version = self._version(table, row if table in NAMED else None)
                    self.db.execute(f"UPDATE {table} SET data=?, ver=? WHERE {key}=?",
                                    (self._seal(table.encode(), row, plaintext, version),
                                     version, k))
            self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES "
                            "('meta_mac', ?)", (meta_mac(self._master.reveal(), meta),))
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._dirty = True

    # -- key/value rows (settings, contacts, sessions, prekeys)

    def put(self, table: str, kind: bytes, name: bytes, value: bytes,
            extra: dict[str, object] | None = None) -> None:
        tag = self.tag(kind, name)
        with self.transaction():
            version = self._version(table, tag)
            cols = {"tag": tag, "data": self._seal(table.encode(), tag, value, version),
                    "ver": version, **(extra or {})}
            names = ", ".join(cols)
            marks = ", ".join("?" for _ in cols)
            self.db.execute(f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
                            tuple(cols.values()))

    def get(self, table: str, kind: bytes, name: bytes) -> bytes | None:
        tag = self.tag(kind, name)
        row = self.db.execute(f"SELECT data, ver FROM {table} WHERE tag=?", (tag,)).fetchone()
        return None if row is None else self._read(table, tag, bytes(row[0]), row[1], tag,
                                                    "tag=?", (tag,))

    def delete(self, table: str, kind: bytes, name: bytes) -> None:
        self.forget_row(table, self.tag(kind, name))

    def forget_row(self, table: str, tag: bytes) -> None:
        """Deletes a named row by its tag, and its entry in the record of versions."""
        with self.transaction():
            self.db.execute(f"DELETE FROM {table} WHERE tag=?", (tag,))
            self.versions.forget(table, tag)
            self._dirty = True

    def rows(self, table: str, where: str = "", args: tuple[object, ...] = ()
             ) -> list[tuple[bytes, bytes]]:
        """(tag, plaintext) of the named rows selected; damaged ones are moved aside."""
        found = self.db.execute(f"SELECT tag, data, ver FROM {table} {where}", args).fetchall()
        out = []
        for t, d, v in found:
            tag = bytes(t)
            plaintext = self._read(table, tag, bytes(d), v, tag, "tag=?", (tag,))
            if plaintext is not None:
                out.append((tag, plaintext))
        return out

    def all(self, table: str, where: str = "", args: tuple[object, ...] = ()) -> list[bytes]:
        return [plaintext for _, plaintext in self.rows(table, where, args)]

    # -- messages (append-only log with in-place state updates)

    def add_message(self, contact: str, mid: bytes | None, value: bytes) -> int:
        ctag = self.tag(b"contact", contact.encode())
        mtag = None if mid is None else self.tag(b"mid", mid)
        with self.transaction():
            cur = self.db.execute("INSERT INTO messages (contact, mid, data) VALUES (?, ?, x'')",
                                  (ctag, mtag))
            row_id = cur.lastrowid
            assert row_id is not None
            self._write_message(row_id, value)
        return row_id

    def _write_message(self, row_id: int, value: bytes) -> None:
        version = self._version("messages", None)
        self.db.execute("UPDATE messages SET data=?, ver=? WHERE id=?",
                        (self._seal(b"messages", str(row_id).encode(), value, version),
                         version, row_id))

    def update_message(self, row_id: int, value: bytes) -> None:
        with self.transaction():
            self._write_message(row_id, value)

    def delete_message(self, row_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM messages WHERE id=?", (row_id,))

    def _logged(self, table: str, found: list[tuple[int, bytes, int | None]]
                ) -> list[tuple[int, bytes]]:
        out = []
        for i, d, v in found:
            plaintext = self._read(table, str(i).encode(), bytes(d), v, None, "id=?", (i,))
            if plaintext is not None:
                out.append((i, plaintext))
        return out

    def message(self, row_id: int) -> bytes | None:
        found = self.db.execute("SELECT id, data, ver FROM messages WHERE id=?",
                                (row_id,)).fetchall()
        got = self._logged("messages", found)
        return got[0][1] if got else None

    def messages(self, contact: str, limit: int, before: int | None = None
                 ) -> list[tuple[int, bytes]]:
        """The newest `limit` messages of a conversation (before row id `before`),
        oldest first."""
        ctag = self.tag(b"contact", contact.encode())
        rows = self.db.execute(
            "SELECT id, data, ver FROM messages WHERE contact=? AND id<? ORDER BY id DESC "
            "LIMIT ?", (ctag, before if before is not None else 2**62, limit)).fetchall()
        return self._logged("messages", list(reversed(rows)))

    def message_count(self, contact: str) -> int:
        ctag = self.tag(b"contact", contact.encode())
        return int(self.db.execute("SELECT COUNT(*) FROM messages WHERE contact=?",
                                   (ctag,)).fetchone()[0])

    def find_messages(self, mid: bytes) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT id, data, ver FROM messages WHERE mid=?",
                               (self.tag(b"mid", mid),)).fetchall()
        return self._logged("messages", rows)

    # -- outbox

    def add_outbox(self, value: bytes) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO outbox (data) VALUES (x'')")
            row_id = cur.lastrowid
            assert row_id is not None
            version = self._version("outbox", None)
            self.db.execute("UPDATE outbox SET data=?, ver=? WHERE id=?",
                            (self._seal(b"outbox", str(row_id).encode(), value, version),
                             version, row_id))
        return row_id

    def outbox(self) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT id, data, ver FROM outbox ORDER BY id").fetchall()
        return self._logged("outbox", rows)

    def delete_outbox(self, row_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM outbox WHERE id=?", (row_id,))

    # -- envelopes already processed (dedupe of redeliveries)

    def seen(self, envelope_id: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM seen WHERE tag=?",
                               (self.tag(b"envelope", envelope_id),)).fetchone() is not None

    def mark_seen(self, envelope_id: bytes, now: int) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO seen (tag, at) VALUES (?, ?)",
                            (self.tag(b"envelope", envelope_id), now))

    def forget_seen(self, before: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM seen WHERE at<?", (before,))


# -- typed repositories: the only code that names the tables


class ProfileRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self) -> Profile | None:
        data = self.store.get("settings", b"setting", b"profile")
        return None if data is None else Profile.decode(data)

    def save(self, profile: Profile) -> None:
        self.store.put("settings", b"setting", b"profile", profile.encode())

    def legacy_base_keys(self) -> list[bytes]:
        """The one list of accepted initial messages (EK_A) that profiles kept before
        session records held their own (read only to migrate them)."""
        data = self.store.get("settings", b"setting", b"base_keys")
        return [] if data is None else [bytes.fromhex(k) for k in json.loads(data)]


class DeliveryRepo:
    """The profile's sealed-sending settings and delivery capability (one settings row)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self) -> Delivery | None:
        data = self.store.get("settings", b"setting", b"delivery")
        return None if data is None else Delivery.decode(data)

    def save(self, delivery: Delivery) -> None:
        self.store.put("settings", b"setting", b"delivery", delivery.encode())


class KtRepo:
    """The key directory's state per relay (client/directory.py): one settings row per
    server URL, versioned like every named row, so a profile restored from an older
    copy cannot quietly take the client back to an older directory head."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._head: tuple[bytes, bytes | None] | None = None

    def load(self, server: str) -> KtState | None:
        data = self.store.get("settings", b"kt", server.encode())
        return None if data is None else KtState.decode(data)

    def head_note(self, server: str) -> bytes | None:
        """The state's head note alone: every text carries it, and the row's bytes
        are decoded again only when they changed."""
        data = self.store.get("settings", b"kt", server.encode())
        if data is None:
            return None
        if self._head is None or self._head[0] != data:
            self._head = (data, KtState.decode(data).head_note)
        return self._head[1]

    def save(self, state: KtState) -> None:
        self.store.put("settings", b"kt", state.server.encode(), state.encode())


class CertRepo:
    """The relay's pinned certificate key and our newest sender certificate, per relay
    (client/certificates.py): one settings row per server URL, versioned like the key
    directory's, so a restored profile cannot swap the pinned key back."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, server: str) -> CertState | None:
        data = self.store.get("settings", b"certs", server.encode())
        return None if data is None else CertState.decode(data)

    def save(self, state: CertState) -> None:
        self.store.put("settings", b"certs", state.server.encode(), state.encode())


class PrekeyRepo:
    """Private prekeys by (kind, id), with their creation time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _name(kind: PrekeyKind, key_id: int) -> tuple[bytes, bytes]:
        return b"prekey:" + kind.value.encode(), key_id.to_bytes(4, "big")

    def put(self, kind: PrekeyKind, key_id: int, private: bytes, now: float) -> None:
        self.store.put("prekeys", *self._name(kind, key_id), json.dumps(
            {"id": key_id, "private": private.hex(), "created": now}).encode(),
            extra={"kind": kind.value})

    def get(self, kind: PrekeyKind, key_id: int) -> bytes | None:
        data = self.store.get("prekeys", *self._name(kind, key_id))
        return None if data is None else bytes.fromhex(json.loads(data)["private"])

    def delete(self, kind: PrekeyKind, key_id: int) -> None:
        self.store.delete("prekeys", *self._name(kind, key_id))

    def ids(self, kind: PrekeyKind) -> list[tuple[int, float]]:
        """(id, created) of every stored prekey of `kind`, oldest first."""
        entries = [json.loads(data)
                   for _, data in self.store.rows("prekeys", "WHERE kind=?", (kind.value,))]
        return sorted((int(e["id"]), float(e["created"])) for e in entries)

    def prune(self, kind: PrekeyKind, keep_id: int, created_before: float) -> None:
        """Deletes the prekeys of `kind` other than `keep_id` made before the time."""
        for tag, data in self.store.rows("prekeys", "WHERE kind=?", (kind.value,)):
            entry = json.loads(data)
            if entry["id"] != keep_id and entry["created"] < created_before:
                self.store.forget_row("prekeys", tag)


class ContactRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, name: str) -> Contact | None:
        data = self.store.get("contacts", b"contact", name.encode())
        return None if data is None else Contact.decode(data)

    def all(self) -> list[Contact]:
        return [Contact.decode(d) for d in self.store.all("contacts")]

    def save(self, contact: Contact) -> None:
        self.store.put("contacts", b"contact", contact.name.encode(), contact.encode())


class SessionRepo:
    """One SessionRecord per peer (PROTOCOL.md 13.3). Profiles made before records
    kept up to three session rows per peer and one list of accepted initial messages;
    `load` assembles a record from them and `save` replaces them."""

    LEGACY = (b"session", b"pending", b"previous")

    def __init__(self, store: Store, profiles: ProfileRepo) -> None:
        self.store = store
        self.profiles = profiles

    def load(self, name: str) -> SessionRecord:
        data = self.store.get("sessions", b"record", name.encode())
        if data is not None:
            return SessionRecord.deserialize(data)
        current, pending, previous = (
            None if (row := self.store.get("sessions", kind, name.encode())) is None
            else Session.deserialize(row) for kind in self.LEGACY)
        if current is None and pending is None and previous is None:
            return SessionRecord()
        accepted = list(dict.fromkeys(self.profiles.legacy_base_keys()))[-MAX_ACCEPTED:]
        return SessionRecord(current, pending, previous, accepted)

    def save(self, name: str, record: SessionRecord) -> None:
        with self.store.transaction():
            self.store.put("sessions", b"record", name.encode(), record.serialize())
            for kind in self.LEGACY:
                self.store.delete("sessions", kind, name.encode())

    def forget(self, name: str) -> None:
        """Drops every session with the peer (the next message starts a new one)."""
        with self.store.transaction():
            for kind in (b"record", *self.LEGACY):
                self.store.delete("sessions", kind, name.encode())


class MessageRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, message: Message) -> int:
        message.row_id = self.store.add_message(message.contact, message.message_id or None,
                                                message.encode())
        return message.row_id

    def update(self, message: Message) -> None:
        self.store.update_message(message.row_id, message.encode())

    def get(self, row_id: int) -> Message | None:
        data = self.store.message(row_id)
        return None if data is None else Message.decode(data, row_id)

    def conversation(self, name: str, limit: int, before: int | None = None
                     ) -> list[Message]:
        return [Message.decode(d, row) for row, d in self.store.messages(name, limit, before)]

    def delete(self, row_id: int) -> None:
        self.store.delete_message(row_id)

    def by_message_id(self, message_id: bytes) -> list[Message]:
        return [Message.decode(d, row) for row, d in self.store.find_messages(message_id)]


class OutboxRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: OutboxItem) -> int:
        return self.store.add_outbox(item.encode())

    def items(self) -> list[tuple[int, OutboxItem]]:
        return [(row, OutboxItem.decode(d)) for row, d in self.store.outbox()]

    def delete(self, row_id: int) -> None:
        self.store.delete_outbox(row_id)


def private_files(path: Path) -> None:
    """Creates (or re-modes) the database and its WAL and shared-memory files as 0600
    before SQLite opens them, whatever the umask: the WAL holds recent rows."""
    path.parent.chmod(0o700)
    for suffix in ("", "-wal", "-shm"):
        name = f"{path}{suffix}"
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(name, 0o600)


def _connect(path: Path) -> sqlite3.Connection:
    private_files(path)
    # shared with the store's commit thread, never used by both at once (store_thread.py)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise CorruptStore(f"profile schema {version} is newer than this client")
    if version == 0:  # a new file: nothing is written to an existing one before the
        db.executescript(SCHEMA)  # passphrase is checked (schema 1 migrates after it)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return db
