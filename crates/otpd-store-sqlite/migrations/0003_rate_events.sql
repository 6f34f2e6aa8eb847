-- Sliding-window rate limits: one row per counted event, pruned per key as it is counted.
CREATE TABLE rate_events (
    key TEXT NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events(key, at);
