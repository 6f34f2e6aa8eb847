-- The audit log (docs/data-protection.md, "Audit log"): append-only, one hash chain in
-- `seq` order. The writer's single transaction at a time is what serialises appends.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    id         BLOB NOT NULL UNIQUE,
    at         INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    account_id BLOB,
    source     TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    summary    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
