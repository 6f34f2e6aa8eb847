-- Every state change of verifications and deliveries, written with the change.
CREATE TABLE events (
    id              UUID PRIMARY KEY,       -- UUID v7: time-ordered, the paging cursor
    service_id      UUID NOT NULL,
    verification_id UUID,
    kind            TEXT NOT NULL,
    data            TEXT NOT NULL,          -- JSON
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_service ON events(service_id, id);
CREATE INDEX events_verification ON events(verification_id, id);
