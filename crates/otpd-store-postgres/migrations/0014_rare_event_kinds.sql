-- Refused and flagged starts, quarantines and approval alerts, found without walking every
-- event (the console's fraud page). Partial, so the events of ordinary verifications are not
-- indexed twice; the kinds are otpd_core::events::RARE_KINDS.
CREATE INDEX events_rare_kinds ON events(kind, id)
    WHERE kind IN ('verification.blocked', 'verification.flagged', 'prefix.quarantined',
                   'alert.approval_rate_dropped', 'alert.approval_rate_recovered');
