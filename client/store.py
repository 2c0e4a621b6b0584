"""The client's encrypted local store: one SQLite file per profile.

Everything secret or personal (identity key, prekeys, sessions, contacts, history,
outbox) is stored as XChaCha20-Poly1305 ciphertext under a key derived from the
passphrase with Argon2id. Each row's associated data names its table and row key, so
rows cannot be swapped. Rows are found by HMAC-SHA256 tags of their names, never by
the names themselves: the file shows how many rows there are, not whom they concern.

A wrong passphrase fails the key check before anything is read or written.

`Store` is the encrypted row engine; the typed repositories below (profile, prekeys,
contacts, session records, messages, outbox) are the only code that names its tables.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import nacl.bindings as sodium
import nacl.exceptions
import nacl.pwhash
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.errors import ClientError
from client.records import Contact, Message, OutboxItem, PrekeyKind, Profile
from protocol.e2e.session import Session
from protocol.e2e.session_record import MAX_ACCEPTED, SessionRecord

STORE_FILENAME = "profile.sqlite3"
SCHEMA_VERSION = 1
CHECK_PLAINTEXT = b"blindrelay local store v1"
NONCE_LEN = 24

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS settings (tag BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekeys (tag BLOB PRIMARY KEY, kind TEXT NOT NULL,
                                    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (tag BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (tag BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, contact BLOB NOT NULL,
                                     mid BLOB, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_contact ON messages (contact, id);
CREATE INDEX IF NOT EXISTS messages_by_mid ON messages (mid);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen (tag BLOB PRIMARY KEY, at INTEGER NOT NULL);
"""


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


