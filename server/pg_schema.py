"""The PostgreSQL storage's schema (server/pg_store.py): the tables of docs/DATA.md in
PostgreSQL's types, queue_heads, the triggers that keep envelope_usage and group
bodies right, and blindrelay_store, which stores a SEND's envelopes in one statement;
with the advisory lock keys, the budget's margins and the schema's version mark.

Only SQL and constants: pg_store.py runs it (under MIGRATION_LOCK) and calls it.
"""

from __future__ import annotations

from server.sqlite_store import SCHEMA_VERSION
from server.storage import ENVELOPE_OVERHEAD

PG_REVISION = 2
"""Revision of what only PostgreSQL has (functions, triggers, queue_heads), within
SCHEMA_VERSION: a database of an older revision gets SCHEMA again at open."""
PG_REVISION_MARK = " postgresql "
FULL, CONFLICT, UNKNOWN, QUEUE_FULL = "BR001", "BR002", "BR003", "BR004"
"""SQLSTATEs blindrelay_store raises: StorageFull, CommitConflict, UnknownUser,
QueueFull."""
MIGRATION_LOCK = 0x626C696E6472_01
"""pg_advisory_lock key held while the schema is created or migrated."""
KT_LOCK = 0x626C696E6472_02
"""pg_advisory_xact_lock key held while kt_updates is appended to."""
BUDGET_LOCK = 0x626C696E6472_03
"""pg_advisory_xact_lock key: exclusive for a store near the global disk budget, shared
for one far from it."""
DIRECTORY_LOCK = 0x626C696E6472_04
"""pg_advisory_lock key a relay process holds while it updates the key directory
(Storage.directory_lock, server/cluster.py)."""
MARGIN_BYTES = 64 << 20
MARGIN_ENVELOPES = 4096
"""A store is near the budget within a quarter of it, and at least within these: the
budget is exact as long as the stores in flight at once, far from it, add less than
the margin (4096 envelopes is 64 stores to 64 recipients each)."""
USAGE_SHARDS = 16
RELAY_APPLICATION = "blindrelay"
"""The application_name a relay's connections carry (docs/DATA.md)."""
VERSION_COMMENT = "blindrelay schema "


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS accounts (
    username      TEXT PRIMARY KEY,
    identity_key  BYTEA NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS signed_prekeys (
    username                TEXT PRIMARY KEY REFERENCES accounts(username),
    signed_prekey           BYTEA NOT NULL,
    last_resort_kem_prekey  BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    BIGINT NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (username, key_id)
);
CREATE TABLE IF NOT EXISTS kem_one_time_prekeys (
    username  TEXT NOT NULL REFERENCES accounts(username),
    key_id    BIGINT NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (username, key_id)
);
CREATE TABLE IF NOT EXISTS group_bodies (
    id    BIGINT PRIMARY KEY,
    body  BYTEA NOT NULL,
    refs  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
    id           BIGINT PRIMARY KEY,
    envelope_id  BYTEA NOT NULL UNIQUE,
    recipient    TEXT NOT NULL REFERENCES accounts(username),
    seq          BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    shared       BIGINT REFERENCES group_bodies(id)
);
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_by_recipient ON envelopes (recipient, seq);
CREATE INDEX IF NOT EXISTS envelopes_by_age ON envelopes (received_at);
CREATE TABLE IF NOT EXISTS queue_heads (
    username  TEXT PRIMARY KEY REFERENCES accounts(username),
    seq       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery_capabilities (
    username         TEXT PRIMARY KEY REFERENCES accounts(username),
    capability_hash  BYTEA NOT NULL,
    allow_anyone     BOOLEAN NOT NULL,
    set_at           BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_updates (
    idx       BIGINT PRIMARY KEY,
    username  TEXT NOT NULL,
    value     BYTEA NOT NULL,
    opening   BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS group_epochs (
    group_hash  BYTEA PRIMARY KEY,
    epoch       BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS group_epochs_by_age ON group_epochs (at);
CREATE TABLE IF NOT EXISTS key_packages (
    username     TEXT NOT NULL REFERENCES accounts(username),
    id           BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    last_resort  BOOLEAN NOT NULL,
    PRIMARY KEY (username, id)
);
CREATE TABLE IF NOT EXISTS envelope_usage (
    id     INTEGER PRIMARY KEY CHECK (id >= 0 AND id < {USAGE_SHARDS}),
    bytes  BIGINT NOT NULL,
    count  BIGINT NOT NULL
);
INSERT INTO envelope_usage (id, bytes, count)
    SELECT s, 0, 0 FROM generate_series(0, {USAGE_SHARDS - 1}) AS s
    ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION blindrelay_envelope_in() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes + octet_length(NEW.body) + {ENVELOPE_OVERHEAD},
                              count = count + 1
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_envelope_out() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes - octet_length(OLD.body) - {ENVELOPE_OVERHEAD},
                              count = count - 1
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    IF OLD.shared IS NOT NULL THEN
        UPDATE group_bodies SET refs = refs - 1 WHERE id = OLD.shared;
        DELETE FROM group_bodies WHERE id = OLD.shared AND refs <= 0;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_group_body_in() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes + octet_length(NEW.body)
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION blindrelay_group_body_out() RETURNS trigger AS $$
BEGIN
    UPDATE envelope_usage SET bytes = bytes - octet_length(OLD.body)
     WHERE id = pg_backend_pid() % {USAGE_SHARDS};
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS envelope_usage_in ON envelopes;
CREATE TRIGGER envelope_usage_in AFTER INSERT ON envelopes
    FOR EACH ROW EXECUTE FUNCTION blindrelay_envelope_in();
DROP TRIGGER IF EXISTS envelope_usage_out ON envelopes;
CREATE TRIGGER envelope_usage_out AFTER DELETE ON envelopes
    FOR EACH ROW EXECUTE FUNCTION blindrelay_envelope_out();
DROP TRIGGER IF EXISTS group_body_in ON group_bodies;
CREATE TRIGGER group_body_in AFTER INSERT ON group_bodies
    FOR EACH ROW EXECUTE FUNCTION blindrelay_group_body_in();
DROP TRIGGER IF EXISTS group_body_out ON group_bodies;
CREATE TRIGGER group_body_out AFTER DELETE ON group_bodies
    FOR EACH ROW EXECUTE FUNCTION blindrelay_group_body_out();
CREATE OR REPLACE FUNCTION blindrelay_store(
    p_recipients TEXT[], p_bodies BYTEA[], p_envelope_ids BYTEA[], p_row_ids BIGINT[],
    p_steps BIGINT[], p_starts BIGINT[], p_shared_id BIGINT, p_shared_body BYTEA,
    p_now BIGINT, p_max_queue BIGINT, p_adding_bytes BIGINT, p_max_bytes BIGINT,
    p_max_count BIGINT, p_group_hash BYTEA, p_epoch BIGINT, p_forget_before BIGINT)
RETURNS BIGINT[] AS $$
DECLARE
    n INT := COALESCE(array_length(p_recipients, 1), 0);
    names TEXT[];
    lasts BIGINT[] := '{{}}';
    seqs BIGINT[] := '{{}}';
    name TEXT;
    total BIGINT;
    wanted BIGINT;
    head BIGINT;
    queued BIGINT;
    used BIGINT;
    stored BIGINT;
    latest BIGINT;
    k INT;
    j INT;
BEGIN
    IF p_max_bytes > 0 OR p_max_count > 0 THEN
        -- near the budget (within its margin): one store at a time, after every store in
        -- flight has committed (the exclusive lock), against exact totals; far from it,
        -- stores go together under the shared lock, and one that finds itself near once
        -- it has the lock starts again (a serialization failure, retried by the caller)
        SELECT COALESCE(SUM(u.bytes), 0), COALESCE(SUM(u.count), 0) INTO used, stored
          FROM envelope_usage u;
        IF (p_max_bytes > 0 AND used + p_adding_bytes > p_max_bytes
                - GREATEST(p_max_bytes / 4, {MARGIN_BYTES}))
           OR (p_max_count > 0 AND stored + n > p_max_count
                - GREATEST(p_max_count / 4, {MARGIN_ENVELOPES})) THEN
            PERFORM pg_advisory_xact_lock({BUDGET_LOCK});
            SELECT COALESCE(SUM(u.bytes), 0), COALESCE(SUM(u.count), 0) INTO used, stored
              FROM envelope_usage u;
            IF p_max_bytes > 0 AND used + p_adding_bytes > p_max_bytes THEN
                RAISE EXCEPTION USING ERRCODE = '{FULL}', MESSAGE = p_max_bytes || ' bytes';
            END IF;
            IF p_max_count > 0 AND stored + n > p_max_count THEN
                RAISE EXCEPTION USING ERRCODE = '{FULL}', MESSAGE = p_max_count || ' envelopes';
            END IF;
        ELSE
            PERFORM pg_advisory_xact_lock_shared({BUDGET_LOCK});
            SELECT COALESCE(SUM(u.bytes), 0), COALESCE(SUM(u.count), 0) INTO used, stored
              FROM envelope_usage u;
            IF (p_max_bytes > 0 AND used + p_adding_bytes > p_max_bytes
                    - GREATEST(p_max_bytes / 4, {MARGIN_BYTES}))
               OR (p_max_count > 0 AND stored + n > p_max_count
                    - GREATEST(p_max_count / 4, {MARGIN_ENVELOPES})) THEN
                RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                    MESSAGE = 'near the storage budget: store again';
            END IF;
        END IF;
    END IF;
    IF p_group_hash IS NOT NULL THEN
        DELETE FROM group_epochs g WHERE g.at < p_forget_before;
        INSERT INTO group_epochs AS g (group_hash, epoch, at)
            VALUES (p_group_hash, p_epoch, p_now)
            ON CONFLICT (group_hash) DO UPDATE SET epoch = excluded.epoch, at = excluded.at
            WHERE g.epoch < excluded.epoch
            RETURNING g.epoch INTO latest;
        IF latest IS NULL THEN
            SELECT g.epoch INTO latest FROM group_epochs g WHERE g.group_hash = p_group_hash;
            RAISE EXCEPTION USING ERRCODE = '{CONFLICT}', MESSAGE = latest::TEXT;
        END IF;
    END IF;
    -- each recipient's queue_heads row, locked in name order (no deadlock between stores)
    names := ARRAY(SELECT d.x FROM (SELECT DISTINCT x FROM unnest(p_recipients) AS x) d
                   ORDER BY d.x COLLATE "C");
    FOREACH name IN ARRAY names LOOP
        wanted := 0;
        total := 0;
        FOR k IN 1..n LOOP
            IF p_recipients[k] = name THEN
                wanted := wanted + 1;
                total := total + p_steps[k];
            END IF;
        END LOOP;
        PERFORM 1 FROM accounts a WHERE a.username = name FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '{UNKNOWN}', MESSAGE = name;
        END IF;
        INSERT INTO queue_heads AS h (username, seq)
            VALUES (name, p_starts[array_position(p_recipients, name)] + total)
            ON CONFLICT (username) DO UPDATE SET seq = h.seq + total
            RETURNING h.seq INTO head;
        -- a statement after the lock: sees every store that held it before
        SELECT COUNT(*) INTO queued FROM envelopes e WHERE e.recipient = name;
        IF queued + wanted > p_max_queue THEN
            RAISE EXCEPTION USING ERRCODE = '{QUEUE_FULL}', MESSAGE = name;
        END IF;
        lasts := lasts || (head - total);
    END LOOP;
    FOR k IN 1..n LOOP
        j := array_position(names, p_recipients[k]);
        lasts[j] := lasts[j] + p_steps[k];
        seqs := seqs || lasts[j];
    END LOOP;
    IF p_shared_id IS NOT NULL THEN
        INSERT INTO group_bodies (id, body, refs) VALUES (p_shared_id, p_shared_body, n);
    END IF;
    INSERT INTO envelopes (id, envelope_id, recipient, seq, body, received_at, shared)
        SELECT r.id, r.eid, r.recipient, r.seq, r.body, p_now, p_shared_id
          FROM unnest(p_row_ids, p_envelope_ids, p_recipients, seqs, p_bodies)
               AS r(id, eid, recipient, seq, body);
    RETURN seqs;
END $$ LANGUAGE plpgsql;
COMMENT ON TABLE accounts IS '{VERSION_COMMENT}{SCHEMA_VERSION}{PG_REVISION_MARK}{PG_REVISION}';
"""
"""The tables of docs/DATA.md in PostgreSQL's types (BYTEA for BLOB, BIGINT for
INTEGER), plus queue_heads; the triggers keep envelope_usage exact whatever deletes
envelopes (ACK, expiry, account deletion) and release a group body with its last
envelope, as in SQLite."""


def parse_version(comment: object) -> tuple[int, int]:
    """(schema version, PostgreSQL revision) from the comment on `accounts`; (0, 0)
    for a database without the relay's tables."""
    text = str(comment or "")
    if not text.startswith(VERSION_COMMENT):
        return 0, 0
    number, _, revision = text[len(VERSION_COMMENT):].partition(PG_REVISION_MARK)
    return int(number), int(revision or 0)
