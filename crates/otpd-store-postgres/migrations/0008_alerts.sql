-- Open success-rate alerts (one row per alert key while it is open).
CREATE TABLE alerts (
    key       TEXT PRIMARY KEY,
    opened_at BIGINT NOT NULL
);
