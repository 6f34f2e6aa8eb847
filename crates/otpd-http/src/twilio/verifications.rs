//! `Verifications` (start, fetch, update) and `VerificationCheck`, over the same core as the
//! native API: a verification started here is visible there and vice versa.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpd_core::abuse::{Blocked, LimitScope};
use otpd_core::store::ServiceRecord;
use otpd_core::verifier::Lookup;
use otpd_core::{
    Channel, CheckOutcome, Clock, OtpCode, Recipient, StartError, StartRequest, StatusChange,
    Store, Verification, VerificationId, VerificationStatus,
};

use super::error::{self, TwilioError};
use super::form::{Params, sid_uuid};
use super::{TwilioAccount, base_url, owned_service, wire};
use crate::AppState;

/// Whether Twilio still serves a verification in this status ("soft delete" of approved,
/// expired and max-attempted verifications; canceled ones stay readable).
fn still_visible(status: VerificationStatus) -> bool {
    matches!(
        status,
        VerificationStatus::Pending | VerificationStatus::Canceled
    )
}

/// Validates `To` for `channel`: E.164 phone numbers for sms/call/whatsapp, addresses for email.
fn recipient(
    params: &Params,
    channel: Channel,
) -> Result<(Recipient, Option<otpd_core::CountryIso>), TwilioError> {
    let to = params.required("To")?;
    let parsed = Recipient::parse(to, None).map_err(|_| error::invalid("To"))?;
    if !channel.reaches(&parsed.0) {
        return Err(error::invalid_because(
            "To",
            &format!("not a valid destination for channel {}", channel.as_str()),
        ));
    }
    Ok(parsed)
}

fn channel(params: &Params) -> Result<Channel, TwilioError> {
    let name = params.required("Channel")?;
    match name {
        "sna" | "auto" | "rcs" => Err(error::channel_disabled(name)),
        _ => Channel::parse(name).ok_or_else(|| error::invalid("Channel")),
    }
}

/// Checks the JSON-valued parameters that otpd accepts but does not act on yet.
fn accepted_json(params: &Params) -> Result<(), TwilioError> {
    if let Some(tags) = params.json_object("Tags")? {
        let bad = tags.len() > 10
            || tags
                .iter()
                .any(|(k, v)| k.len() > 128 || v.as_str().is_none_or(|v| v.len() > 128));
        if bad {
            return Err(error::invalid_because(
                "Tags",
                "at most 10 string values of at most 128 characters",
            ));
        }
    }
    if let Some(limits) = params.json_object("RateLimits")?
        && limits.values().any(|v| !(v.is_string() || v.is_number()))
    {
        return Err(error::invalid_because(
            "RateLimits",
            "values must be strings or numbers",
        ));
    }
    params.json_object("ChannelConfiguration")?;
    params.json_object("TemplateCustomSubstitutions")?;
    params.sid("TemplateSid", "HJ")?;
    if let Some(locale) = params.get("Locale") {
        let shaped = locale.len() <= 10
            && locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !shaped {
            return Err(error::invalid("Locale"));
        }
    }
    Ok(())
}

async fn attempts_json<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    headers: &HeaderMap,
    service: &ServiceRecord,
    verification: &Verification,
    known_attempts: Option<Vec<otpd_core::store::DeliveryAttempt>>,
) -> Result<serde_json::Value, TwilioError> {
    let attempts = match known_attempts {
        Some(attempts) => attempts,
        None => state
            .verifier
            .manage()
            .deliveries(verification.id)
            .await
            .map_err(error::internal)?,
    };
    let status = verification.status_at(state.verifier.clock().now());
    Ok(wire::verification(
        &base_url(state, headers),
        service,
        verification,
        status,
        &attempts,
    ))
}

