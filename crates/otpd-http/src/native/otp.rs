//! `POST /otp`, `GET /otp/{otpId}`, `POST /otp/{otpId}`, `DELETE /otp/{otpId}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use otpd_core::verifier::Lookup;
use otpd_core::{
    Channel, CheckOutcome, Clock, CountryIso, E164Phone, MaxAttempts, PhoneError, PinLength,
    PinType, Recipient, SenderId, StartRequest, StatusChange, Store, Template, Ttl, VerificationId,
    VerificationStatus,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::NativeCaller;
use super::error::{self, ErrorBody, NativeError, invalid_param};
use super::wire::OtpObject;
use crate::AppState;
use otpd_core::code::BoundError;
use otpd_core::settings::parse_callback_url;

/// The `POST /otp` body (documentation only: the handler reads the raw JSON to answer each
/// mistake with its SMS.CX code). Integers may also be sent as numeric strings
/// (`"ttl": "300"`); unknown fields are ignored.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct NewOtpRequest {
    /// E.164, or national format with `countryIso` (alias: `to`).
    #[schema(example = "+33612345678")]
    phone_number: String,
    /// ISO 3166-1 alpha-2 (`GB`, not `UK`); only used to read a national number.
    #[schema(example = "FR")]
    country_iso: Option<String>,
    /// Sender id, 3–15 characters (default: the application's).
    #[schema(min_length = 3, max_length = 15, example = "InfoText")]
    from: Option<String>,
    /// Message text; must contain `{{pin}}` (default: the application's template).
    #[schema(example = "Your verification code is {{pin}}")]
    template: Option<String>,
    /// Seconds the code is valid (default 600).
    #[schema(minimum = 60, maximum = 1800, example = 180)]
    ttl: Option<u32>,
    /// Wrong PINs tolerated (default 5).
    #[schema(minimum = 1, maximum = 10, example = 4)]
    max_attempts: Option<u32>,
    /// `numbers` (default), `letters` or `alphanumeric`.
    #[schema(example = "numbers")]
    pin_type: Option<String>,
    /// PIN length (default 6).
    #[schema(minimum = 4, maximum = 10, example = 4)]
    pin_length: Option<u32>,
    /// Any 8-4-4-4-12 hex UUID, echoed in lower case.
    #[schema(example = "3b90b6d3-4fd6-40d8-9b2d-310cb50f201d")]
    track_id: Option<String>,
    /// Absolute http(s) URL for status callbacks (default: the application's).
    #[schema(example = "https://example.com/otp-status")]
    otp_callback_url: Option<String>,
    /// otpd extension: `sms` (default), `whatsapp` or `call`.
    #[schema(example = "sms")]
    channel: Option<String>,
    /// otpd extension: the end user's IPv4/IPv6 address, counted by the per-client rate
    /// limit instead of the caller's.
    #[schema(example = "203.0.113.7")]
    device_ip: Option<String>,
    /// otpd extension: a language tag such as `fr` or `pt-BR` choosing the message text.
    #[schema(example = "fr")]
    locale: Option<String>,
}

/// The `POST /otp/{otpId}` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CheckRequest {
    /// The PIN the user typed (a JSON number is accepted too).
    #[schema(example = "1544")]
    pin: String,
}

/// A right PIN.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CheckResponse {
    /// Always `VERIFIED`.
    #[schema(example = "VERIFIED")]
    status: String,
}

/// A cancelled verification.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CancelResponse {
    /// What was cancelled.
    info: CancelInfo,
}

/// The cancelled verification.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CancelInfo {
    /// Its `otpId`.
    id: String,
}

/// Parses the `{otpId}` path segment; anything that is not a UUID cannot exist.
fn otp_id(text: &str) -> Result<VerificationId, NativeError> {
    Uuid::try_parse(text)
        .map(VerificationId::from_uuid)
        .map_err(|_| error::otp_not_found())
}

/// Parses a JSON object body.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, NativeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error::invalid_body("expected an object")),
        Err(e) => Err(error::invalid_body(e)),
    }
}

