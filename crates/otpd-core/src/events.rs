//! Events: every state change of a verification and of its deliveries, stored durably in the
//! same transaction as the change, for support teams (`GET /admin/v1/events`) and, later,
//! webhooks. Payloads never hold a code.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::ids::{AccountId, ServiceId, VerificationId};
use crate::store::DeliveryAttempt;
use crate::verification::{Verification, VerificationStatus};

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its id (UUID v7: ordered by time, the paging cursor).
    pub id: Uuid,
    /// The service it belongs to.
    pub service_id: ServiceId,
    /// The verification it is about, if any.
    pub verification_id: Option<VerificationId>,
    /// `verification.started`, `delivery.sent`, … (docs/operations.md lists them).
    pub kind: String,
    /// The details, as JSON.
    pub data: Value,
    /// When it happened.
    pub created_at: Timestamp,
}

/// Which events to read: always one account's, optionally narrower.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    /// The account whose services' events are read.
    pub account: AccountId,
    /// One service.
    pub service: Option<ServiceId>,
    /// One verification.
    pub verification: Option<VerificationId>,
    /// One kind.
    pub kind: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// After this event id (the previous page's last).
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

/// The event kind a verification status change is reported as.
pub fn status_kind(status: VerificationStatus) -> &'static str {
    match status {
        VerificationStatus::Pending => "verification.pending",
        VerificationStatus::Approved => "verification.approved",
        VerificationStatus::Canceled => "verification.canceled",
        VerificationStatus::Expired => "verification.expired",
        VerificationStatus::MaxAttemptsReached => "verification.max_attempts_reached",
    }
}

/// An event about a verification (its state after the change).
pub fn verification_event(kind: &str, verification: &Verification, now: Timestamp) -> Event {
    Event {
        id: Uuid::now_v7(),
        service_id: verification.service_id,
        verification_id: Some(verification.id),
        kind: kind.to_string(),
        data: json!({
            "verificationId": verification.id.to_string(),
            "status": verification.status.as_str(),
            "channel": verification.channel.as_str(),
            "to": verification.to.as_str(),
            "country": verification.country.map(|c| c.as_str().to_string()),
            "attempts": verification.attempts,
            "maxAttempts": verification.max_attempts.get(),
        }),
        created_at: now,
    }
}

/// An event about a delivery attempt (its state after the change).
pub fn delivery_event(service: ServiceId, delivery: &DeliveryAttempt, now: Timestamp) -> Event {
    Event {
        id: Uuid::now_v7(),
        service_id: service,
        verification_id: Some(delivery.verification_id),
        kind: format!("delivery.{}", delivery.status.as_str()),
        data: json!({
            "deliveryId": delivery.id.to_string(),
            "verificationId": delivery.verification_id.to_string(),
            "channel": delivery.channel.as_str(),
            "status": delivery.status.as_str(),
            "provider": delivery.provider,
            "providerMessageId": delivery.provider_ref,
            "errorCode": delivery.error_code,
            "price": delivery.price,
            "segments": delivery.segments,
        }),
        created_at: now,
    }
}