/// `POST /v2/Services/{ServiceSid}/Verifications`: send a code (or the same code again to a
/// recipient that has a pending verification).
pub async fn start<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    axum::Extension(client): axum::Extension<crate::ClientIp>,
    headers: HeaderMap,
    Path(service_sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{service_sid}/Verifications");
    let service = owned_service(&state, account, &service_sid, &path).await?;
    let params = Params::parse(&body);
    let channel = channel(&params)?;
    let to = recipient(&params, channel)?;
    accepted_json(&params)?;
    let custom_code = match params.get("CustomCode") {
        None => None,
        Some(code) => {
            let shaped =
                (4..=10).contains(&code.len()) && code.chars().all(|c| c.is_ascii_alphanumeric());
            if !shaped {
                return Err(error::invalid_because(
                    "CustomCode",
                    "4 to 10 letters or digits",
                ));
            }
            Some(OtpCode::from_user_input(code))
        }
    };
    let request = StartRequest {
        to: Some(to),
        channel: Some(channel),
        friendly_name: params.text("CustomFriendlyName", 64)?,
        custom_code,
        amount: params.text("Amount", 64)?,
        payee: params.text("Payee", 64)?,
        app_hash: params.text("AppHash", 32)?,
        locale: params.get("Locale").map(str::to_string),
        client_ip: device_ip(params.get("DeviceIp"), "DeviceIp")?.or_else(|| client.text()),
        rate_limit_values: params
            .json_object("RateLimits")?
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, value)
            })
            .collect(),
        resend_pending: true,
        ..StartRequest::default()
    };
    let started = state
        .verifier
        .start(&service, request)
        .await
        .map_err(|e| match e {
            StartError::CustomCodeNotAllowed => error::custom_code_not_allowed(),
            StartError::TooManySends => error::max_send_attempts(),
            StartError::Cooldown {
                retry_after_seconds,
            } => error::send_cooldown(retry_after_seconds),
            StartError::RateLimited {
                scope: LimitScope::Destination,
                retry_after_seconds,
                ..
            } => error::rate_limited(60203, "Max send attempts reached", retry_after_seconds),
            StartError::RateLimited {
                retry_after_seconds,
                ..
            } => error::rate_limited(20429, "Too Many Requests", retry_after_seconds),
            StartError::LockedOut {
                retry_after_seconds,
            } => error::rate_limited(
                60203,
                "Max send attempts reached: too many wrong codes for this To",
                retry_after_seconds,
            ),
            StartError::Blocked(Blocked::Landline) => {
                error::blocked(60205, "SMS is not supported by landline phone number")
            }
            StartError::Blocked(Blocked::CostlyNumber) => error::blocked(
                60410,
                "Verification delivery attempt blocked: premium-rate or shared-cost number",
            ),
            StartError::Quarantined(_) => error::blocked(
                60410,
                "Verification delivery attempt blocked: the destination prefix is quarantined",
            ),
            StartError::BudgetExceeded { budget } => {
                let now = state.verifier.clock().now().unix_seconds();
                error::rate_limited(
                    20429,
                    &format!(
                        "Too Many Requests: the service's daily budget of {budget} is reached"
                    ),
                    (86_400 - now.rem_euclid(86_400)) as u32,
                )
            }
            StartError::Blocked(_) => {
                error::blocked(60605, "Verification delivery attempt blocked")
            }
            StartError::Psd2NotEnabled => {
                error::invalid_because("Amount", "PSD2 is not enabled on this service")
            }
            StartError::CustomCodeRequired => error::invalid_because(
                "CustomCode",
                "required to re-send a custom-code verification",
            ),
            StartError::ChannelMismatch | StartError::MissingRecipient => error::invalid("To"),
            StartError::ChannelUnavailable(channel) => error::channel_disabled(channel.as_str()),
            StartError::Store(e) => error::internal(e),
        })?;
    let verification = started.verification();
    let body = attempts_json(
        &state,
        &headers,
        &service,
        verification,
        started.known_attempts(),
    )
    .await?;
    let response = (StatusCode::CREATED, Json(body)).into_response();
    Ok(crate::LogNote::started("verification started (twilio)", &started).on(response))
}

/// Resolves `{Sid}`: a `VE…` SID, or the `To` of the pending verification (the `+` of a
/// phone number arrives raw in the path and is kept).
async fn find<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    service: &ServiceRecord,
    sid: &str,
    path: &str,
) -> Result<Verification, TwilioError> {
    if let Some(uuid) = sid_uuid(sid, "VE") {
        return match state
            .verifier
            .get(service.id, VerificationId::from_uuid(uuid))
            .await
            .map_err(error::internal)?
        {
            Lookup::Found(v) => Ok(*v),
            Lookup::NotFound | Lookup::WrongService => Err(error::not_found(path)),
        };
    }
    state
        .verifier
        .latest_for(service.id, sid)
        .await
        .map_err(error::internal)?
        .ok_or_else(|| error::not_found(path))
}

