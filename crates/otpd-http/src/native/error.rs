//! Every error the native dialect can answer, in the SMS.CX error body
//! `{"error":{"type","message","uri","code"}}`. Codes 2001–2031 and 1600 are SMS.CX's own;
//! 1001–1008 are otpd's choices for the cases SMS.CX leaves undocumented.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Where the documentation of errors lives (a URI reference into this repository's docs).
pub const ERRORS_URI: &str = "docs/api-native.md#errors";

/// One native API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    /// HTTP status.
    pub status: StatusCode,
    /// The machine-readable class (`invalid_param`, `otp_expired`, …).
    pub kind: &'static str,
    /// The numeric code.
    pub code: u32,
    /// Seconds after which the request may succeed (sent as `Retry-After`).
    pub retry_after: Option<u32>,
    /// For a rate limit: its maximum and when it resets (Unix seconds), sent as SMS.CX's
    /// `X-Rate-Limit-Limit`, `-Remaining` (0) and `-Reset`.
    pub rate_limit: Option<(u32, i64)>,
    /// Human-readable text naming the field at fault.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    r#type: &'a str,
    message: &'a str,
    uri: &'a str,
    code: u32,
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                r#type: self.kind,
                message: &self.message,
                uri: ERRORS_URI,
                code: self.code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if let Some((limit, reset)) = self.rate_limit {
            headers.insert("x-rate-limit-limit", limit.into());
            headers.insert("x-rate-limit-remaining", 0u32.into());
            headers.insert("x-rate-limit-reset", reset.into());
        }
        response
    }
}

fn error(
    status: StatusCode,
    kind: &'static str,
    code: u32,
    message: impl Into<String>,
) -> NativeError {
    NativeError {
        status,
        kind,
        code,
        message: message.into(),
        retry_after: None,
        rate_limit: None,
    }
}

/// A 400 `invalid_param` with one of the documented codes.
pub fn invalid_param(code: u32, message: impl Into<String>) -> NativeError {
    error(StatusCode::BAD_REQUEST, "invalid_param", code, message)
}

/// 401: no valid API key or bearer token.
pub fn invalid_credentials() -> NativeError {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        1001,
        "Missing or invalid credentials: send 'X-API-KEY: <key>' or 'Authorization: Bearer <access_token>'",
    )
}

/// 403: the token lacks the `otp` scope.
pub fn insufficient_scope() -> NativeError {
    error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        1002,
        "The access token does not have the 'otp' scope",
    )
}

/// 403: the OTP belongs to another application.
pub fn wrong_tenant() -> NativeError {
    error(
        StatusCode::FORBIDDEN,
        "access_denied",
        1003,
        "The Otp ID belongs to another application",
    )
}

/// 403: the application's service was deleted (through the Twilio API).
pub fn service_deleted() -> NativeError {
    error(
        StatusCode::FORBIDDEN,
        "access_denied",
        1005,
        "The application's service was deleted",
    )
}

/// 405 for a path that exists with other methods.
pub fn method_not_allowed() -> NativeError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_method",
        1004,
        "Method not allowed on this path",
    )
}

/// 500: logged with its cause, never detailed to the client.
pub fn server_error() -> NativeError {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        1006,
        "Internal server error",
    )
}

/// 503: the database is unreachable for now.
pub fn unavailable() -> NativeError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        1010,
        "The database is unavailable; retry shortly",
    )
}

/// 400: the body is not the JSON object the endpoint expects.
pub fn invalid_body(detail: impl std::fmt::Display) -> NativeError {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        1007,
        format!("The request body is not a valid JSON object: {detail}"),
    )
}

/// 404 for a path that does not exist.
pub fn no_such_path() -> NativeError {
    error(StatusCode::NOT_FOUND, "not_found", 1008, "No such endpoint")
}

/// 413: the body is larger than the server accepts.
pub fn body_too_large() -> NativeError {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_body",
        1009,
        "The request body is too large",
    )
}

/// 408: the body did not arrive in time.
pub fn timeout() -> NativeError {
    error(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        1023,
        "The request body did not arrive in time",
    )
}

/// A 4xx chosen below the handlers (a path that is not UTF-8, a broken chunked body, …).
pub fn bad_request(status: StatusCode) -> NativeError {
    error(
        status,
        "invalid_request",
        1024,
        format!(
            "The request is malformed ({})",
            status.canonical_reason().unwrap_or("client error")
        ),
    )
}

