//! Events: every state change of a verification and of its deliveries, stored durably in the
//! same transaction as the change, for support teams (`GET /admin/v1/events`) and, later,
//! webhooks. Payloads never hold a code.

use std::fmt::Display;

use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::delivery::DeliveryAttempt;
use crate::ids::{AccountId, ServiceId, VerificationId};
use crate::vault::Vault;
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

/// Kinds rare enough to have an index of their own in both stores (a partial index, so the
/// events of every verification do not pay for it): refused and flagged starts, quarantines
/// and approval alerts,
/// which the console's fraud page reads without walking every event. A store names the kind
/// in its query text when it is one of these, as the databases match a partial index only
/// against literal values.
pub const RARE_KINDS: &[&str] = &[
    "verification.blocked",
    "verification.flagged",
    "prefix.quarantined",
    "alert.approval_rate_dropped",
    "alert.approval_rate_recovered",
];

/// `kind` as it appears in [`RARE_KINDS`] (a constant, safe to write into SQL), if it does.
pub fn rare_kind(kind: &str) -> Option<&'static str> {
    RARE_KINDS.iter().copied().find(|rare| *rare == kind)
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

/// Serialises an id (or anything printable) as a JSON string without an owned copy.
fn as_text<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The details of a verification event. Serialised straight to text by the stores (a start
/// writes two events; building a `Value` first cost more than inserting the row).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationEventData<'a> {
    #[serde(serialize_with = "as_text")]
    verification_id: VerificationId,
    status: &'a str,
    channel: &'a str,
    /// The destination sealed (base64), never in clear at rest; readers get `to` back
    /// through [`reveal_destination`].
    to_sealed: String,
    country: Option<&'a str>,
    attempts: u32,
    max_attempts: u32,
}

impl<'a> VerificationEventData<'a> {
    /// The verification's state after the change, its destination sealed by `vault`.
    pub fn of(verification: &'a Verification, vault: &Vault) -> VerificationEventData<'a> {
        VerificationEventData {
            verification_id: verification.id,
            status: verification.status.as_str(),
            channel: verification.channel.as_str(),
            to_sealed: seal_text(vault, verification.to.as_str()),
            country: verification.country.as_ref().map(|c| c.as_str()),
            attempts: verification.attempts,
            max_attempts: verification.max_attempts.get(),
        }
    }
}

/// The details of a delivery event (see [`VerificationEventData`] for why typed). PostgreSQL's
/// `update_delivery` builds the same object in SQL (`json_build_object`), so a field added
/// here goes there too; the store suite compares the two.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEventData<'a> {
    #[serde(serialize_with = "as_text")]
    delivery_id: crate::ids::DeliveryId,
    #[serde(serialize_with = "as_text")]
    verification_id: VerificationId,
    channel: &'a str,
    status: &'a str,
    provider: Option<&'a str>,
    provider_message_id: Option<&'a str>,
    error_code: Option<&'a str>,
    price: Option<f64>,
    segments: Option<u32>,
}

impl<'a> DeliveryEventData<'a> {
    /// The attempt's state after the change.
    pub fn of(delivery: &'a DeliveryAttempt) -> DeliveryEventData<'a> {
        DeliveryEventData {
            delivery_id: delivery.id,
            verification_id: delivery.verification_id,
            channel: delivery.channel.as_str(),
            status: delivery.status.as_str(),
            provider: delivery.provider.as_deref(),
            provider_message_id: delivery.provider_ref.as_deref(),
            error_code: delivery.error_code.as_deref(),
            price: delivery.price,
            segments: delivery.segments,
        }
    }
}

/// The base64 text of `plain` sealed by `vault`, as event details carry it.
pub fn seal_text(vault: &Vault, plain: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(vault.seal(plain))
}

/// The first characters every `toSealed` sealed under the vault's current key starts with
/// (base64 of the format byte and key id, less the key id's last 4 bits): what finds event
/// details still under a previous key without opening each.
pub fn sealed_text_prefix(vault: &Vault) -> String {
    seal_text(vault, "").chars().take(6).collect()
}

/// Event details as stored: a clear `to` (a refused start's event) replaced by `toSealed`
/// and `toIndex`, the destination's blind index under the current key, which finds a
/// number's refused starts without opening every one (the console's timeline, export,
/// erasure).
pub fn seal_destination(data: &mut Value, vault: &Vault) {
    if let Some(Value::String(to)) = data.as_object_mut().and_then(|o| o.remove("to")) {
        data["toSealed"] = Value::String(seal_text(vault, &to));
        data["toIndex"] = Value::String(vault.blind(&to).to_hex());
    }
}

/// The `LIKE` patterns that find event details indexed under one of `to`'s blind indexes
/// (one per key of the vault).
pub fn index_patterns(vault: &Vault, to: &str) -> Vec<String> {
    vault
        .blinds(to)
        .iter()
        .map(|blind| format!("%\"toIndex\":\"{}\"%", blind.to_hex()))
        .collect()
}

/// Event details as readers see them: `toSealed` opened back into `to` (`null` when the key
/// it was sealed under is gone, e.g. after an erasure or a finished key rotation).
pub fn reveal_destination(data: &mut Value, vault: &Vault) {
    use base64::Engine;
    let Some(sealed) = data.as_object_mut().and_then(|o| {
        o.remove("toIndex");
        o.remove("toSealed")
    }) else {
        return;
    };
    let to = sealed.as_str().and_then(|sealed| {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .ok()?;
        vault.open(&bytes).ok()
    });
    data["to"] = to.map_or(Value::Null, Value::String);
}

/// JSON text of event details (these types always serialise).
pub fn to_json_text(data: &impl Serialize) -> String {
    serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string())
}