/// `GET /v2/Services/{ServiceSid}/Verifications/{Sid}`.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((service_sid, sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{service_sid}/Verifications/{sid}");
    let service = owned_service(&state, account, &service_sid, &path).await?;
    let verification = find(&state, &service, &sid, &path).await?;
    if !still_visible(verification.status_at(state.verifier.clock().now())) {
        return Err(error::not_found(&path));
    }
    Ok(Json(attempts_json(&state, &headers, &service, &verification, None).await?).into_response())
}

/// `POST /v2/Services/{ServiceSid}/Verifications/{Sid}` with `Status=canceled|approved`.
pub async fn update<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((service_sid, sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{service_sid}/Verifications/{sid}");
    let service = owned_service(&state, account, &service_sid, &path).await?;
    let params = Params::parse(&body);
    let target = match params.required("Status")? {
        "canceled" => VerificationStatus::Canceled,
        "approved" => VerificationStatus::Approved,
        _ => {
            return Err(error::invalid_because(
                "Status",
                "must be canceled or approved",
            ));
        }
    };
    let verification = find(&state, &service, &sid, &path).await?;
    let change = state
        .verifier
        .set_status(service.id, verification.id, target)
        .await
        .map_err(error::internal)?;
    let verification = match change {
        StatusChange::Changed(v) => *v,
        // Repeating the same change is harmless: answer with the verification as it is.
        StatusChange::NotPending(v) if v.status == target && still_visible(v.status) => *v,
        _ => return Err(error::not_found(&path)),
    };
    Ok(Json(attempts_json(&state, &headers, &service, &verification, None).await?).into_response())
}

/// `POST /v2/Services/{ServiceSid}/VerificationCheck`: 200 with `approved` or `pending`
/// (wrong code, counted); 429 60202 once the attempts are used up; 404 when there is nothing
/// pending to check.
pub async fn check<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(service_sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{service_sid}/VerificationCheck");
    let service = owned_service(&state, account, &service_sid, &path).await?;
    let params = Params::parse(&body);
    let id = match (params.get("VerificationSid"), params.get("To")) {
        (Some(sid), _) => VerificationId::from_uuid(
            sid_uuid(sid, "VE").ok_or_else(|| error::invalid("VerificationSid"))?,
        ),
        (None, Some(to)) => {
            state
                .verifier
                .latest_for(service.id, to)
                .await
                .map_err(error::internal)?
                .ok_or_else(|| error::not_found(&path))?
                .id
        }
        (None, None) => return Err(error::no_target()),
    };
    let code = params.required("Code")?;
    if !(4..=10).contains(&code.chars().count()) {
        return Err(error::invalid_because("Code", "4 to 10 characters"));
    }
    let amount = params.get("Amount").map(str::to_string);
    let payee = params.get("Payee").map(str::to_string);
    let result = state
        .verifier
        .check(service.id, id, code, amount, payee)
        .await
        .map_err(error::internal)?;
    let note = crate::LogNote::checked("verification checked (twilio)", id, result.outcome);
    let answer = match (result.outcome, result.verification) {
        (
            CheckOutcome::Approved | CheckOutcome::WrongCode | CheckOutcome::MaxAttemptsNow,
            Some(v),
        ) => Ok(Json(wire::check(&service, &v)).into_response()),
        (CheckOutcome::AlreadyMaxAttempts, _) => Err(error::max_check_attempts()),
        _ => Err(error::not_found(&path)),
    };
    Ok(note.on(answer.into_response()))
}

/// `DeviceIp`: the end user's address, which the per-client limit counts instead of the
/// caller's (a backend calling otpd is one address for all its users).
fn device_ip(value: Option<&str>, name: &str) -> Result<Option<String>, TwilioError> {
    value
        .map(|v| {
            v.trim()
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| error::invalid_because(name, "an IPv4 or IPv6 address"))
        })
        .transpose()
}
