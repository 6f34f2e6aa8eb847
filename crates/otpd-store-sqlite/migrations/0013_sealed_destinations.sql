-- Destinations are no longer stored in clear (docs/data-protection.md). A verification keeps
-- its destination's blind index (hex HMAC under the server key) in `to_index` for lookups,
-- the destination sealed (XChaCha20-Poly1305) in `to_sealed`, and for phones the first seven
-- characters in `to_prefix` (Attempts Summary's DestinationPrefix). Safe-list entries keep the
-- blind index and the number sealed. Rows written before are listed in `unsealed` and sealed at open, in
-- batches (the server key is not known to SQL).
ALTER TABLE verifications RENAME COLUMN to_number TO to_index;
ALTER TABLE verifications ADD COLUMN to_sealed BLOB;
ALTER TABLE verifications ADD COLUMN to_prefix TEXT;
ALTER TABLE safe_numbers RENAME COLUMN phone TO phone_index;
ALTER TABLE safe_numbers ADD COLUMN phone_sealed BLOB;  -- to re-index after a key rotation

CREATE TABLE unsealed (
    kind TEXT NOT NULL,   -- verification | event | safe_number
    id   BLOB NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
INSERT INTO unsealed (kind, id) SELECT 'verification', id FROM verifications;
INSERT INTO unsealed (kind, id) SELECT 'event', id FROM events WHERE json_type(data, '$.to') = 'text';
INSERT INTO unsealed (kind, id) SELECT 'safe_number', id FROM safe_numbers;

-- Per-destination counters were keyed by the destination itself; they start again keyed by
-- its blind index.
DELETE FROM rate_events WHERE key LIKE 'fail:%' OR key LIKE 'dest:%' OR key LIKE 'rl:%';

-- The keys this database holds values under: a start whose server secret gives none of them
-- is refused before anything is read.
CREATE TABLE data_keys (
    id       INTEGER PRIMARY KEY,
    added_at INTEGER NOT NULL
);
