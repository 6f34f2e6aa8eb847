//! `/admin/v1/destinations/{to}`: everything otpd holds about one phone number or email
//! address in the caller's services and safe list (`GET`, the right of access) and its
//! erasure (`DELETE`, the right to erasure; docs/data-protection.md). The JSON of both is
//! built here and shared with `otpd export` and `otpd erase`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use otpd_core::destinations::{DestinationRecords, DestinationVerification, ErasureCounts};
use otpd_core::events::Event;
use otpd_core::manage::ERASURE_TARGET;
use otpd_core::{Clock, Recipient, Store};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, DestinationExport, ErasureObject};
use crate::AppState;
use crate::twilio::Acting;
use crate::twilio::error::{self, TwilioError};

/// The destination of a path or a command line: an email address, or an E.164 number whose
/// `+` may arrive raw, encoded (`%2B`) or decoded into a space by a client that read it as
/// a form; `None` when it is neither.
pub fn parse_destination(raw: &str) -> Option<Recipient> {
    let text = raw.trim_end();
    let text = if text.contains('@') {
        text.trim_start().to_string()
    } else if let Some(rest) = text.strip_prefix(' ') {
        format!("+{}", rest.trim_start())
    } else {
        text.to_string()
    };
    if !text.contains('@') && !text.starts_with('+') {
        return None;
    }
    Recipient::parse(&text, None).ok().map(|(to, _)| to)
}

fn event_json(e: &Event) -> Value {
    json!({
        "id": format!("EV{}", e.id.simple()),
        "type": e.kind,
        "serviceSid": format!("VA{}", e.service_id.simple()),
        "createdAt": crate::rfc3339(e.created_at),
        "data": e.data,
    })
}

/// One verification as an export shows it: never its code hash, seed, template or message.
fn verification_json(item: &DestinationVerification) -> Value {
    let v = &item.verification;
    let deliveries: Vec<Value> = item
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "channel": d.channel.as_str(),
                "provider": d.provider,
                "status": d.status.as_str(),
                "providerMessageId": d.provider_ref,
                "errorCode": d.error_code,
                "error": d.error,
                "price": d.price,
                "priceUnit": d.price_unit,
                "segments": d.segments,
                "createdAt": crate::rfc3339(d.created_at),
                "updatedAt": crate::rfc3339(d.updated_at),
            })
        })
        .collect();
    json!({
        "sid": format!("VE{}", v.id.simple()),
        "otpId": v.id.to_string(),
        "serviceSid": format!("VA{}", v.service_id.simple()),
        "channel": v.channel.as_str(),
        "status": v.status.as_str(),
        "country": v.country.as_ref().map(|c| c.as_str()),
        "locale": v.locale,
        "amount": v.amount,
        "payee": v.payee,
        "attempts": v.attempts,
        "createdAt": crate::rfc3339(v.created_at),
        "updatedAt": crate::rfc3339(v.updated_at),
        "expiresAt": crate::rfc3339(v.expires_at),
        "deliveries": deliveries,
        "events": item.events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// The export document of `to` (docs/data-protection.md, "Export").
pub fn export_json(to: &Recipient, records: &DestinationRecords) -> Value {
    json!({
        "destination": to.as_str(),
        "verifications": records.verifications.iter().map(verification_json).collect::<Vec<_>>(),
        "blockedStarts": records.blocked_starts.iter().map(event_json).collect::<Vec<_>>(),
        "safeList": records.safe_list.iter().map(|s| json!({
            "sid": format!("GN{}", s.entry.id.simple()),
            "accountSid": format!("AC{}", s.account.simple()),
            "phoneNumber": s.entry.phone,
            "createdAt": crate::rfc3339(s.entry.created_at),
        })).collect::<Vec<_>>(),
    })
}

/// The audit summary of an erasure: the counts only, never the destination.
pub fn erasure_summary(counts: &ErasureCounts) -> Value {
    json!({ "erased": counts.to_json() })
}

fn destination(raw: &str) -> Result<Recipient, TwilioError> {
    parse_destination(raw).ok_or_else(|| {
        error::invalid_because(
            "destination",
            "expected an E.164 number (`+` encoded as %2B) or an email address",
        )
    })
}

/// `GET /admin/v1/destinations/{to}`: everything held about `to` in the caller's services
/// and safe list, as one document; empty lists when nothing is held.
#[utoipa::path(
    get,
    path = "/admin/v1/destinations/{to}",
    tag = "admin",
    summary = "Export everything held about a phone number or email address",
    description = "The right of access: the destination's verifications in the account's services (with their delivery attempts, receipts and events), the refused starts to it and its safe-list entry. Never a code, code hash or message text. Reads are not audited.",
    security(("accountBasic" = [])),
    params(("to" = String, Path, description = "An E.164 number (URL-encode the `+` as `%2B`) or an email address.")),
    responses(
        (status = 200, description = "The export (empty lists when nothing is held).", body = DestinationExport),
        (status = 400, description = "60200: `destination` is neither an E.164 number nor an email address.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn export<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(raw): Path<String>,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let to = destination(&raw)?;
    let records = state
        .verifier
        .manage()
        .destination_records(Some(account), &to)
        .await
        .map_err(error::internal)?;
    Ok(Json(export_json(&to, &records)).into_response())
}

/// `DELETE /admin/v1/destinations/{to}`: erases `to` from the caller's services and safe
/// list (pending verifications canceled first) and answers the counts; audited as
/// `destination.erase` without the destination.
#[utoipa::path(
    delete,
    path = "/admin/v1/destinations/{to}",
    tag = "admin",
    summary = "Erase a phone number or email address",
    description = "The right to erasure: cancels the destination's pending verifications (without callback or webhook), then deletes its verifications, delivery attempts, status callbacks, events (the refused starts' too), webhook posts and safe-list entry in the account's services. Counters that protect against abuse keep its blind index only. Recorded in the audit log as `destination.erase`, target `destination`, with the counts and never the destination.",
    security(("accountBasic" = [])),
    params(("to" = String, Path, description = "An E.164 number (URL-encode the `+` as `%2B`) or an email address.")),
    responses(
        (status = 200, description = "Erased (zero counts when nothing was held).", body = ErasureObject),
        (status = 400, description = "60200: `destination` is neither an E.164 number nor an email address.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn erase<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(raw): Path<String>,
    AdminAccount(account): AdminAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let to = destination(&raw)?;
    let counts = state
        .verifier
        .manage()
        .erase_destination(Some(account), &to)
        .await
        .map_err(error::internal)?;
    tracing::warn!(destination = %to.masked(), "destination erased through the admin API");
    let summary = erasure_summary(&counts);
    super::audit::record(
        &state,
        &by,
        account,
        "destination.erase",
        ERASURE_TARGET,
        summary,
    )
    .await?;
    Ok(Json(counts.to_json()).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_destination;

    #[test]
    fn a_destination_is_a_number_with_its_plus_in_any_spelling_or_an_email() {
        for raw in ["+14155552671", " 14155552671", "+1 415 555 2671"] {
            assert_eq!(
                parse_destination(raw).map(|to| to.as_str().to_string()),
                Some("+14155552671".to_string()),
                "{raw}"
            );
        }
        assert_eq!(
            parse_destination("Ada@Example.COM").map(|to| to.as_str().to_string()),
            Some("Ada@example.com".to_string())
        );
        for raw in ["14155552671", "", "abc", "+1", "ada@"] {
            assert!(parse_destination(raw).is_none(), "{raw}");
        }
    }
}
