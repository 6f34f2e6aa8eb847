//! Schemas of the admin API's bodies, for the OpenAPI document only: the handlers build the
//! bodies with `json!`, so these structs are never constructed.

use serde_json::Value;

/// An admin API error, in the Twilio shape.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AdminError {
    /// 20003 (authenticate), 20404 (not found), 60200 (invalid parameter), 20500, 20503.
    #[schema(example = 20404)]
    code: u32,
    /// Human-readable text naming the parameter at fault.
    message: String,
    /// `https://www.twilio.com/docs/errors/<code>`.
    more_info: String,
    /// The HTTP status.
    #[schema(example = 404)]
    status: u16,
}

/// A quarantined number prefix (SMS-pumping defence).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct QuarantineObject {
    /// `+` and digits.
    #[schema(example = "+44909")]
    prefix: String,
    /// `service`: it stops starts of `serviceSid` only and the account may lift it;
    /// `server`: set by the operator for every service, read-only here.
    #[schema(example = "service")]
    scope: String,
    /// The `VA…` it applies to; `null` for a server-wide quarantine.
    #[schema(required = true)]
    service_sid: Option<String>,
    /// Why it was quarantined.
    reason: String,
    /// When the quarantine ends (RFC 3339).
    until: String,
    /// When it began (RFC 3339).
    created_at: String,
}

/// The prefixes quarantined now for the caller's services, and server-wide, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct QuarantineList {
    /// The quarantines.
    quarantines: Vec<QuarantineObject>,
}

/// One stored event.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventObject {
    /// `EV` + 32 hex digits.
    id: String,
    /// `verification.started`, `delivery.sent`, … (docs/operations.md lists them).
    #[serde(rename = "type")]
    #[schema(example = "verification.started")]
    kind: String,
    /// `VA…`.
    service_sid: String,
    /// `VE…`, `null` for events of no verification.
    #[schema(required = true)]
    verification_sid: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// The event's fields.
    #[schema(value_type = Object)]
    data: Value,
}

/// A page of events, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventPage {
    /// The events.
    events: Vec<EventObject>,
    /// Pass as `pageToken` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_page_token: Option<String>,
}

/// A webhook subscribed to a service's events.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct WebhookObject {
    /// `WH` + 32 hex digits.
    id: String,
    /// Where events are posted.
    url: String,
    /// Event types posted (`*`: all).
    event_types: Vec<String>,
    /// Whether events are posted.
    enabled: bool,
    /// A label.
    friendly_name: String,
    /// The HMAC-SHA256 key of `X-Otpd-Signature`.
    signing_key: String,
    /// RFC 3339.
    created_at: String,
}

/// A service's webhooks.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookList {
    /// The webhooks.
    webhooks: Vec<WebhookObject>,
}

/// The `POST …/webhooks` body.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct NewWebhookRequest {
    /// Absolute http(s) URL.
    #[schema(example = "https://app.example.com/otpd-events")]
    url: String,
    /// Event types to post (default `["*"]`: all).
    event_types: Option<Vec<String>>,
    /// At most 64 characters (default `webhook`).
    #[schema(max_length = 64)]
    friendly_name: Option<String>,
    /// Default `true`.
    enabled: Option<bool>,
}

/// One event's posts to one webhook.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct WebhookDelivery {
    /// `EV…`.
    event_id: String,
    /// The event's type.
    event_type: String,
    /// `pending`, `delivered` or `failed`.
    state: String,
    /// Posts tried.
    attempts: u32,
    /// The last HTTP status received.
    #[schema(required = true)]
    last_status: Option<u16>,
    /// The last post's latency.
    #[schema(required = true)]
    last_latency_ms: Option<u64>,
    /// The last failure.
    #[schema(required = true)]
    last_error: Option<String>,
    /// When the next retry is due (RFC 3339).
    #[schema(required = true)]
    next_attempt_at: Option<String>,
    /// RFC 3339.
    updated_at: String,
}

/// A webhook's delivery log, newest first (at most 200).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookDeliveryList {
    /// The log.
    deliveries: Vec<WebhookDelivery>,
}

/// Counts by transmission summary.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct ReportShares {
    /// Share that ended FAILED (0–1).
    FAILED: f64,
    /// Share that ended SENT.
    SENT: f64,
    /// Share that ended SUCCESS.
    SUCCESS: f64,
}

/// Seconds from start to approval.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SecondsToApprove {
    /// Median; `null` with no approval.
    #[schema(required = true)]
    median: Option<f64>,
    /// 95th percentile; `null` with no approval.
    #[schema(required = true)]
    p95: Option<f64>,
}

/// One group of the report.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, non_snake_case)]
pub struct ReportGroup {
    /// The channel, country, provider or `VA…` (`none` when unknown).
    group: String,
    /// Verifications in the group.
    verifications: u64,
    /// Ended with every send refused.
    #[serde(rename = "FAILED")]
    FAILED: u64,
    /// A message left; never verified.
    #[serde(rename = "SENT")]
    SENT: u64,
    /// Approved with a correct code.
    #[serde(rename = "SUCCESS")]
    SUCCESS: u64,
    /// The three counts as shares.
    shares: ReportShares,
    /// Time to approval.
    seconds_to_approve: SecondsToApprove,
}

