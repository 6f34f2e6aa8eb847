//! What otpd holds about one destination (a phone number or an email address), for the right
//! of access (export) and the right to erasure (docs/data-protection.md, "Export" and
//! "Erasure"). The store finds the rows by the destination's blind index under every key of
//! its vault, and the refused starts by opening their sealed destination.

use crate::abuse::SafeNumber;
use crate::delivery::DeliveryAttempt;
use crate::events::Event;
use crate::ids::AccountId;
use crate::verification::Verification;

/// One verification sent to the destination, with its delivery attempts (their receipt
/// fields included) and its events, oldest first. The verification carries its code hash
/// and seed as stored; an export renders neither.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationVerification {
    /// The verification as stored.
    pub verification: Verification,
    /// Its delivery attempts, oldest first.
    pub deliveries: Vec<DeliveryAttempt>,
    /// Its events, oldest first (their `to` opened).
    pub events: Vec<Event>,
}

/// A safe-list entry of the destination, with the account whose list holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SafeListed {
    /// The account whose safe list holds the number.
    pub account: AccountId,
    /// The entry (`phone` is the destination asked for: the store keeps only its blind index).
    pub entry: SafeNumber,
}

/// Everything the store holds about one destination, within the accounts asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DestinationRecords {
    /// Its verifications, oldest first.
    pub verifications: Vec<DestinationVerification>,
    /// `verification.blocked` events of starts to it that were refused (no verification).
    pub blocked_starts: Vec<Event>,
    /// The safe-list entries of the number.
    pub safe_list: Vec<SafeListed>,
}

impl DestinationRecords {
    /// Whether nothing is held about the destination.
    pub fn is_empty(&self) -> bool {
        self.verifications.is_empty() && self.blocked_starts.is_empty() && self.safe_list.is_empty()
    }
}

/// What an erasure removed, per kind of row. Rate counters (lockouts, per-destination
/// limits) are kept under the blind index only and are not counted: an erasure must not
/// reset an abuse defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasureCounts {
    /// Verifications deleted.
    pub verifications: u64,
    /// Of those, the ones that were pending and were canceled first.
    pub canceled: u64,
    /// Delivery attempts (the outbox rows, queued ones included) deleted.
    pub deliveries: u64,
    /// Events deleted (the verifications' and the refused starts').
    pub events: u64,
    /// Status-callback outbox rows deleted (pending ones included: never posted).
    pub callbacks: u64,
    /// Webhook-post outbox rows deleted (pending ones included: never posted).
    pub webhook_deliveries: u64,
    /// Safe-list entries deleted.
    pub safe_list: u64,
}

impl ErasureCounts {
    /// The counts as the admin API, the CLI and the audit entry show them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "verifications": self.verifications,
            "canceled": self.canceled,
            "deliveries": self.deliveries,
            "events": self.events,
            "callbacks": self.callbacks,
            "webhookDeliveries": self.webhook_deliveries,
            "safeList": self.safe_list,
        })
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ErasureCounts) {
        self.verifications += other.verifications;
        self.canceled += other.canceled;
        self.deliveries += other.deliveries;
        self.events += other.events;
        self.callbacks += other.callbacks;
        self.webhook_deliveries += other.webhook_deliveries;
        self.safe_list += other.safe_list;
    }
}

/// Whether a refused start's event (`verification.blocked`, no verification) names
/// `to`: its sealed destination opens to it under some key of `vault`.
pub fn names_destination(data: &serde_json::Value, to: &str, vault: &crate::vault::Vault) -> bool {
    use base64::Engine;
    if let Some(index) = data.get("toIndex").and_then(|i| i.as_str()) {
        return vault.blinds(to).iter().any(|blind| blind.to_hex() == index);
    }
    data.get("toSealed")
        .and_then(|sealed| sealed.as_str())
        .and_then(|sealed| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(sealed)
                .ok()
        })
        .and_then(|bytes| vault.open(&bytes).ok())
        .is_some_and(|opened| opened == to)
}
