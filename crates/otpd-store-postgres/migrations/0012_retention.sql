-- Retention (docs/data-protection.md, "Retention"): daily rollups that keep the Attempts
-- Summary and the admin report exact once a day's rows are purged, the mark of the days
-- rolled up (its row is locked by the node rolling a day up), and the indexes the rollups
-- and purges read by.
CREATE TABLE retention_state (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_up_before BIGINT NOT NULL        -- attempts created before this are in the rollups
);
INSERT INTO retention_state (id, rolled_up_before) VALUES (1, 0);

-- Attempts per UTC day (of the send), service, send channel, country and clear prefix.
CREATE TABLE attempt_rollups (
    day        BIGINT NOT NULL,             -- the day's start, milliseconds
    service_id UUID NOT NULL,
    channel    TEXT NOT NULL,
    country    TEXT,
    to_prefix  TEXT,
    attempts   BIGINT NOT NULL,
    converted  BIGINT NOT NULL              -- attempts whose verification was approved
);
CREATE INDEX attempt_rollups_day ON attempt_rollups(day);

-- Verifications per UTC day of their first send, service, channel, country, last provider
-- and whole seconds to approval (NULL for the FAILED and SENT counts).
CREATE TABLE report_rollups (
    day             BIGINT NOT NULL,
    service_id      UUID NOT NULL,
    channel         TEXT NOT NULL,
    country         TEXT,
    provider        TEXT,
    approve_seconds BIGINT,
    failed          BIGINT NOT NULL,
    sent            BIGINT NOT NULL,
    success         BIGINT NOT NULL
);
CREATE INDEX report_rollups_day ON report_rollups(day);

CREATE INDEX deliveries_created ON deliveries(created_at);
CREATE INDEX callbacks_verification ON callbacks(verification_id);
CREATE INDEX rate_events_at ON rate_events(at);
