-- Service webhooks and their durable delivery outbox (one row per event and webhook,
-- written with the event).
CREATE TABLE webhooks (
    id            BLOB PRIMARY KEY,
    service_id    BLOB NOT NULL,
    url           TEXT NOT NULL,
    event_types   TEXT NOT NULL,        -- '*' or ',type,type,'
    enabled       INTEGER NOT NULL,
    friendly_name TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX webhooks_service ON webhooks(service_id);
CREATE TABLE webhook_deliveries (
    id              BLOB PRIMARY KEY,
    webhook_id      BLOB NOT NULL,
    event_id        BLOB NOT NULL,
    verification_id BLOB,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_latency_ms INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, event_id);