@dataclass(frozen=True)
class KdfParams:
    opslimit: int = 3
    memlimit: int = 64 * 1024 * 1024

    def encode(self) -> bytes:
        return self.opslimit.to_bytes(4, "big") + self.memlimit.to_bytes(8, "big")

    @classmethod
    def decode(cls, data: bytes) -> KdfParams:
        if len(data) != 12:
            raise CorruptStore("bad KDF parameters")
        return cls(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big"))


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


class Store:
    """Encrypted rows over one SQLite connection. Use `transaction()` to group writes
    that must land together (a received message and the ratchet state, say)."""

    def __init__(self, db: sqlite3.Connection, master: bytes, protected: bool) -> None:
        self.db = db
        enc_key, index_key = _subkeys(master)
        self._enc_key, self._index_key = SecretKey(enc_key), SecretKey(index_key)
        self.protected = protected
        self._depth = 0

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
        if passphrase is None:
            master = os.urandom(32)
            meta = {"protection": b"none", "master": master}
        else:
            master = _derive(passphrase, salt, params)
            meta = {"protection": b"argon2id", "salt": salt, "kdf": params.encode()}
        store = cls(db, master, passphrase is not None)
        with store.transaction():
            for name, value in meta.items():
                db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
            db.execute("INSERT INTO meta (name, value) VALUES ('check', ?)",
                       (store._seal(b"meta", b"check", CHECK_PLAINTEXT),))
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
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        protection = meta.get("protection")
        if protection == b"none":
            master = bytes(meta["master"])
        elif protection == b"argon2id":
            if passphrase is None:
                db.close()
                raise WrongPassphrase("this profile is protected by a passphrase")
            master = _derive(passphrase, bytes(meta["salt"]), KdfParams.decode(meta["kdf"]))
        else:
            db.close()
            raise CorruptStore("the profile's key metadata is missing or unknown")
        store = cls(db, master, protection == b"argon2id")
        try:
            if store._open(b"meta", b"check", bytes(meta["check"])) != CHECK_PLAINTEXT:
                raise CorruptStore("key check mismatch")
        except CorruptStore:
            db.close()
            raise WrongPassphrase("wrong passphrase") from None
        return store

    def close(self) -> None:
        self.db.close()

    # -- crypto

    def tag(self, kind: bytes, name: bytes) -> bytes:
        """The row key for a name: HMAC-SHA256(index key, kind || 0 || name), 16 bytes."""
        return hmac.new(self._index_key.reveal(), kind + b"\x00" + name, sha256).digest()[:16]

    def _seal(self, table: bytes, row: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, table + b"\x00" + row, nonce, self._enc_key.reveal()))

    def _open(self, table: bytes, row: bytes, data: bytes) -> bytes:
        try:
            return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[NONCE_LEN:], table + b"\x00" + row, data[:NONCE_LEN], self._enc_key.reveal()))
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise CorruptStore(f"a row of {table.decode()} does not decrypt") from exc

    # -- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nests."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    # -- key/value rows (settings, contacts, sessions, prekeys)

    def put(self, table: str, kind: bytes, name: bytes, value: bytes,
            extra: dict[str, object] | None = None) -> None:
        tag = self.tag(kind, name)
        cols = {"tag": tag, "data": self._seal(table.encode(), tag, value), **(extra or {})}
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        with self.transaction():
            self.db.execute(f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
                            tuple(cols.values()))

    def get(self, table: str, kind: bytes, name: bytes) -> bytes | None:
        tag = self.tag(kind, name)
        row = self.db.execute(f"SELECT data FROM {table} WHERE tag=?", (tag,)).fetchone()
        return None if row is None else self._open(table.encode(), tag, bytes(row[0]))

    def delete(self, table: str, kind: bytes, name: bytes) -> None:
        with self.transaction():
            self.db.execute(f"DELETE FROM {table} WHERE tag=?", (self.tag(kind, name),))

    def all(self, table: str, where: str = "", args: tuple[object, ...] = ()) -> list[bytes]:
        rows = self.db.execute(f"SELECT tag, data FROM {table} {where}", args).fetchall()
        return [self._open(table.encode(), bytes(t), bytes(d)) for t, d in rows]

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
        self.db.execute("UPDATE messages SET data=? WHERE id=?",
                        (self._seal(b"messages", str(row_id).encode(), value), row_id))

    def update_message(self, row_id: int, value: bytes) -> None:
        with self.transaction():
            self._write_message(row_id, value)

    def delete_message(self, row_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM messages WHERE id=?", (row_id,))

    def message(self, row_id: int) -> bytes | None:
        row = self.db.execute("SELECT data FROM messages WHERE id=?", (row_id,)).fetchone()
        return None if row is None else self._open(b"messages", str(row_id).encode(),
                                                   bytes(row[0]))

    def messages(self, contact: str, limit: int, before: int | None = None
                 ) -> list[tuple[int, bytes]]:
        """The newest `limit` messages of a conversation (before row id `before`),
        oldest first."""
        ctag = self.tag(b"contact", contact.encode())
        rows = self.db.execute(
            "SELECT id, data FROM messages WHERE contact=? AND id<? ORDER BY id DESC LIMIT ?",
            (ctag, before if before is not None else 2**62, limit)).fetchall()
        return [(i, self._open(b"messages", str(i).encode(), bytes(d)))
                for i, d in reversed(rows)]

    def message_count(self, contact: str) -> int:
        ctag = self.tag(b"contact", contact.encode())
        return int(self.db.execute("SELECT COUNT(*) FROM messages WHERE contact=?",
                                   (ctag,)).fetchone()[0])

    def find_messages(self, mid: bytes) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT id, data FROM messages WHERE mid=?",
                               (self.tag(b"mid", mid),)).fetchall()
        return [(i, self._open(b"messages", str(i).encode(), bytes(d))) for i, d in rows]

    # -- outbox

    def add_outbox(self, value: bytes) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO outbox (data) VALUES (x'')")
            row_id = cur.lastrowid
            assert row_id is not None
            self.db.execute("UPDATE outbox SET data=? WHERE id=?",
                            (self._seal(b"outbox", str(row_id).encode(), value), row_id))
        return row_id

    def outbox(self) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT id, data FROM outbox ORDER BY id").fetchall()
        return [(i, self._open(b"outbox", str(i).encode(), bytes(d))) for i, d in rows]

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
        rows = self.store.db.execute("SELECT tag, data FROM prekeys WHERE kind=?",
                                     (kind.value,)).fetchall()
        entries = [json.loads(self.store._open(b"prekeys", bytes(t), bytes(d))) for t, d in rows]
        return sorted((int(e["id"]), float(e["created"])) for e in entries)

    def prune(self, kind: PrekeyKind, keep_id: int, created_before: float) -> None:
        """Deletes the prekeys of `kind` other than `keep_id` made before the time."""
        rows = self.store.db.execute("SELECT tag, data FROM prekeys WHERE kind=?",
                                     (kind.value,)).fetchall()
        for tag, data in rows:
            entry = json.loads(self.store._open(b"prekeys", bytes(tag), bytes(data)))
            if entry["id"] != keep_id and entry["created"] < created_before:
                self.store.db.execute("DELETE FROM prekeys WHERE tag=?", (tag,))


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


def _derive(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return bytes(nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=params.opslimit,
                                          memlimit=params.memlimit))


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
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise CorruptStore(f"profile schema {version} is newer than this client")
    if version < SCHEMA_VERSION:  # a new file: nothing is written to an existing one
        db.executescript(SCHEMA)  # before the passphrase is checked
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return db
