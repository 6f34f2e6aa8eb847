-- Every state change of verifications and deliveries, written with the change.
CREATE TABLE events (
    id              BLOB PRIMARY KEY,       -- UUID v7: time-ordered, the paging cursor
    service_id      BLOB NOT NULL,
    verification_id BLOB,
    kind            TEXT NOT NULL,
    data            TEXT NOT NULL,          -- JSON
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_service ON events(service_id, id);
CREATE INDEX events_verification ON events(verification_id, id);