/// The lifecycle report.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct Report {
    /// `channel`, `country`, `provider` or `service`.
    group_by: String,
    /// One row per group.
    groups: Vec<ReportGroup>,
}

/// A service's protection settings.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct Protection {
    /// ISO countries sends are limited to (empty: all).
    allowed_countries: Vec<String>,
    /// ISO countries never sent to.
    blocked_countries: Vec<String>,
    /// `+digits` prefixes never sent to.
    blocked_prefixes: Vec<String>,
    /// E.164 numbers exempt from the protections.
    safe_list: Vec<String>,
    /// Whether premium-rate and shared-cost numbers are sent to.
    allow_costly_numbers: bool,
    /// Daily spending cap; `null`: none.
    #[schema(required = true)]
    daily_budget: Option<f64>,
}

/// The `PUT …/protection` body: the fields to change (any other field answers 400).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ProtectionUpdate {
    /// ISO 3166-1 alpha-2 codes.
    allowed_countries: Option<Vec<String>>,
    /// ISO 3166-1 alpha-2 codes.
    blocked_countries: Option<Vec<String>>,
    /// `+` followed by digits.
    blocked_prefixes: Option<Vec<String>>,
    /// Valid E.164 numbers.
    safe_list: Option<Vec<String>>,
    /// `true` or `false`.
    allow_costly_numbers: Option<bool>,
    /// A non-negative number, or `null` to remove the cap.
    daily_budget: Option<f64>,
}

/// A new auth token, shown once.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RotatedToken {
    /// `AC…`.
    account_sid: String,
    /// The new auth token (64 hex digits); the old one no longer authenticates.
    auth_token: String,
}

/// A Twilio-style API key, without its secret.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ApiKeyObject {
    /// `SK` + 32 hex digits.
    sid: String,
    /// Its name.
    friendly_name: String,
    /// RFC 3339.
    created_at: String,
}

/// The account's API keys, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyList {
    /// The keys.
    keys: Vec<ApiKeyObject>,
}

/// Who made an audited change.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AuditActor {
    /// `account` (its SID and auth token), `api_key` (an `SK…` key acting for it), `cli`
    /// (the `otpd` command line), `application`, `operator`.
    #[schema(example = "account")]
    kind: String,
    /// `AC…`, `SK…`, the OS user of the command line, …
    id: String,
}

/// One audit log entry.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AuditEntryObject {
    /// The entry's id (a UUID), the paging cursor.
    id: String,
    /// Its position in the chain, from 1.
    position: i64,
    /// When (RFC 3339).
    at: String,
    /// Who.
    actor: AuditActor,
    /// The client address; `null` for the command line.
    #[schema(required = true)]
    source: Option<String>,
    /// `service.update`, `api_key.revoke`, … (docs/data-protection.md lists them).
    #[schema(example = "service.update")]
    action: String,
    /// The resource changed (`VA…`, `RK…`, `SK…`, a prefix, …).
    target: String,
    /// `before` and `after` of the fields that changed; never a secret.
    summary: Value,
    /// SHA-256 of the entry (hex).
    hash: String,
    /// The previous entry's hash (hex).
    prev_hash: String,
}

/// A page of the account's audit log, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AuditPage {
    /// The entries.
    entries: Vec<AuditEntryObject>,
    /// Pass as `pageToken` for the next (older) page; `null` on the last page.
    #[schema(required = true)]
    next_page_token: Option<String>,
}

/// Everything otpd holds about one destination in the account's services (the right of
/// access). Never a code, code hash or message text.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DestinationExport {
    /// The destination, as stored (E.164, or the address with its domain lower-cased).
    #[schema(example = "+14155552671")]
    destination: String,
    /// Its verifications, oldest first: `sid` (`VE…`), `otpId`, `serviceSid`, `channel`,
    /// `status`, `country`, `locale`, `amount`, `payee`, `attempts`, `createdAt`,
    /// `updatedAt`, `expiresAt`, `deliveries` (`channel`, `provider`, `status`,
    /// `providerMessageId`, `errorCode`, `error`, `price`, `priceUnit`, `segments`,
    /// `createdAt`, `updatedAt`) and `events` (`id`, `type`, `serviceSid`, `createdAt`, `data`).
    verifications: Vec<Value>,
    /// The `verification.blocked` events of refused starts to it, as `events` above.
    blocked_starts: Vec<Value>,
    /// Its safe-list entry: `sid` (`GN…`), `accountSid`, `phoneNumber`, `createdAt`.
    safe_list: Vec<Value>,
}

/// What an erasure removed, per kind of row.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ErasureObject {
    /// Verifications deleted.
    verifications: u64,
    /// Of those, the pending ones canceled first.
    canceled: u64,
    /// Delivery attempts deleted (queued ones too: never sent).
    deliveries: u64,
    /// Events deleted, the refused starts' included.
    events: u64,
    /// Status callbacks deleted (pending ones too: never posted).
    callbacks: u64,
    /// Webhook posts deleted (pending ones too: never posted).
    webhook_deliveries: u64,
    /// Safe-list entries deleted.
    safe_list: u64,
}