/// A present, non-null field.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// An integer given as a JSON integer or a numeric string (the PHP client sends strings).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A bounded integer field: `not_number`, `too_small`, `too_large` are its three codes.
fn bounded<T>(
    body: &Map<String, Value>,
    name: &str,
    codes: (u32, u32, u32),
    messages: (&str, &str),
    make: impl Fn(i64) -> Result<T, BoundError>,
) -> Result<Option<T>, NativeError> {
    let Some(value) = field(body, name) else {
        return Ok(None);
    };
    let number = integer(value)
        .ok_or_else(|| invalid_param(codes.0, format!("The parameter '{name}' is not a number")))?;
    make(number).map(Some).map_err(|e| match e {
        BoundError::TooSmall => invalid_param(codes.1, messages.0),
        BoundError::TooLarge | BoundError::Invalid => invalid_param(codes.2, messages.1),
    })
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

/// Turns a `POST /otp` body into a core request, with SMS.CX's code for each mistake.
fn start_request(body: &Map<String, Value>) -> Result<StartRequest, NativeError> {
    let phone = field(body, "phoneNumber").or_else(|| field(body, "to"));
    let phone = match phone {
        None => {
            return Err(invalid_param(
                2001,
                "The parameter 'phoneNumber' is empty or not set",
            ));
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(invalid_param(
                2001,
                "The parameter 'phoneNumber' is empty or not set",
            ));
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid_param(2020, "The phone number provided is invalid")),
    };
    let country = match field(body, "countryIso") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(value) => Some(
            text(value)
                .and_then(|s| CountryIso::parse(s).ok())
                .ok_or_else(|| invalid_param(2003, "Country ISO provided is invalid"))?,
        ),
    };
    let from =
        match field(body, "from") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => {
                return Err(invalid_param(
                    2004,
                    "The parameter 'from' is empty or not set",
                ));
            }
            Some(value) => Some(text(value).and_then(|s| SenderId::new(s).ok()).ok_or_else(
                || {
                    invalid_param(
                        2005,
                        "The parameter 'from' is not valid: a name of 3 to 11 letters, digits and spaces, or a number (+ and up to 15 digits)",
                    )
                },
            )?),
        };
    let template = match field(body, "template") {
        None => None,
        Some(value) => match text(value) {
            Some(s) if !s.trim().is_empty() => Some(Template::new(s).map_err(|error| {
                invalid_param(
                    2006,
                    match error {
                        otpd_core::settings::TemplateError::TooLong => format!(
                            "The parameter 'template' is too long (at most {} characters and {} SMS parts)",
                            otpd_core::settings::TEMPLATE_MAX_CHARS,
                            otpd_core::settings::TEMPLATE_MAX_PARTS
                        ),
                        _ => "The parameter 'template' does not contain placeholder {{pin}}"
                            .to_string(),
                    },
                )
            })?),
            _ => {
                return Err(invalid_param(
                    2006,
                    "The parameter 'template' is empty or not set",
                ));
            }
        },
    };
    let ttl = bounded(
        body,
        "ttl",
        (2007, 2008, 2009),
        (
            "Min value for 'ttl' is 60 seconds",
            "Max value for 'ttl' is 1800 seconds (30 mins)",
        ),
        Ttl::new,
    )?;
    let max_attempts = bounded(
        body,
        "maxAttempts",
        (2010, 2011, 2012),
        (
            "Min value for 'maxAttempts' is 1",
            "Max value for 'maxAttempts' is 10",
        ),
        MaxAttempts::new,
    )?;
    let pin_type = match field(body, "pinType") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid_param(
                2013,
                "The parameter 'pinType' is empty or not set",
            ));
        }
        Some(value) => Some(text(value).and_then(PinType::parse).ok_or_else(|| {
            invalid_param(
                2014,
                "Invalid parameter 'pinType'. Must be one of: letters, numbers, alphanumeric",
            )
        })?),
    };
    let pin_length = bounded(
        body,
        "pinLength",
        (2015, 2016, 2017),
        (
            "Min value for 'pinLength' is 4",
            "Max value for 'pinLength' is 10",
        ),
        PinLength::new,
    )?;
    let track_id = match field(body, "trackId") {
        None => None,
        Some(value) => Some(text(value).and_then(parse_track_id).ok_or_else(|| {
            invalid_param(
                2018,
                "Track ID provided (parameter 'trackId') is not a valid UUID (v1-v5)",
            )
        })?),
    };
    let callback_url = match field(body, "otpCallbackUrl") {
        None => None,
        Some(value) => Some(text(value).and_then(parse_callback_url).ok_or_else(|| {
            invalid_param(2019, "The parameter 'otpCallbackUrl' is not a valid URL")
        })?),
    };
    let (phone, iso) = E164Phone::parse(phone, country).map_err(|e| match e {
        PhoneError::CountryMissing => invalid_param(
            2002,
            "The parameter 'countryIso' is empty or not set (required for a national-format 'phoneNumber')",
        ),
        PhoneError::InvalidCountry => invalid_param(2003, "Country ISO provided is invalid"),
        PhoneError::InvalidNumber => invalid_param(2020, "The phone number provided is invalid"),
    })?;
    // otpd extensions: the channel (SMS unless told) and the message language.
    let channel = match field(body, "channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match Channel::parse(name) {
            Some(channel @ (Channel::Sms | Channel::Whatsapp | Channel::Call)) => Some(channel),
            _ => {
                return Err(invalid_param(
                    1012,
                    "The parameter 'channel' must be sms, whatsapp or call",
                ));
            }
        },
        Some(_) => {
            return Err(invalid_param(
                1012,
                "The parameter 'channel' must be sms, whatsapp or call",
            ));
        }
    };
    let locale = match field(body, "locale") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) if otpd_core::messages::is_language_tag(tag) => Some(tag.clone()),
        Some(_) => {
            return Err(invalid_param(
                1013,
                "The parameter 'locale' must be a language tag such as fr or pt-BR",
            ));
        }
    };
    Ok(StartRequest {
        to: Some((Recipient::Phone(phone), Some(iso))),
        channel,
        locale,
        from,
        template,
        ttl,
        max_attempts,
        pin_type,
        pin_length,
        track_id,
        callback_url,
        ..StartRequest::default()
    })
}

