-- Console operators (the people who sign in to /console/) and their sessions, kept in the
-- database so that every node honours a sign-out or a disable at once.
CREATE TABLE operators (
    id                    UUID PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE,   -- lower-cased by the core
    role                  TEXT NOT NULL,          -- viewer | support | admin
    password_hash         TEXT,                   -- argon2id PHC string; NULL until invited
    totp_sealed           TEXT,                   -- authenticator seed sealed by the vault
    totp_last_step        BIGINT,                 -- last accepted time step (no replay)
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    failed_sign_ins       INTEGER NOT NULL DEFAULT 0,
    locked_until          BIGINT,
    invitation_hash       BYTEA,                  -- SHA-256 of the unused invitation token
    invitation_expires_at BIGINT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX operators_invitation ON operators (invitation_hash)
    WHERE invitation_hash IS NOT NULL;

CREATE TABLE operator_sessions (
    token_hash            BYTEA PRIMARY KEY,      -- SHA-256 of the cookie's token
    operator_id           UUID NOT NULL REFERENCES operators (id),
    second_factor_pending BOOLEAN NOT NULL,
    created_at            BIGINT NOT NULL,
    last_seen_at          BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