/// The kind of a delivery event: `delivery.` and the attempt's status.
pub fn delivery_kind(delivery: &DeliveryAttempt) -> String {
    format!("delivery.{}", delivery.status.as_str())
}

/// An event about a verification (its state after the change).
pub fn verification_event(
    kind: &str,
    verification: &Verification,
    now: Timestamp,
    vault: &Vault,
) -> Event {
    Event {
        id: Uuid::now_v7(),
        service_id: verification.service_id,
        verification_id: Some(verification.id),
        kind: kind.to_string(),
        data: serde_json::to_value(VerificationEventData::of(verification, vault))
            .unwrap_or_default(),
        created_at: now,
    }
}

/// An event about a delivery attempt (its state after the change).
pub fn delivery_event(service: ServiceId, delivery: &DeliveryAttempt, now: Timestamp) -> Event {
    Event {
        id: Uuid::now_v7(),
        service_id: service,
        verification_id: Some(delivery.verification_id),
        kind: delivery_kind(delivery),
        data: serde_json::to_value(DeliveryEventData::of(delivery)).unwrap_or_default(),
        created_at: now,
    }
}

/// The event a provider's failure leaves when the worker moves on to the next provider of
/// the route (or to a retry): without it, a failover that ends well would leave no trace of
/// the provider that failed, and support could not answer "why did it take so long?".
pub fn provider_failed_event(
    job: &crate::verifier::DeliveryJob,
    provider: &str,
    error_code: &str,
    error: &str,
    now: Timestamp,
) -> Event {
    Event {
        id: Uuid::now_v7(),
        service_id: job.service_id,
        verification_id: Some(job.verification_id),
        kind: "delivery.provider_failed".to_string(),
        data: serde_json::json!({
            "deliveryId": job.delivery_id.to_string(),
            "verificationId": job.verification_id.to_string(),
            "channel": job.channel.as_str(),
            "provider": provider,
            "errorCode": error_code,
            "error": error,
        }),
        created_at: now,
    }
}

/// A service webhook: events of the listed types are pushed to `url`, signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Its id (`WH`/`YW` SIDs).
    pub id: Uuid,
    /// Its service.
    pub service_id: ServiceId,
    /// Where events are posted.
    pub url: String,
    /// Event types it receives; `*` for all.
    pub event_types: Vec<String>,
    /// Disabled webhooks receive nothing (events of that time are not queued for it).
    pub enabled: bool,
    /// A name for humans.
    pub friendly_name: String,
    /// When created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Webhook {
    /// The stored form of `event_types`: `*`, or `,a,b,` so one `LIKE` matches a type.
    pub fn stored_types(&self) -> String {
        if self.event_types.iter().any(|t| t == "*") || self.event_types.is_empty() {
            "*".to_string()
        } else {
            format!(",{},", self.event_types.join(","))
        }
    }

    /// Parses [`stored_types`](Self::stored_types).
    pub fn parse_types(stored: &str) -> Vec<String> {
        stored
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// One event on its way to one webhook (a claimed outbox row).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookJob {
    /// The outbox row.
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// Where to post.
    pub url: String,
    /// What to post.
    pub event: Event,
    /// Posts tried so far.
    pub attempts: u32,
    /// When the row was written (retries stop a while after).
    pub created_at: Timestamp,
}

