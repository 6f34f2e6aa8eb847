-- Prefixes quarantined by the SMS-pumping defence (until `until`, then forgotten).
CREATE TABLE quarantines (
    prefix     TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    until      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Money spent per key (a service and a UTC day), capped by the service's daily budget.
CREATE TABLE spend (
    key   TEXT PRIMARY KEY,
    total DOUBLE PRECISION NOT NULL
);