/// 404 2021.
pub fn otp_not_found() -> NativeError {
    error(StatusCode::NOT_FOUND, "not_found", 2021, "Otp ID not found")
}

/// Token endpoint errors, all code 1600.
pub fn token_error(status: StatusCode, kind: &'static str, message: &str) -> NativeError {
    error(status, kind, 1600, message)
}

/// The check and cancel outcomes that are errors, by SMS.CX code.
pub fn otp_state(code: u32) -> NativeError {
    let bad = StatusCode::BAD_REQUEST;
    let forbidden = StatusCode::FORBIDDEN;
    match code {
        2023 => error(bad, "otp_verified", 2023, "The OTP was already verified"),
        2024 => error(bad, "otp_cancelled", 2024, "The OTP was canceled"),
        2025 => error(bad, "otp_expired", 2025, "The OTP has expired"),
        2026 => error(
            bad,
            "otp_failed",
            2026,
            "The OTP has failed, maximum attempts reached",
        ),
        2027 => error(bad, "otp_failed", 2027, "Max attempts reached"),
        2028 => error(bad, "otp_expired", 2028, "The PIN has expired"),
        2029 => error(bad, "invalid_pin", 2029, "The PIN provided does not verify"),
        2030 => error(forbidden, "access_denied", 2030, "Otp already cancelled"),
        _ => error(
            forbidden,
            "access_denied",
            2031,
            "You cannot cancel a non-pending Otp",
        ),
    }
}

/// 429 1026 `rate_limit`: this client address failed to authenticate too often.
pub fn auth_throttled(retry_after_seconds: u32) -> NativeError {
    NativeError {
        retry_after: Some(retry_after_seconds),
        ..error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            1026,
            format!(
                "Too many failed authentications from this address; retry in {retry_after_seconds} seconds"
            ),
        )
    }
}

/// 429 1011 `rate_limit`: the service's cooldown between sends to one destination has
/// not passed.
pub fn send_cooldown(retry_after_seconds: u32) -> NativeError {
    NativeError {
        retry_after: Some(retry_after_seconds),
        ..error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            1011,
            format!(
                "A code was sent to this destination too recently; retry in {retry_after_seconds} seconds"
            ),
        )
    }
}

/// 429 `rate_limit` for a start refused by a rate limit (1014 destination, 1015 client
/// address, 1016 country) or the wrong-code lockout (1017), with `Retry-After` and the SMS.CX
/// rate-limit headers.
pub fn rate_limited(
    code: u32,
    message: &str,
    limit: u32,
    retry_after: u32,
    now_unix: i64,
) -> NativeError {
    NativeError {
        retry_after: Some(retry_after),
        rate_limit: Some((limit, now_unix + i64::from(retry_after))),
        ..error(StatusCode::TOO_MANY_REQUESTS, "rate_limit", code, message)
    }
}

/// 403 `destination_blocked`: the application may not send to this number (1018: geo
/// permissions or block list; 1019: a premium-rate or shared-cost number).
pub fn destination_blocked(code: u32, message: &str) -> NativeError {
    error(StatusCode::FORBIDDEN, "destination_blocked", code, message)
}

/// The native error body: what every native error answers.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// The error.
    error: ErrorDetail,
}

/// One error: its class, text, documentation link and numeric code (see
/// `docs/api-native.md#errors`).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The machine-readable class: `invalid_param`, `invalid_body`, `invalid_api_key`,
    /// `insufficient_scope`, `access_denied`, `not_found`, `rate_limit`,
    /// `destination_blocked`, `otp_verified`, `otp_cancelled`, `otp_expired`, `otp_failed`,
    /// `invalid_pin`, `server_error`, or an OAuth2 error on the token endpoints
    /// (`invalid_request`, `invalid_client`, `invalid_scope`, `unsupported_grant_type`).
    #[serde(rename = "type")]
    #[schema(example = "invalid_param")]
    kind: String,
    /// Human-readable text naming the field at fault.
    message: String,
    /// Where the codes are documented.
    #[schema(example = "docs/api-native.md#errors")]
    uri: String,
    /// The numeric code: SMS.CX's 2001–2031 and 1600, otpd's 1001–1022.
    #[schema(example = 2001)]
    code: u32,
}
