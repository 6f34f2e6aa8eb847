-- Only attempts a provider has named are looked up by its reference (delivery receipts). A
-- queued attempt has none: it was indexed under NULL at its start and moved at its first send,
-- two index writes per start for a row no receipt can find.
DROP INDEX deliveries_provider_ref;
CREATE INDEX deliveries_provider_ref ON deliveries(provider_ref, provider)
    WHERE provider_ref IS NOT NULL;