/// Accepts any 8-4-4-4-12 hex UUID (the official examples use non-RFC version nibbles).
fn parse_track_id(text: &str) -> Option<Uuid> {
    let shaped = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    shaped.then(|| Uuid::try_parse(text).ok()).flatten()
}

/// `POST /otp`: generate a code, send it, answer 201 with the OTP object.
#[utoipa::path(
    post,
    path = "/otp",
    tag = "native",
    summary = "Start a verification: generate a code and send it",
    security(("bearerToken" = []), ("apiKey" = [])),
    request_body(content = NewOtpRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The verification, with its first send.", body = OtpObject),
        (status = 400, description = "`invalid_body` 1007 (not a JSON object), or `invalid_param` with the field's code: 2001–2020 (SMS.CX's), 1012 `channel`, 1013 `locale`, 1022 `deviceIp`, 1025 `channel` not available on this server, 1024 a malformed request.", body = ErrorBody),
        (status = 401, description = "`invalid_api_key` 1001: missing or invalid credentials.", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` 1002, `access_denied` 1005 (service deleted), or `destination_blocked`: 1018 (geo permissions or block list), 1019 (premium-rate number), 1020 (quarantined prefix).", body = ErrorBody),
        (status = 413, description = "`invalid_body` 1009: the body is too large.", body = ErrorBody),
        (status = 429, description = "`rate_limit`: 1011 send cooldown, 1014 destination, 1015 client address, 1016 country, 1017 wrong-PIN lockout, 1021 daily budget.", body = ErrorBody,
            headers(
                ("Retry-After" = u32, description = "Seconds until the request may succeed."),
                ("X-Rate-Limit-Limit" = u32, description = "The limit's maximum (not for 1011)."),
                ("X-Rate-Limit-Remaining" = u32, description = "Always 0 (not for 1011)."),
                ("X-Rate-Limit-Reset" = i64, description = "When the limit resets, Unix seconds (not for 1011)."),
            )),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn create<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    axum::Extension(client): axum::Extension<crate::ClientIp>,
    NativeCaller(caller): NativeCaller,
    body: Bytes,
) -> Result<Response, NativeError> {
    let body = json_object(&body)?;
    let mut request = start_request(&body)?;
    if let Some(url) = &request.callback_url {
        use otpd_core::outbound::Refusal;
        let checked = state.outbound.check_target(url).await.map_err(|refusal| {
            invalid_param(
                2019,
                match refusal {
                    Refusal::NotHttpUrl => "The parameter 'otpCallbackUrl' is not a valid URL",
                    Refusal::HttpsRequired => {
                        "The parameter 'otpCallbackUrl' must be an https URL on this server"
                    }
                    Refusal::PrivateAddress => {
                        "The parameter 'otpCallbackUrl' must point to a public address (private, loopback and link-local addresses are refused)"
                    }
                },
            )
        })?;
        request.callback_url = Some(checked);
    }
    // otpd extension: the end user's address, counted by the per-client limit instead of
    // the caller's (a backend calling otpd is one address for all its users).
    request.client_ip = match field(&body, "deviceIp") {
        None | Some(Value::Null) => client.text(),
        Some(Value::String(ip)) if ip.trim().parse::<std::net::IpAddr>().is_ok() => {
            Some(ip.trim().to_string())
        }
        Some(_) => {
            return Err(invalid_param(
                1022,
                "The parameter 'deviceIp' must be an IPv4 or IPv6 address",
            ));
        }
    };
    let service_id = caller.application.service_id;
    let service = state
        .verifier
        .manage()
        .service(service_id)
        .await
        .map_err(crate::internal)?
        .ok_or_else(error::service_deleted)?;
    let started = state
        .verifier
        .start(&service, request)
        .await
        .map_err(|e| start_error(e, state.verifier.clock().now().unix_seconds()))?;
    let verification = started.verification();
    let attempts = match started.known_attempts() {
        Some(attempts) => attempts,
        None => state
            .verifier
            .manage()
            .deliveries(verification.id)
            .await
            .map_err(crate::internal)?,
    };
    let object = OtpObject::new(verification, verification.status)
        .with_deliveries(verification.status, &attempts);
    let response = (StatusCode::CREATED, Json(object)).into_response();
    Ok(crate::LogNote::started("otp created", &started).on(response))
}

/// `GET /otp/{otpId}`: the OTP object with its current status.
#[utoipa::path(
    get,
    path = "/otp/{otpId}",
    tag = "native",
    summary = "Read a verification",
    description = "The OTP object with its status as of now: a pending verification past `dateExpires` reads `EXPIRED`.",
    security(("bearerToken" = []), ("apiKey" = [])),
    params(("otpId" = String, Path, description = "The verification's `otpId`.")),
    responses(
        (status = 200, description = "The verification.", body = OtpObject),
        (status = 401, description = "`invalid_api_key` 1001.", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` 1002, or `access_denied` 1003 (another application's).", body = ErrorBody),
        (status = 404, description = "`not_found` 2021: unknown or malformed id.", body = ErrorBody),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn read<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(id): Path<String>,
    NativeCaller(caller): NativeCaller,
) -> Result<Response, NativeError> {
    let id = otp_id(&id)?;
    match state
        .verifier
        .get(caller.application.service_id, id)
        .await
        .map_err(crate::internal)?
    {
        Lookup::Found(v) => {
            let attempts = state
                .verifier
                .manage()
                .deliveries(v.id)
                .await
                .map_err(crate::internal)?;
            let object = OtpObject::new(&v, v.status).with_deliveries(v.status, &attempts);
            Ok(Json(object).into_response())
        }
        Lookup::NotFound => Err(error::otp_not_found()),
        Lookup::WrongService => Err(error::wrong_tenant()),
    }
}

/// `POST /otp/{otpId}` with `{"pin": "…"}`: 200 `{"status":"VERIFIED"}` or an error body.
#[utoipa::path(
    post,
    path = "/otp/{otpId}",
    tag = "native",
    summary = "Check a PIN",
    security(("bearerToken" = []), ("apiKey" = [])),
    params(("otpId" = String, Path, description = "The verification's `otpId`.")),
    request_body(content = CheckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The right PIN, in time.", body = CheckResponse),
        (status = 400, description = "`invalid_body` 1007; `invalid_param` 2022 (no `pin`); `invalid_pin` 2029 (wrong, attempts left); `otp_failed` 2027 (wrong, last attempt) / 2026 (already failed); `otp_expired` 2028 (expired now) / 2025 (already expired); `otp_verified` 2023; `otp_cancelled` 2024.", body = ErrorBody),
        (status = 401, description = "`invalid_api_key` 1001.", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` 1002, or `access_denied` 1003 (another application's).", body = ErrorBody),
        (status = 404, description = "`not_found` 2021: unknown or malformed id.", body = ErrorBody),
        (status = 413, description = "`invalid_body` 1009: the body is too large.", body = ErrorBody),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn verify<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(id): Path<String>,
    NativeCaller(caller): NativeCaller,
    body: Bytes,
) -> Result<Response, NativeError> {
    let id = otp_id(&id)?;
    let body = json_object(&body)?;
    let pin = match field(&body, "pin") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid_param(2022, "The parameter pin is empty or not set")),
    };
    let result = state
        .verifier
        .check(caller.application.service_id, id, &pin, None, None)
        .await
        .map_err(crate::internal)?;
    let answer = match result.outcome {
        CheckOutcome::Approved => {
            Ok(Json(serde_json::json!({"status": "VERIFIED"})).into_response())
        }
        CheckOutcome::WrongCode => Err(error::otp_state(2029)),
        CheckOutcome::ExpiredNow => Err(error::otp_state(2028)),
        CheckOutcome::MaxAttemptsNow => Err(error::otp_state(2027)),
        CheckOutcome::AlreadyApproved => Err(error::otp_state(2023)),
        CheckOutcome::AlreadyCanceled => Err(error::otp_state(2024)),
        CheckOutcome::AlreadyExpired => Err(error::otp_state(2025)),
        CheckOutcome::AlreadyMaxAttempts => Err(error::otp_state(2026)),
        CheckOutcome::NotFound => Err(error::otp_not_found()),
        CheckOutcome::WrongService => Err(error::wrong_tenant()),
    };
    let note = crate::LogNote::checked("otp checked", id, result.outcome);
    Ok(note.on(answer.into_response()))
}

/// `DELETE /otp/{otpId}`: cancel a pending OTP, answering `{"info":{"id":…}}`.
#[utoipa::path(
    delete,
    path = "/otp/{otpId}",
    tag = "native",
    summary = "Cancel a pending verification",
    security(("bearerToken" = []), ("apiKey" = [])),
    params(("otpId" = String, Path, description = "The verification's `otpId`.")),
    responses(
        (status = 200, description = "Cancelled.", body = CancelResponse),
        (status = 401, description = "`invalid_api_key` 1001.", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` 1002; `access_denied` 1003 (another application's), 2030 (already cancelled), 2031 (verified, expired or failed).", body = ErrorBody),
        (status = 404, description = "`not_found` 2021: unknown or malformed id.", body = ErrorBody),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn cancel<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(id): Path<String>,
    NativeCaller(caller): NativeCaller,
) -> Result<Response, NativeError> {
    let id = otp_id(&id)?;
    let change = state
        .verifier
        .set_status(
            caller.application.service_id,
            id,
            VerificationStatus::Canceled,
        )
        .await
        .map_err(crate::internal)?;
    match change {
        StatusChange::Changed(_) => {
            tracing::info!(otp_id = %id, "otp canceled");
            Ok(Json(serde_json::json!({"info": {"id": id.to_string()}})).into_response())
        }
        StatusChange::NotPending(v) if v.status == VerificationStatus::Canceled => {
            Err(error::otp_state(2030))
        }
        StatusChange::NotPending(_) => Err(error::otp_state(2031)),
        StatusChange::NotFound => Err(error::otp_not_found()),
        StatusChange::WrongService => Err(error::wrong_tenant()),
    }
}

/// The native answer to a refused start.
fn start_error(error: otpd_core::StartError, now_unix: i64) -> NativeError {
    use otpd_core::StartError;
    use otpd_core::abuse::{Blocked, LimitScope};
    match error {
        StartError::Cooldown {
            retry_after_seconds,
        } => error::send_cooldown(retry_after_seconds),
        StartError::RateLimited {
            scope,
            limit,
            retry_after_seconds,
        } => {
            let (code, message) = match scope {
                LimitScope::Destination => (
                    1014,
                    "Too many codes were sent to this phone number; retry later",
                ),
                LimitScope::ClientIp => (
                    1015,
                    "Too many codes were requested from this address; retry later",
                ),
                LimitScope::Country | LimitScope::Programmable => (
                    1016,
                    "Too many codes were sent to this country; retry later",
                ),
            };
            error::rate_limited(code, message, limit, retry_after_seconds, now_unix)
        }
        StartError::LockedOut {
            retry_after_seconds,
        } => error::rate_limited(
            1017,
            "Too many wrong PINs were entered for this phone number; retry later",
            0,
            retry_after_seconds,
            now_unix,
        ),
        StartError::Blocked(Blocked::CostlyNumber) => error::destination_blocked(
            1019,
            "The phone number is premium-rate or shared-cost; this application does not send to such numbers",
        ),
        StartError::Quarantined(_) => error::destination_blocked(
            1020,
            "The phone number's prefix is quarantined by the SMS-pumping defence",
        ),
        StartError::BudgetExceeded { budget } => error::rate_limited(
            1021,
            &format!("The application's daily budget of {budget} is reached"),
            0,
            seconds_to_midnight(now_unix),
            now_unix,
        ),
        StartError::Blocked(Blocked::Country) => error::destination_blocked(
            1018,
            "This application does not send to the phone number's country",
        ),
        StartError::Blocked(_) => {
            error::destination_blocked(1018, "This application does not send to this phone number")
        }
        StartError::ChannelUnavailable(channel) => error::invalid_param(
            1025,
            format!(
                "The parameter 'channel': '{}' is not available on this server",
                channel.as_str()
            ),
        ),
        other => crate::internal(other),
    }
}

/// Seconds until the next UTC midnight, when daily budgets start over.
fn seconds_to_midnight(now_unix: i64) -> u32 {
    (86_400 - now_unix.rem_euclid(86_400)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(json: &str) -> u32 {
        let body = json_object(json.as_bytes()).unwrap();
        start_request(&body).err().map_or(0, |e| e.code)
    }

    #[test]
    fn each_mistake_has_its_documented_code() {
        let phone = r#""phoneNumber":"+33612345678""#;
        assert_eq!(codes("{}"), 2001);
        assert_eq!(codes(r#"{"phoneNumber":""}"#), 2001);
        assert_eq!(codes(r#"{"phoneNumber":"0612345678"}"#), 2002);
        assert_eq!(codes(&format!(r#"{{{phone},"countryIso":"UK"}}"#)), 2003);
        assert_eq!(codes(&format!(r#"{{{phone},"from":""}}"#)), 2004);
        assert_eq!(codes(&format!(r#"{{{phone},"from":"ab"}}"#)), 2005);
        assert_eq!(codes(&format!(r#"{{{phone},"template":""}}"#)), 2006);
        assert_eq!(codes(&format!(r#"{{{phone},"template":"no pin"}}"#)), 2006);
        assert_eq!(codes(&format!(r#"{{{phone},"ttl":"abc"}}"#)), 2007);
        assert_eq!(codes(&format!(r#"{{{phone},"ttl":59}}"#)), 2008);
        assert_eq!(codes(&format!(r#"{{{phone},"ttl":1801}}"#)), 2009);
        assert_eq!(codes(&format!(r#"{{{phone},"maxAttempts":true}}"#)), 2010);
        assert_eq!(codes(&format!(r#"{{{phone},"maxAttempts":0}}"#)), 2011);
        assert_eq!(codes(&format!(r#"{{{phone},"maxAttempts":11}}"#)), 2012);
        assert_eq!(codes(&format!(r#"{{{phone},"pinType":""}}"#)), 2013);
        assert_eq!(codes(&format!(r#"{{{phone},"pinType":"emoji"}}"#)), 2014);
        assert_eq!(codes(&format!(r#"{{{phone},"pinLength":1.5}}"#)), 2015);
        assert_eq!(codes(&format!(r#"{{{phone},"pinLength":3}}"#)), 2016);
        assert_eq!(codes(&format!(r#"{{{phone},"pinLength":11}}"#)), 2017);
        assert_eq!(codes(&format!(r#"{{{phone},"trackId":"nope"}}"#)), 2018);
        assert_eq!(
            codes(&format!(r#"{{{phone},"otpCallbackUrl":"ftp://x"}}"#)),
            2019
        );
        assert_eq!(codes(r#"{"phoneNumber":"+1234"}"#), 2020);
        assert_eq!(codes(r#"{"phoneNumber":12345}"#), 2020);
        assert_eq!(
            codes(&format!(
                r#"{{{phone},"ttl":"300","pinLength":"5","maxAttempts":"3"}}"#
            )),
            0
        );
    }

    #[test]
    fn track_ids_are_any_hex_uuid_shape() {
        assert!(parse_track_id("bf325375-e030-fccb-a009-17317c574773").is_some());
        assert!(parse_track_id("BF325375-E030-FCCB-A009-17317C574773").is_some());
        assert!(parse_track_id("bf325375e030fccba00917317c574773").is_none());
    }
}
