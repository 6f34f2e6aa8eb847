-- Verifications and deliveries clustered by their id (WITHOUT ROWID), as events are since
-- migration 9: a rowid table with a BLOB primary key is two b-trees (the rows, and a unique
-- index on the id), so every insert wrote both and every lookup by id read both. A start
-- inserts one of each; a check reads and updates its verification by id.
-- Runs with foreign keys off (the migration runner turns them off around migrations and
-- checks them after): dropping the old tables must not touch the rows that refer to them.
CREATE TABLE verifications_by_id (
    id           BLOB PRIMARY KEY,
    service_id   BLOB NOT NULL REFERENCES services(id),
    to_number    TEXT NOT NULL,        -- E.164 number or email address
    country      TEXT,                 -- phones only
    channel      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    ttl          INTEGER NOT NULL,
    code_hash    BLOB NOT NULL,        -- HMAC-SHA256(server secret, id || code); never the code
    code_seed    BLOB,                 -- random seed the code is derived from with the server secret; NULL for custom codes
    pin_type     TEXT NOT NULL,
    pin_length   INTEGER NOT NULL,
    template     TEXT NOT NULL,        -- with its {{pin}} placeholder, never rendered
    sender       TEXT NOT NULL,
    track_id     BLOB,
    callback_url TEXT,
    amount       TEXT,
    payee        TEXT,
    cost         REAL NOT NULL,
    parts        INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    locale       TEXT
) WITHOUT ROWID;
INSERT INTO verifications_by_id (id, service_id, to_number, country, channel, status, attempts,
    max_attempts, ttl, code_hash, code_seed, pin_type, pin_length, template, sender, track_id,
    callback_url, amount, payee, cost, parts, created_at, expires_at, updated_at, locale)
    SELECT id, service_id, to_number, country, channel, status, attempts,
    max_attempts, ttl, code_hash, code_seed, pin_type, pin_length, template, sender, track_id,
    callback_url, amount, payee, cost, parts, created_at, expires_at, updated_at, locale
    FROM verifications;
DROP TABLE verifications;
ALTER TABLE verifications_by_id RENAME TO verifications;
CREATE INDEX verifications_service_to ON verifications(service_id, to_number);

CREATE TABLE deliveries_by_id (
    id              BLOB PRIMARY KEY,
    verification_id BLOB NOT NULL REFERENCES verifications(id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL,
    provider        TEXT,
    provider_ref    TEXT,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,   -- the writing node owns a queued delivery until then
    error_code      TEXT,
    segments        INTEGER,
    price           REAL,
    price_unit      TEXT,
    fallback_at     INTEGER
) WITHOUT ROWID;
INSERT INTO deliveries_by_id (id, verification_id, channel, status, provider, provider_ref,
    error, created_at, updated_at, lease_until, error_code, segments, price, price_unit,
    fallback_at)
    SELECT id, verification_id, channel, status, provider, provider_ref,
    error, created_at, updated_at, lease_until, error_code, segments, price, price_unit,
    fallback_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_id RENAME TO deliveries;
CREATE INDEX deliveries_verification ON deliveries(verification_id);
CREATE INDEX deliveries_queued ON deliveries(lease_until) WHERE status = 'queued';
CREATE INDEX deliveries_provider_ref ON deliveries(provider_ref, provider);
CREATE INDEX deliveries_fallback_due ON deliveries(fallback_at) WHERE fallback_at IS NOT NULL;
