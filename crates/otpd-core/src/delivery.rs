//! Delivery attempts of a verification's code: their status, what the worker and the receipts
//! record about them, and the summary support teams read. Kept apart from the verification's
//! own status (docs/design.md).

use crate::channel::Channel;
use crate::clock::Timestamp;
use crate::ids::{DeliveryId, VerificationId};
use crate::verification::VerificationStatus;

/// The status of one delivery attempt, kept apart from the verification's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Written, not yet handed to a provider.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// The handset received it (provider receipt).
    Delivered,
    /// The provider could not deliver it (receipt).
    Undelivered,
    /// Sending failed permanently.
    Failed,
}

impl DeliveryStatus {
    /// The storage and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "undelivered" => DeliveryStatus::Undelivered,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// One delivery attempt of a verification's code.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub id: DeliveryId,
    /// The verification it delivers.
    pub verification_id: VerificationId,
    /// The channel used.
    pub channel: Channel,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Which provider took it, once one did.
    pub provider: Option<String>,
    /// The provider's message id, once known.
    pub provider_ref: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The provider's error code, if it reported one.
    pub error_code: Option<String>,
    /// SMS parts billed, when the provider said.
    pub segments: Option<u32>,
    /// What the provider charged, when it said.
    pub price: Option<f64>,
    /// Currency of `price`.
    pub price_unit: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl DeliveryAttempt {
    /// A fresh `queued` attempt of `verification` on `channel`.
    pub fn queued(verification: VerificationId, channel: Channel, now: Timestamp) -> Self {
        DeliveryAttempt {
            id: DeliveryId::generate(),
            verification_id: verification,
            channel,
            status: DeliveryStatus::Queued,
            provider: None,
            provider_ref: None,
            error: None,
            error_code: None,
            segments: None,
            price: None,
            price_unit: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl DeliveryAttempt {
    /// The attempt after `update` was recorded at `now`, exactly as
    /// [`update_delivery`](crate::store::DeliveryStore::update_delivery) stores it (so a
    /// start can answer without reading it back).
    pub fn updated(mut self, update: &DeliveryUpdate, now: Timestamp) -> Self {
        self.status = update.status;
        self.provider = update.provider.clone().or(self.provider);
        self.provider_ref = update.provider_ref.clone().or(self.provider_ref);
        self.error = update.error.clone();
        self.error_code = update.error_code.clone();
        self.segments = update.segments.or(self.segments);
        self.price = update.price.or(self.price);
        self.price_unit = update.price_unit.clone().or(self.price_unit);
        self.updated_at = now;
        self
    }
}

/// What the delivery worker learned about one attempt (a send's outcome, or a retry
/// scheduled). Fields left `None` keep their stored value, except `error` and `error_code`,
/// which describe this outcome only.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    /// The attempt's new status.
    pub status: DeliveryStatus,
    /// The provider that took (or last refused) it.
    pub provider: Option<String>,
    /// The provider's message id.
    pub provider_ref: Option<String>,
    /// Why it failed (or why the last try failed, for a retry).
    pub error: Option<String>,
    /// The provider's error code.
    pub error_code: Option<String>,
    /// SMS parts billed.
    pub segments: Option<u32>,
    /// Price charged.
    pub price: Option<f64>,
    /// Currency of `price`.
    pub price_unit: Option<String>,
    /// For a `queued` attempt waiting to retry: this node keeps it until then.
    pub lease_until: Option<Timestamp>,
    /// For a `sent` attempt with a fallback channel left: when to fall back if no receipt
    /// has said `delivered` by then.
    pub fallback_at: Option<Timestamp>,
}

impl DeliveryUpdate {
    /// An update to `status` that changes nothing else.
    pub fn status(status: DeliveryStatus) -> Self {
        DeliveryUpdate {
            status,
            provider: None,
            provider_ref: None,
            error: None,
            error_code: None,
            segments: None,
            price: None,
            price_unit: None,
            lease_until: None,
            fallback_at: None,
        }
    }
}

/// A delivery receipt as the store applies it: matched by provider and message id.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptUpdate {
    /// The configured provider name the receipt came to.
    pub provider: String,
    /// The provider's message id.
    pub provider_ref: String,
    /// Reported status.
    pub status: DeliveryStatus,
    /// Reported error code.
    pub error_code: Option<String>,
    /// Reported final price.
    pub price: Option<f64>,
    /// Reported parts.
    pub segments: Option<u32>,
}

/// The one-word answer support teams read about a verification's messages (the
/// Symantec VIP summary). Derived from the verification and its attempts, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmissionSummary {
    /// Every attempt was refused by the providers: no message left the platform.
    Failed,
    /// A message was accepted (or is still being tried) and the code has not been verified:
    /// in flight, delivered but unused, or answered with a wrong code.
    Sent,
    /// The code was verified.
    Success,
}

impl TransmissionSummary {
    /// Derives the summary.
    pub fn of(status: VerificationStatus, attempts: &[DeliveryAttempt]) -> Self {
        if status == VerificationStatus::Approved {
            TransmissionSummary::Success
        } else if !attempts.is_empty()
            && attempts.iter().all(|a| a.status == DeliveryStatus::Failed)
        {
            TransmissionSummary::Failed
        } else {
            TransmissionSummary::Sent
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransmissionSummary::Failed => "FAILED",
            TransmissionSummary::Sent => "SENT",
            TransmissionSummary::Success => "SUCCESS",
        }
    }
}

impl DeliveryStatus {
    /// Order of progress: receipts arrive late, twice or out of order, and a status never
    /// moves back (queued < sent < delivered / undelivered / failed, which are final).
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed => 2,
        }
    }
}

/// How long a freshly written delivery belongs to the node that wrote it before another node
/// may take it over (the writer sends it at once; the lease only matters if that node dies).
pub const DELIVERY_LEASE_SECONDS: i64 = 60;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Timestamp, VerificationId, VerificationStatus};

    fn attempt(status: DeliveryStatus) -> DeliveryAttempt {
        DeliveryAttempt {
            status,
            ..DeliveryAttempt::queued(VerificationId::generate(), Channel::Sms, Timestamp(0))
        }
    }

    #[test]
    fn the_summary_is_derived_from_status_and_attempts() {
        use DeliveryStatus::*;
        let of = TransmissionSummary::of;
        let failed = [attempt(Failed), attempt(Failed)];
        assert_eq!(
            of(VerificationStatus::Pending, &failed),
            TransmissionSummary::Failed
        );
        let one_left = [attempt(Failed), attempt(Undelivered)];
        assert_eq!(
            of(VerificationStatus::Pending, &one_left),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(VerificationStatus::Pending, &[attempt(Queued)]),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(
                VerificationStatus::MaxAttemptsReached,
                &[attempt(Delivered)]
            ),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(VerificationStatus::Approved, &[attempt(Sent)]),
            TransmissionSummary::Success
        );
    }
}
