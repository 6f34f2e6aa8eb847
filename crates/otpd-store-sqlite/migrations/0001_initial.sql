-- Accounts own services; a service is one OTP configuration; an application is a set of
-- credentials bound to one service.
CREATE TABLE accounts (
    id              BLOB PRIMARY KEY,   -- the Twilio Account SID is 'AC' + its 32 hex digits
    name            TEXT NOT NULL,
    auth_token_hash BLOB NOT NULL,      -- HMAC-SHA256 under the server secret
    created_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY,       -- 'SK' + 32 hex digits
    account_id  BLOB NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE services (
    id         BLOB PRIMARY KEY,
    account_id BLOB NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    settings   TEXT NOT NULL,          -- JSON of otpd_core::OtpSettings
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX services_account ON services(account_id, id) WHERE deleted = 0;

CREATE TABLE applications (
    id           BLOB PRIMARY KEY,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    service_id   BLOB NOT NULL REFERENCES services(id),
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,        -- HMAC-SHA256 under the server secret
    api_key_hash BLOB NOT NULL UNIQUE, -- looked up on every X-API-KEY request
    created_at   INTEGER NOT NULL
);

CREATE TABLE access_tokens (
    token_hash     BLOB PRIMARY KEY,   -- looked up on every bearer request
    application_id BLOB NOT NULL REFERENCES applications(id),
    scope          TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX access_tokens_application ON access_tokens(application_id);

-- Times are milliseconds since the Unix epoch. Ids are 16-byte UUID v7 (time-ordered).
CREATE TABLE verifications (
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
    updated_at   INTEGER NOT NULL
);
CREATE INDEX verifications_service_to ON verifications(service_id, to_number);

CREATE TABLE deliveries (
    id              BLOB PRIMARY KEY,
    verification_id BLOB NOT NULL REFERENCES verifications(id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL,
    provider        TEXT,
    provider_ref    TEXT,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL    -- the writing node owns a queued delivery until then
);
CREATE INDEX deliveries_verification ON deliveries(verification_id);
CREATE INDEX deliveries_queued ON deliveries(lease_until) WHERE status = 'queued';

-- The status-callback outbox: written in the same transaction as the status change.
CREATE TABLE callbacks (
    id              BLOB PRIMARY KEY,
    verification_id BLOB NOT NULL REFERENCES verifications(id),
    url             TEXT NOT NULL,
    status          TEXT NOT NULL,     -- the verification status this event reports
    state           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE state = 'pending';
