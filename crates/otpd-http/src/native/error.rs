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
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
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

/// 429 1011 `too_many_requests`: the service's cooldown between sends to one destination has
/// not passed.
pub fn send_cooldown(retry_after_seconds: u32) -> NativeError {
    NativeError {
        retry_after: Some(retry_after_seconds),
        ..error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            1011,
            format!(
                "A code was sent to this destination too recently; retry in {retry_after_seconds} seconds"
            ),
        )
    }
}
