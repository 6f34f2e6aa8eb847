-- PostgreSQL schema: the same tables as the SQLite store, in PostgreSQL's types.
-- Times are milliseconds since the Unix epoch (BIGINT); ids are UUID v7.
CREATE TABLE accounts (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    auth_token_hash BYTEA NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE services (
    id         UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    settings   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX services_account ON services(account_id, id) WHERE NOT deleted;

CREATE TABLE applications (
    id           UUID PRIMARY KEY,
    account_id   UUID NOT NULL REFERENCES accounts(id),
    service_id   UUID NOT NULL REFERENCES services(id),
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    api_key_hash BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    token_hash     BYTEA PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications(id),
    scope          TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_application ON access_tokens(application_id);

CREATE TABLE verifications (
    id           UUID PRIMARY KEY,
    service_id   UUID NOT NULL REFERENCES services(id),
    to_number    TEXT NOT NULL,
    country      TEXT,
    channel      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    ttl          INTEGER NOT NULL,
    code_hash    BYTEA NOT NULL,
    pin_type     TEXT NOT NULL,
    pin_length   INTEGER NOT NULL,
    template     TEXT NOT NULL,
    sender       TEXT NOT NULL,
    track_id     UUID,
    callback_url TEXT,
    cost         DOUBLE PRECISION NOT NULL,
    parts        INTEGER NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    code_seed    BYTEA,
    amount       TEXT,
    payee        TEXT
);
CREATE INDEX verifications_service_to ON verifications(service_id, to_number, id);

CREATE TABLE deliveries (
    id              UUID PRIMARY KEY,
    verification_id UUID NOT NULL REFERENCES verifications(id),
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL,
    provider        TEXT,
    provider_ref    TEXT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL
);
CREATE INDEX deliveries_verification ON deliveries(verification_id);
CREATE INDEX deliveries_queued ON deliveries(lease_until) WHERE status = 'queued';

CREATE TABLE callbacks (
    id              UUID PRIMARY KEY,
    verification_id UUID NOT NULL REFERENCES verifications(id),
    url             TEXT NOT NULL,
    status          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE state = 'pending';
