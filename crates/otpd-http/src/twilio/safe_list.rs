//! SafeList (`/v2/SafeList/Numbers`): numbers of the account that skip the fraud checks
//! (geo permissions, block lists, number-type rules, rate limits, lockout, pumping defence) in
//! every service of the account. SDKs put the `+` of `{PhoneNumber}` in the path raw.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpd_core::store::SafeNumber;
use otpd_core::{Clock, E164Phone, Store};
use serde_json::{Value, json};

use super::error::{self, TwilioError};
use super::form::Params;
use super::{Acting, TwilioAccount, base_url};
use crate::AppState;
use crate::admin::audit::record;

fn entry_json(base: &str, entry: &SafeNumber) -> Value {
    json!({
        "sid": format!("GN{}", entry.id.simple()),
        "phone_number": entry.phone,
        "url": format!("{base}/v2/SafeList/Numbers/{}", entry.phone),
    })
}

/// A path number as E.164, or the 404 Twilio gives for a number it does not hold.
fn path_number(raw: &str) -> Result<String, TwilioError> {
    let path = format!("/SafeList/Numbers/{raw}");
    // A `+` may arrive raw or encoded; an encoded space means the client decoded it.
    let text = raw.replace(' ', "+");
    E164Phone::parse(&text, None)
        .map(|(phone, _)| phone.as_str().to_string())
        .map_err(|_| error::not_found(&path))
}

/// `POST /v2/SafeList/Numbers` with `PhoneNumber` (E.164): 201 with the entry.
pub async fn add<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let params = Params::parse(&body);
    let raw = params.required("PhoneNumber")?;
    let Ok((phone, _)) = E164Phone::parse(raw, None) else {
        return Err(error::invalid("PhoneNumber"));
    };
    let entry = SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: phone.as_str().to_string(),
        created_at: state.verifier.clock().now(),
    };
    let stored = state
        .verifier
        .manage()
        .add_safe_number(account, &entry)
        .await
        .map_err(error::internal)?;
    tracing::info!(phone = %phone.masked(), "number added to the safe list");
    let summary = json!({"after": {"phone_number": phone.masked()}});
    let target = format!("GN{}", stored.id.simple());
    record(&state, &by, account, "safe_number.add", target, summary).await?;
    let body = entry_json(&base_url(&state, &headers), &stored);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v2/SafeList/Numbers/{PhoneNumber}`: 200 with the entry, or 404 20404.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let phone = path_number(&raw)?;
    match state
        .verifier
        .manage()
        .safe_number(account, &phone)
        .await
        .map_err(error::internal)?
    {
        Some(entry) => Ok(Json(entry_json(&base_url(&state, &headers), &entry)).into_response()),
        None => Err(error::not_found(&format!("/SafeList/Numbers/{raw}"))),
    }
}

/// `DELETE /v2/SafeList/Numbers/{PhoneNumber}`: 204, or 404 20404.
pub async fn remove<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(raw): Path<String>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let phone = path_number(&raw)?;
    let manage = state.verifier.manage();
    let entry = manage
        .safe_number(account, &phone)
        .await
        .map_err(error::internal)?;
    let removed = state
        .verifier
        .manage()
        .remove_safe_number(account, &phone)
        .await
        .map_err(error::internal)?;
    if !removed {
        return Err(error::not_found(&format!("/SafeList/Numbers/{raw}")));
    }
    let summary = json!({"before": {"phone_number": otpd_core::phone::mask_phone(&phone)}});
    let target = entry.map_or_else(
        || otpd_core::phone::mask_phone(&phone),
        |entry| format!("GN{}", entry.id.simple()),
    );
    record(&state, &by, account, "safe_number.remove", target, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
