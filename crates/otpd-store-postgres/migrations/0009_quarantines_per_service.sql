-- Quarantines belong to one service (the one whose starts tripped the pumping defence) or, with
-- the nil UUID, to every service: only the operator sets those. Existing rows were server-wide
-- and stay so.
ALTER TABLE quarantines ADD COLUMN service_id UUID NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE quarantines ALTER COLUMN service_id DROP DEFAULT;
ALTER TABLE quarantines DROP CONSTRAINT quarantines_pkey;
ALTER TABLE quarantines ADD PRIMARY KEY (prefix, service_id);
