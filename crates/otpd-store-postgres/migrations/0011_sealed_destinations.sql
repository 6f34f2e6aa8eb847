-- Destinations are no longer stored in clear (docs/data-protection.md), as on SQLite
-- (migration 13 there): `to_index` holds the destination's blind index (hex HMAC under the
-- server key), `to_sealed` the destination sealed (XChaCha20-Poly1305), `to_prefix` a phone's
-- first seven characters; safe-list entries keep the blind index and the number sealed. Rows written before
-- are listed in `unsealed` and sealed at connect, in batches (SQL does not know the key).
ALTER TABLE verifications RENAME COLUMN to_number TO to_index;
ALTER TABLE verifications ADD COLUMN to_sealed BYTEA;
ALTER TABLE verifications ADD COLUMN to_prefix TEXT;
ALTER TABLE safe_numbers RENAME COLUMN phone TO phone_index;
ALTER TABLE safe_numbers ADD COLUMN phone_sealed BYTEA;  -- to re-index after a key rotation

CREATE TABLE unsealed (
    kind TEXT NOT NULL,   -- verification | event | safe_number
    id   UUID NOT NULL,
    PRIMARY KEY (kind, id)
);
INSERT INTO unsealed (kind, id) SELECT 'verification', id FROM verifications;
INSERT INTO unsealed (kind, id)
    SELECT 'event', id FROM events WHERE jsonb_typeof(data::jsonb -> 'to') = 'string';
INSERT INTO unsealed (kind, id) SELECT 'safe_number', id FROM safe_numbers;

-- Per-destination counters were keyed by the destination itself; they start again keyed by
-- its blind index.
DELETE FROM rate_events WHERE key LIKE 'fail:%' OR key LIKE 'dest:%' OR key LIKE 'rl:%';

-- The keys this database holds values under: a node whose server secret gives none of them
-- refuses to start before reading anything.
CREATE TABLE data_keys (
    id       BIGINT PRIMARY KEY,
    added_at BIGINT NOT NULL
);
