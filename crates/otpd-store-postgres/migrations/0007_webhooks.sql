-- Service webhooks and their durable delivery outbox (one row per event and webhook,
-- written with the event).
CREATE TABLE webhooks (
    id            UUID PRIMARY KEY,
    service_id    UUID NOT NULL,
    url           TEXT NOT NULL,
    event_types   TEXT NOT NULL,        -- '*' or ',type,type,'
    enabled       BOOLEAN NOT NULL,
    friendly_name TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX webhooks_service ON webhooks(service_id);
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    webhook_id      UUID NOT NULL,
    event_id        UUID NOT NULL,
    verification_id UUID,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_status     BIGINT,
    last_latency_ms BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, event_id);