/// One row of a webhook's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookLogEntry {
    /// The event posted.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub state: String,
    /// Posts tried.
    pub attempts: u32,
    /// The last answer's HTTP status, if any.
    pub last_status: Option<u16>,
    /// The last post's duration.
    pub last_latency_ms: Option<u32>,
    /// Why the last post failed.
    pub last_error: Option<String>,
    /// When the next try is due (pending rows).
    pub next_attempt_at: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What one post of a webhook job concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOutcome {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// How long the post took.
    pub latency_ms: u32,
    /// Why it failed; `None` for a 2xx.
    pub error: Option<String>,
    /// When to try again; `None` when delivered or given up.
    pub retry_at: Option<Timestamp>,
}

/// Which delivery attempts to read or summarise (Twilio's Verification Attempts): always one
/// account's, optionally narrower.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttemptFilter {
    pub account: Option<AccountId>,
    /// One service.
    pub service: Option<ServiceId>,
    /// One verification.
    pub verification: Option<VerificationId>,
    /// One destination.
    pub to: Option<String>,
    /// One destination country (ISO).
    pub country: Option<String>,
    /// Destinations starting with this prefix (`+4474`).
    pub prefix: Option<String>,
    /// One channel (`sms`, …).
    pub channel: Option<String>,
    /// Only attempts whose verification was approved (`Some(true)`) or not.
    pub converted: Option<bool>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Newest first, `after` then meaning "older than" (the console's log).
    pub newest_first: bool,
    /// After this attempt id (paging).
    pub after: Option<Uuid>,
    /// At most this many (lists).
    pub limit: u32,
}

/// Totals over attempts (Twilio's Attempts Summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptSummary {
    pub total: u64,
    /// Attempts whose verification was approved.
    pub converted: u64,
}

#[cfg(test)]
mod destination_tests {
    use super::*;
    use crate::code::ServerSecret;

    #[test]
    fn event_details_hold_the_destination_sealed_and_readers_get_it_back() {
        let vault = Vault::new(&ServerSecret::from_bytes([3; 32]), &[]);
        let mut data = serde_json::json!({"reason": "quarantine", "to": "+14155552671"});
        seal_destination(&mut data, &vault);
        assert!(!data.to_string().contains("4155552671"));
        assert!(data.get("to").is_none());
        reveal_destination(&mut data, &vault);
        assert_eq!(data["to"], "+14155552671");
        assert!(data.get("toSealed").is_none());
        assert!(
            data.get("toIndex").is_none(),
            "readers never see the blind index"
        );
    }

    #[test]
    fn a_refused_start_is_found_by_its_blind_index_and_older_ones_by_opening_them() {
        use crate::destinations::names_destination;
        let vault = Vault::new(&ServerSecret::from_bytes([3; 32]), &[]);
        let mut data = serde_json::json!({"to": "+14155552671"});
        seal_destination(&mut data, &vault);
        let stored = data.to_string();
        assert!(
            index_patterns(&vault, "+14155552671")
                .iter()
                .any(|p| stored.contains(p.trim_matches('%'))),
            "the store's LIKE pattern matches the stored details"
        );
        assert!(names_destination(&data, "+14155552671", &vault));
        assert!(!names_destination(&data, "+14155552672", &vault));
        if let Some(fields) = data.as_object_mut() {
            fields.remove("toIndex");
        }
        assert!(
            names_destination(&data, "+14155552671", &vault),
            "details written before the index are opened"
        );
        let rotated = Vault::new(
            &ServerSecret::from_bytes([4; 32]),
            &[ServerSecret::from_bytes([3; 32])],
        );
        let mut old = serde_json::json!({"to": "+14155552671"});
        seal_destination(&mut old, &vault);
        assert!(
            names_destination(&old, "+14155552671", &rotated),
            "an index under a previous key still matches"
        );
    }

    #[test]
    fn a_destination_sealed_under_a_lost_key_reads_as_null() {
        let old = Vault::new(&ServerSecret::from_bytes([3; 32]), &[]);
        let new = Vault::new(&ServerSecret::from_bytes([4; 32]), &[]);
        let mut data = serde_json::json!({"to": "+14155552671"});
        seal_destination(&mut data, &old);
        reveal_destination(&mut data, &new);
        assert_eq!(data["to"], Value::Null);
    }
}
