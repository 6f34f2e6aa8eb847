-- Per-attempt transmission details reported by providers, and the fallback timer.
ALTER TABLE deliveries ADD COLUMN error_code TEXT;
ALTER TABLE deliveries ADD COLUMN segments INTEGER;
ALTER TABLE deliveries ADD COLUMN price DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN price_unit TEXT;
-- When set, the next fallback channel is tried at this time unless a receipt says delivered.
ALTER TABLE deliveries ADD COLUMN fallback_at BIGINT;
CREATE INDEX deliveries_provider_ref ON deliveries(provider_ref, provider);
CREATE INDEX deliveries_fallback_due ON deliveries(fallback_at) WHERE fallback_at IS NOT NULL;
-- The language the verification's messages use (voice, WhatsApp templates, email subjects).
ALTER TABLE verifications ADD COLUMN locale TEXT;
