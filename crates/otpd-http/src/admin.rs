//! The admin API (`/admin/v1`): JSON, HTTP Basic with an account's SID and auth token (the
//! Twilio credentials), errors in the Twilio shape. It lists and lifts SMS-pumping
//! quarantines and reads and changes a service's protection settings (geo permissions,
//! block and safe lists, costly numbers, daily budget). Credential routes (auth token, API
//! keys) are in `admin_keys`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use otpd_core::store::{Quarantine, ServiceRecord};
use otpd_core::{AccountId, Clock, CountryIso, E164Phone, ServiceId, Store};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::native::error::ErrorBody;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::form::webhook_url;
use crate::twilio::{account, callers_service, owned_service};

// Schemas of the admin API's bodies (documentation: the handlers build them with `json!`).

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
    /// Verified.
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

/// The admin routes.
pub fn router<S: Store + Clone, C: Clock + Clone>() -> Router<AppState<S, C>> {
    Router::new()
        .route("/quarantines", get(quarantines::<S, C>))
        .route("/quarantines/{prefix}", delete(lift::<S, C>))
        .route("/events", get(events::<S, C>))
        .route("/report", get(report::<S, C>))
        .route(
            "/services/{sid}/webhooks",
            get(list_webhooks::<S, C>).post(create_webhook::<S, C>),
        )
        .route(
            "/services/{sid}/webhooks/{id}",
            delete(delete_webhook::<S, C>),
        )
        .route(
            "/services/{sid}/webhooks/{id}/deliveries",
            get(webhook_deliveries::<S, C>),
        )
        .route(
            "/services/{sid}/protection",
            get(protection::<S, C>).put(update_protection::<S, C>),
        )
        .merge(crate::admin_keys::router::<S, C>())
}

fn quarantine_json(q: &Quarantine) -> Value {
    json!({
        "prefix": q.prefix,
        "scope": if q.service.is_some() { "service" } else { "server" },
        "serviceSid": q.service.map(|id| format!("VA{}", id.simple())),
        "reason": q.reason,
        "until": crate::twilio::wire::date(q.until),
        "createdAt": crate::twilio::wire::date(q.created_at),
    })
}

/// The quarantines active now that concern `account`: its services' own and the server-wide
/// ones (with `owned_only`, its services' own only). Quarantines are few, and each service is
/// read once (from the node cache).
async fn accounts_quarantines<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    account: AccountId,
    owned_only: bool,
) -> Result<Vec<Quarantine>, TwilioError> {
    let store = state.verifier.store();
    let now = state.verifier.clock().now();
    let all = store.quarantines(now).await.map_err(error::internal)?;
    let mut owners: std::collections::HashMap<ServiceId, bool> = Default::default();
    let mut mine = Vec::new();
    for quarantine in all {
        let Some(service) = quarantine.service else {
            if !owned_only {
                mine.push(quarantine);
            }
            continue;
        };
        let owned = match owners.get(&service) {
            Some(owned) => *owned,
            None => {
                let owned = store
                    .service(service)
                    .await
                    .map_err(error::internal)?
                    .is_some_and(|record| record.account_id == account);
                owners.insert(service, owned);
                owned
            }
        };
        if owned {
            mine.push(quarantine);
        }
    }
    Ok(mine)
}

/// `GET /admin/v1/quarantines`: the prefixes quarantined now for the caller's services, and
/// the server-wide ones (read-only), newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/quarantines",
    tag = "admin",
    summary = "List the quarantined number prefixes of the account's services",
    description = "Each item has `scope`: `service` (the account's own service, `serviceSid`; it may lift it) or `server` (set by the operator for every service; only the operator lifts it). Other accounts' quarantines are never listed.",
    security(("accountBasic" = [])),
    responses(
        (status = 200, description = "The quarantines, newest first.", body = QuarantineList),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn quarantines<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
) -> Result<Response, TwilioError> {
    let account = account(&state, &headers).await?;
    let list = accounts_quarantines(&state, account, false).await?;
    let items: Vec<Value> = list.iter().map(quarantine_json).collect();
    Ok(Json(json!({ "quarantines": items })).into_response())
}

