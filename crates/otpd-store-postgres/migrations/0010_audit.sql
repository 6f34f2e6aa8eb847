-- The audit log (docs/data-protection.md, "Audit log"): append-only, one hash chain in
-- `seq` order. `audit_head` is its one-row head: an append locks it (`FOR UPDATE`), so
-- appends from every node take turns and the chain never forks.
CREATE TABLE audit_head (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    seq       BIGINT NOT NULL,
    hash      BYTEA NOT NULL
);
INSERT INTO audit_head (singleton, seq, hash) VALUES (TRUE, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    at         BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    account_id UUID,
    source     TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    summary    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
