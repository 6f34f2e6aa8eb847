-- Quarantines belong to one service (the one whose starts tripped the pumping defence) or, with
-- the nil id (16 zero bytes), to every service: only the operator sets those. Existing rows were
-- server-wide and stay so.
CREATE TABLE quarantines_scoped (
    prefix     TEXT NOT NULL,
    service_id BLOB NOT NULL,
    reason     TEXT NOT NULL,
    until      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (prefix, service_id)
) WITHOUT ROWID;
INSERT INTO quarantines_scoped (prefix, service_id, reason, until, created_at)
    SELECT prefix, zeroblob(16), reason, until, created_at FROM quarantines;
DROP TABLE quarantines;
ALTER TABLE quarantines_scoped RENAME TO quarantines;