/// `DELETE /admin/v1/quarantines/{prefix}?serviceSid=VA…`: lifts the prefix's quarantine of
/// one of the caller's services (`serviceSid`), or of all of them (204); 404 when the caller
/// has none (another account's and server-wide quarantines are never lifted here).
#[utoipa::path(
    delete,
    path = "/admin/v1/quarantines/{prefix}",
    tag = "admin",
    summary = "Lift a quarantine of the account's services",
    security(("accountBasic" = [])),
    params(
        ("prefix" = String, Path, description = "The prefix, `+` and digits (URL-encode the `+` as `%2B`)."),
        ("serviceSid" = Option<String>, Query, description = "`VA…`: lift the quarantine of this service only; without it, of every service of the account."),
    ),
    responses(
        (status = 204, description = "Lifted."),
        (status = 400, description = "60200: `serviceSid` is not a `VA…` SID.", body = AdminError),
        (status = 404, description = "20404: none of the account's services has this prefix quarantined (another account's or a server-wide quarantine is not the account's to lift).", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn lift<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(prefix): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    let account = account(&state, &headers).await?;
    let path = format!("/admin/v1/quarantines/{prefix}");
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let services: Vec<ServiceId> = match params.get("serviceSid") {
        Some(sid) => {
            sid_uuid(sid, "VA").ok_or_else(|| error::invalid("serviceSid"))?;
            vec![owned_service(&state, account, sid, &path).await?.id]
        }
        None => accounts_quarantines(&state, account, true)
            .await?
            .into_iter()
            .filter(|q| q.prefix == prefix)
            .filter_map(|q| q.service)
            .collect(),
    };
    let mut lifted = Vec::new();
    for service in services {
        if state
            .verifier
            .store()
            .lift_quarantine(&prefix, Some(service))
            .await
            .map_err(error::internal)?
        {
            lifted.push(service);
        }
    }
    if lifted.is_empty() {
        return Err(error::not_found(&path));
    }
    for service in lifted {
        tracing::warn!(prefix = %prefix, service = %service, "quarantine lifted through the admin API");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/v1/events?serviceSid=&verificationSid=&type=&since=&until=&pageToken=&pageSize=`:
/// the account's events, oldest first; `nextPageToken` continues after the last one.
#[utoipa::path(
    get,
    path = "/admin/v1/events",
    tag = "admin",
    summary = "List the account's events, oldest first",
    security(("accountBasic" = [])),
    params(("serviceSid" = Option<String>, Query, description = "`VA…`"), ("verificationSid" = Option<String>, Query, description = "`VE…` or a native `otpId`"), ("type" = Option<String>, Query, description = "An event type"), ("since" = Option<i64>, Query, description = "Unix seconds"), ("until" = Option<i64>, Query, description = "Unix seconds"), ("pageSize" = Option<u32>, Query, description = "1–1000, default 100"), ("pageToken" = Option<String>, Query, description = "The previous page's `nextPageToken`")),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        (status = 400, description = "60200: a parameter is malformed or out of range.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn events<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    let account = account(&state, &headers).await?;
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let uuid_param = |name: &str, prefix: &str| -> Result<Option<uuid::Uuid>, TwilioError> {
        match params.get(name) {
            None => Ok(None),
            Some(text) => sid_uuid(text, prefix)
                .or_else(|| uuid::Uuid::parse_str(text).ok())
                .map(Some)
                .ok_or_else(|| error::invalid(name)),
        }
    };
    let time = |name: &str| -> Result<Option<otpd_core::Timestamp>, TwilioError> {
        Ok(params
            .int(name, 0, 100_000_000_000)?
            .map(|seconds| otpd_core::Timestamp(seconds * 1000)))
    };
    let limit = params.int("pageSize", 1, 1000)?.unwrap_or(100) as u32;
    let filter = otpd_core::events::EventFilter {
        account,
        service: uuid_param("serviceSid", "VA")?.map(otpd_core::ServiceId::from_uuid),
        verification: uuid_param("verificationSid", "VE")?
            .map(otpd_core::VerificationId::from_uuid),
        kind: params.get("type").map(str::to_string),
        since: time("since")?,
        until: time("until")?,
        after: uuid_param("pageToken", "EV")?,
        limit,
    };
    let events = state
        .verifier
        .store()
        .events(&filter)
        .await
        .map_err(error::internal)?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| format!("EV{}", e.id.simple())))
        .flatten();
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "id": format!("EV{}", e.id.simple()),
                "type": e.kind,
                "serviceSid": format!("VA{}", e.service_id.simple()),
                "verificationSid": e.verification_id.map(|v| format!("VE{}", v.simple())),
                "createdAt": crate::twilio::wire::date(e.created_at),
                "data": e.data,
            })
        })
        .collect();
    Ok(Json(json!({"events": items, "nextPageToken": next})).into_response())
}

fn webhook_json(
    state_signer: &otpd_core::auth::CallbackSigner,
    webhook: &otpd_core::events::Webhook,
) -> Value {
    json!({
        "id": format!("WH{}", webhook.id.simple()),
        "url": webhook.url,
        "eventTypes": webhook.event_types,
        "enabled": webhook.enabled,
        "friendlyName": webhook.friendly_name,
        "signingKey": state_signer.key_for(webhook.service_id),
        "createdAt": crate::twilio::wire::date(webhook.created_at),
    })
}

/// `POST /admin/v1/services/{sid}/webhooks` with `{url, eventTypes?, friendlyName?, enabled?}`.
#[utoipa::path(
    post,
    path = "/admin/v1/services/{sid}/webhooks",
    tag = "admin",
    summary = "Subscribe a webhook to a service's events",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    request_body(content = NewWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The webhook, with its signing key.", body = WebhookObject),
        (status = 400, description = "20001: no `url`; 60200: a field is invalid or the body is not a JSON object.", body = AdminError),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 413, description = "`invalid_body` 1009 (native error body): the body is too large.", body = ErrorBody),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn create_webhook<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks");
    let service = callers_service(&state, &headers, &sid, &path).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(error::invalid_because("body", "expected a JSON object"));
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) => webhook_url(&state.outbound, url, "url").await?,
        _ => return Err(error::missing("url")),
    };
    let event_types = strings(&fields, "eventTypes")?.unwrap_or_else(|| vec!["*".into()]);
    if event_types
        .iter()
        .any(|t| t.is_empty() || t.len() > 64 || t.contains(','))
    {
        return Err(error::invalid_because(
            "eventTypes",
            "event type names such as verification.approved, or *",
        ));
    }
    let friendly_name = match fields.get("friendlyName") {
        None => "webhook".to_string(),
        Some(Value::String(name)) if name.chars().count() <= 64 => name.clone(),
        Some(_) => {
            return Err(error::invalid_because(
                "friendlyName",
                "at most 64 characters",
            ));
        }
    };
    let enabled = match fields.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(error::invalid_because("enabled", "expected true or false")),
    };
    let now = state.verifier.clock().now();
    let webhook = otpd_core::events::Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service.id,
        url,
        event_types,
        enabled,
        friendly_name,
        created_at: now,
        updated_at: now,
    };
    state
        .verifier
        .store()
        .create_webhook(&webhook)
        .await
        .map_err(error::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(webhook_json(&state.signer, &webhook)),
    )
        .into_response())
}

/// `GET /admin/v1/services/{sid}/webhooks`.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/webhooks",
    tag = "admin",
    summary = "List a service's webhooks",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    responses(
        (status = 200, description = "The webhooks.", body = WebhookList),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn list_webhooks<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks");
    let service = callers_service(&state, &headers, &sid, &path).await?;
    let list = state
        .verifier
        .store()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?;
    let items: Vec<Value> = list
        .iter()
        .map(|w| webhook_json(&state.signer, w))
        .collect();
    Ok(Json(json!({ "webhooks": items })).into_response())
}

fn webhook_id(text: &str, path: &str) -> Result<uuid::Uuid, TwilioError> {
    crate::twilio::form::sid_uuid(text, "WH")
        .or_else(|| crate::twilio::form::sid_uuid(text, "YW"))
        .ok_or_else(|| error::not_found(path))
}

/// `DELETE /admin/v1/services/{sid}/webhooks/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/v1/services/{sid}/webhooks/{id}",
    tag = "admin",
    summary = "Delete a webhook and its pending posts",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`)."), ("id" = String, Path, description = "The webhook id (`WH…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn delete_webhook<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, id)): Path<(String, String)>,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks/{id}");
    let service = callers_service(&state, &headers, &sid, &path).await?;
    let id = webhook_id(&id, &path)?;
    let deleted = state
        .verifier
        .store()
        .delete_webhook(service.id, id)
        .await
        .map_err(error::internal)?;
    if !deleted {
        return Err(error::not_found(&path));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/v1/services/{sid}/webhooks/{id}/deliveries`: the delivery log, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/webhooks/{id}/deliveries",
    tag = "admin",
    summary = "A webhook's delivery log, newest first",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`)."), ("id" = String, Path, description = "The webhook id (`WH…`).")),
    responses(
        (status = 200, description = "The log.", body = WebhookDeliveryList),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn webhook_deliveries<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, id)): Path<(String, String)>,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks/{id}/deliveries");
    let service = callers_service(&state, &headers, &sid, &path).await?;
    let id = webhook_id(&id, &path)?;
    let owned = state
        .verifier
        .store()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?
        .iter()
        .any(|w| w.id == id);
    if !owned {
        return Err(error::not_found(&path));
    }
    let log = state
        .verifier
        .store()
        .webhook_log(id, 200)
        .await
        .map_err(error::internal)?;
    let items: Vec<Value> = log
        .iter()
        .map(|entry| {
            json!({
                "eventId": format!("EV{}", entry.event_id.simple()),
                "eventType": entry.event_type,
                "state": entry.state,
                "attempts": entry.attempts,
                "lastStatus": entry.last_status,
                "lastLatencyMs": entry.last_latency_ms,
                "lastError": entry.last_error,
                "nextAttemptAt": entry.next_attempt_at.map(crate::twilio::wire::date),
                "updatedAt": crate::twilio::wire::date(entry.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": items })).into_response())
}

/// Most attempts a report reads (a larger range answers 400: narrow it).
const REPORT_MAX_ATTEMPTS: u32 = 200_000;

/// `GET /admin/v1/report?serviceSid=&since=&until=&groupBy=channel|country|provider|service`:
/// the support teams' lifecycle view: per group, how many verifications ended FAILED (no
/// message left), SENT (sent, never verified) and SUCCESS (verified), their shares, and the
/// median and p95 seconds from start to approval.
#[utoipa::path(
    get,
    path = "/admin/v1/report",
    tag = "admin",
    summary = "The verification lifecycle report",
    security(("accountBasic" = [])),
    params(("groupBy" = Option<String>, Query, description = "`channel` (default), `country`, `provider` or `service`"), ("serviceSid" = Option<String>, Query, description = "`VA…`"), ("since" = Option<i64>, Query, description = "Unix seconds, on send times"), ("until" = Option<i64>, Query, description = "Unix seconds, on send times")),
    responses(
        (status = 200, description = "Counts, shares and approval times per group.", body = Report),
        (status = 400, description = "60200: a parameter is malformed, or the range holds more than 200,000 sends.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn report<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    use std::collections::BTreeMap;
    let account = account(&state, &headers).await?;
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let time = |name: &str| -> Result<Option<otpd_core::Timestamp>, TwilioError> {
        Ok(params
            .int(name, 0, 100_000_000_000)?
            .map(|seconds| otpd_core::Timestamp(seconds * 1000)))
    };
    let service = match params.get("serviceSid") {
        None => None,
        Some(text) => Some(otpd_core::ServiceId::from_uuid(
            sid_uuid(text, "VA").ok_or_else(|| error::invalid("serviceSid"))?,
        )),
    };
    let group_by = params.get("groupBy").unwrap_or("channel");
    if !matches!(group_by, "channel" | "country" | "provider" | "service") {
        return Err(error::invalid_because(
            "groupBy",
            "channel, country, provider or service",
        ));
    }
    let attempts = state
        .verifier
        .store()
        .attempts(&otpd_core::events::AttemptFilter {
            account: Some(account),
            service,
            since: time("since")?,
            until: time("until")?,
            limit: REPORT_MAX_ATTEMPTS + 1,
            ..Default::default()
        })
        .await
        .map_err(error::internal)?;
    if attempts.len() > REPORT_MAX_ATTEMPTS as usize {
        return Err(error::invalid_because(
            "since",
            "the range holds more than 200,000 sends; narrow it",
        ));
    }
    // One row per verification: its sends and its state now.
    let mut verifications: BTreeMap<
        uuid::Uuid,
        (otpd_core::Verification, Vec<otpd_core::DeliveryAttempt>),
    > = BTreeMap::new();
    for (delivery, verification) in attempts {
        verifications
            .entry(verification.id.uuid())
            .or_insert_with(|| (verification, Vec::new()))
            .1
            .push(delivery);
    }
    #[derive(Default)]
    struct Group {
        failed: u64,
        sent: u64,
        success: u64,
        seconds_to_approve: Vec<f64>,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (verification, sends) in verifications.values() {
        let key = match group_by {
            "country" => verification
                .country
                .map_or("none".to_string(), |c| c.as_str().to_string()),
            "provider" => sends
                .iter()
                .rev()
                .find_map(|d| d.provider.clone())
                .unwrap_or_else(|| "none".to_string()),
            "service" => format!("VA{}", verification.service_id.simple()),
            _ => verification.channel.as_str().to_string(),
        };
        let group = groups.entry(key).or_default();
        match otpd_core::TransmissionSummary::of(verification.status, sends) {
            otpd_core::TransmissionSummary::Failed => group.failed += 1,
            otpd_core::TransmissionSummary::Sent => group.sent += 1,
            otpd_core::TransmissionSummary::Success => {
                group.success += 1;
                group
                    .seconds_to_approve
                    .push((verification.updated_at.0 - verification.created_at.0) as f64 / 1000.0);
            }
        }
    }
    let percentile = |sorted: &[f64], p: f64| -> Option<f64> {
        if sorted.is_empty() {
            return None;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    };
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|(key, mut group)| {
            let total = group.failed + group.sent + group.success;
            let share = |n: u64| if total == 0 { 0.0 } else { n as f64 / total as f64 };
            group.seconds_to_approve.sort_by(f64::total_cmp);
            json!({
                "group": key,
                "verifications": total,
                "FAILED": group.failed,
                "SENT": group.sent,
                "SUCCESS": group.success,
                "shares": {"FAILED": share(group.failed), "SENT": share(group.sent), "SUCCESS": share(group.success)},
                "secondsToApprove": {
                    "median": percentile(&group.seconds_to_approve, 0.5),
                    "p95": percentile(&group.seconds_to_approve, 0.95),
                },
            })
        })
        .collect();
    Ok(Json(json!({"groupBy": group_by, "groups": rows})).into_response())
}

fn protection_json(service: &ServiceRecord) -> Value {
    let s = &service.settings;
    json!({
        "allowedCountries": s.allowed_countries,
        "blockedCountries": s.blocked_countries,
        "blockedPrefixes": s.blocked_prefixes,
        "safeList": s.safe_list,
        "allowCostlyNumbers": s.allow_costly_numbers,
        "dailyBudget": s.daily_budget,
    })
}

/// `GET /admin/v1/services/{sid}/protection`.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/protection",
    tag = "admin",
    summary = "Read a service's protection settings",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    responses(
        (status = 200, description = "The settings.", body = Protection),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn protection<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/protection");
    let service = callers_service(&state, &headers, &sid, &path).await?;
    Ok(Json(protection_json(&service)).into_response())
}

/// `PUT /admin/v1/services/{sid}/protection`: changes the fields given, checks each.
#[utoipa::path(
    put,
    path = "/admin/v1/services/{sid}/protection",
    tag = "admin",
    summary = "Change a service's protection settings",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    request_body(content = ProtectionUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The settings after the change.", body = Protection),
        (status = 400, description = "60200: an unknown field, a field with a bad value, or a body that is not a JSON object.", body = AdminError),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 413, description = "`invalid_body` 1009 (native error body): the body is too large.", body = ErrorBody),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn update_protection<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/protection");
    let mut service = callers_service(&state, &headers, &sid, &path).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(error::invalid_because("body", "expected a JSON object"));
    };
    apply(&fields, &mut service)?;
    service.updated_at = state.verifier.clock().now();
    state
        .verifier
        .store()
        .update_service(&service)
        .await
        .map_err(error::internal)?;
    Ok(Json(protection_json(&service)).into_response())
}

fn strings(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, TwilioError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| error::invalid_because(name, "expected an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(error::invalid_because(name, "expected an array of strings")),
    }
}

fn countries(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, TwilioError> {
    strings(fields, name)?
        .map(|list| {
            list.iter()
                .map(|c| {
                    CountryIso::parse(c)
                        .map(|iso| iso.as_str().to_string())
                        .map_err(|_| {
                            error::invalid_because(
                                name,
                                &format!("'{c}' is not an ISO 3166-1 alpha-2 country"),
                            )
                        })
                })
                .collect()
        })
        .transpose()
}

fn apply(fields: &Map<String, Value>, service: &mut ServiceRecord) -> Result<(), TwilioError> {
    const KNOWN: &[&str] = &[
        "allowedCountries",
        "blockedCountries",
        "blockedPrefixes",
        "safeList",
        "allowCostlyNumbers",
        "dailyBudget",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(error::invalid_because(unknown, "unknown field"));
    }
    let settings = &mut service.settings;
    if let Some(list) = countries(fields, "allowedCountries")? {
        settings.allowed_countries = list;
    }
    if let Some(list) = countries(fields, "blockedCountries")? {
        settings.blocked_countries = list;
    }
    if let Some(list) = strings(fields, "blockedPrefixes")? {
        let bad = list.iter().find(|p| {
            p.len() < 2 || !p.starts_with('+') || !p[1..].chars().all(|c| c.is_ascii_digit())
        });
        if let Some(bad) = bad {
            return Err(error::invalid_because(
                "blockedPrefixes",
                &format!("'{bad}' is not a + followed by digits"),
            ));
        }
        settings.blocked_prefixes = list;
    }
    if let Some(list) = strings(fields, "safeList")? {
        let numbers = list
            .iter()
            .map(|n| {
                E164Phone::parse(n, None)
                    .map(|(phone, _)| phone.as_str().to_string())
                    .map_err(|_| {
                        error::invalid_because(
                            "safeList",
                            &format!("'{n}' is not a valid E.164 number"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        settings.safe_list = numbers;
    }
    match fields.get("allowCostlyNumbers") {
        None => {}
        Some(Value::Bool(allow)) => settings.allow_costly_numbers = *allow,
        Some(_) => {
            return Err(error::invalid_because(
                "allowCostlyNumbers",
                "expected true or false",
            ));
        }
    }
    match fields.get("dailyBudget") {
        None => {}
        Some(Value::Null) => settings.daily_budget = None,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v.is_finite() && v >= 0.0) => {
            settings.daily_budget = n.as_f64();
        }
        Some(_) => {
            return Err(error::invalid_because(
                "dailyBudget",
                "expected a non-negative number or null",
            ));
        }
    }
    Ok(())
}
