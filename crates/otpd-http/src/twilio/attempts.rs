//! Verification Attempts and their Summary (`/v2/Attempts`, `/v2/Attempts/Summary`): one
//! attempt per send (start, resend, fallback channel), converted when its verification was
//! approved. Account-level, as at Twilio.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use otpd_core::events::AttemptFilter;
use otpd_core::store::DeliveryAttempt;
use otpd_core::{Clock, Store, Timestamp, Verification, VerificationStatus};
use serde_json::{Value, json};

use super::error::{self, TwilioError};
use super::form::{Params, sid_uuid};
use super::wire::{account_sid, date};
use super::{TwilioAccount, base_url};
use crate::AppState;

fn attempt_json(
    base: &str,
    account: otpd_core::AccountId,
    delivery: &DeliveryAttempt,
    verification: &Verification,
    now: Timestamp,
) -> Value {
    let converted = verification.status == VerificationStatus::Approved;
    let status = match verification.status_at(now) {
        VerificationStatus::Approved => "confirmed",
        VerificationStatus::Expired => "expired",
        _ => "unconfirmed",
    };
    let sid = format!("VL{}", delivery.id.simple());
    json!({
        "sid": sid,
        "account_sid": account_sid(account),
        "service_sid": format!("VA{}", verification.service_id.simple()),
        "verification_sid": format!("VE{}", verification.id.simple()),
        "date_created": date(delivery.created_at),
        "date_updated": date(delivery.updated_at),
        "conversion_status": if converted { "converted" } else { "unconverted" },
        "channel": delivery.channel.as_str(),
        "price": delivery.price.map(|p| json!({
            "value": format!("{p}"),
            "currency": delivery.price_unit.clone().unwrap_or_default().to_lowercase(),
        })),
        "channel_data": {
            "verification_sid": format!("VE{}", verification.id.simple()),
            "to": verification.to.as_str(),
            "status": status,
            "message_status": delivery.status.as_str(),
            "error_code": delivery.error_code,
            "country": verification.country.map(|c| c.as_str().to_string()),
            "code_length": verification.pin_length.get(),
            "locale": verification.locale,
        },
        "url": format!("{base}/v2/Attempts/{sid}"),
    })
}

/// The filters both endpoints share.
fn filter(params: &Params, account: otpd_core::AccountId) -> Result<AttemptFilter, TwilioError> {
    let time = |name: &str| -> Result<Option<Timestamp>, TwilioError> {
        match params.get(name) {
            None => Ok(None),
            Some(text) => {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map(|t| Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64)))
                    .map_err(|_| error::invalid_because(name, "an ISO 8601 date-time"))
            }
        }
    };
    let channel = match params.get("Channel") {
        None => None,
        Some(c @ ("sms" | "call" | "email" | "whatsapp" | "rbm")) => Some(c.to_string()),
        Some(_) => return Err(error::invalid("Channel")),
    };
    let converted = match params.get("Status").map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("converted") => Some(true),
        Some("unconverted") => Some(false),
        Some(_) => return Err(error::invalid("Status")),
    };
    let sid = |name: &str, prefix: &str| -> Result<Option<uuid::Uuid>, TwilioError> {
        params
            .get(name)
            .map(|text| sid_uuid(text, prefix).ok_or_else(|| error::invalid(name)))
            .transpose()
    };
    Ok(AttemptFilter {
        account: Some(account),
        service: sid("VerifyServiceSid", "VA")?.map(otpd_core::ServiceId::from_uuid),
        verification: sid("VerificationSid", "VE")?.map(otpd_core::VerificationId::from_uuid),
        to: params.get("ChannelData.To").map(str::to_string),
        country: params.get("Country").map(str::to_ascii_uppercase),
        prefix: params.get("DestinationPrefix").map(str::to_string),
        channel,
        converted,
        since: time("DateCreatedAfter")?,
        until: time("DateCreatedBefore")?,
        newest_first: false,
        after: sid("PageToken", "VL")?,
        limit: params.int("PageSize", 1, 1000)?.unwrap_or(50) as u32,
    })
}

/// `GET /v2/Attempts`: the account's attempts, oldest first, in keyset pages.
pub async fn list<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let filter = filter(&params, account)?;
    let page_size = filter.limit;
    let mut rows = state
        .verifier
        .manage()
        .attempts(&AttemptFilter {
            limit: page_size + 1,
            ..filter.clone()
        })
        .await
        .map_err(error::internal)?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let base = base_url(&state, &headers);
    let now = state.verifier.clock().now();
    let page = params.int("Page", 0, i64::from(u32::MAX))?.unwrap_or(0);
    let list_url = format!("{base}/v2/Attempts");
    let page_url = |page: i64, token: Option<String>| match token {
        Some(token) => format!("{list_url}?PageSize={page_size}&Page={page}&PageToken={token}"),
        None => format!("{list_url}?PageSize={page_size}&Page={page}"),
    };
    let next = more.then(|| {
        let last = rows.last().map(|(d, _)| format!("VL{}", d.id.simple()));
        page_url(page + 1, last)
    });
    let items: Vec<Value> = rows
        .iter()
        .map(|(d, v)| attempt_json(&base, account, d, v, now))
        .collect();
    Ok(Json(json!({
        "attempts": items,
        "meta": {
            "page": page, "page_size": page_size, "first_page_url": page_url(0, None),
            "previous_page_url": null, "next_page_url": next, "key": "attempts",
            "url": page_url(page, params.get("PageToken").map(str::to_string)),
        },
    }))
    .into_response())
}

/// `GET /v2/Attempts/{VL…}`.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Attempts/{sid}");
    let id = sid_uuid(&sid, "VL").ok_or_else(|| error::not_found(&path))?;
    // One attempt: the filter pages from just before its id.
    let rows = state
        .verifier
        .manage()
        .attempts(&AttemptFilter {
            account: Some(account),
            after: Some(uuid::Uuid::from_u128(id.as_u128().wrapping_sub(1))),
            limit: 1,
            ..AttemptFilter::default()
        })
        .await
        .map_err(error::internal)?;
    match rows.first() {
        Some((d, v)) if d.id.uuid() == id => {
            let now = state.verifier.clock().now();
            Ok(Json(attempt_json(
                &base_url(&state, &headers),
                account,
                d,
                v,
                now,
            ))
            .into_response())
        }
        _ => Err(error::not_found(&path)),
    }
}

/// `GET /v2/Attempts/Summary`: totals and conversion rate (a string, as at Twilio).
pub async fn summary<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let summary = state
        .verifier
        .manage()
        .attempt_summary(&filter(&params, account)?)
        .await
        .map_err(error::internal)?;
    let rate = if summary.total == 0 {
        0.0
    } else {
        summary.converted as f64 * 100.0 / summary.total as f64
    };
    Ok(Json(json!({
        "total_attempts": summary.total,
        "total_converted": summary.converted,
        "total_unconverted": summary.total - summary.converted,
        "conversion_rate_percentage": format!("{rate:.9}"),
        "url": format!("{}/v2/Attempts/Summary", base_url(&state, &headers)),
    }))
    .into_response())
}
