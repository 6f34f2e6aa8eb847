//! Every error the Twilio dialect answers, in Twilio's body
//! `{"code","message","more_info","status"}` (never with `type` + `title`, which would switch
//! the official SDKs to their RFC 9457 code path).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One Twilio API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioError {
    /// HTTP status.
    pub status: StatusCode,
    /// Twilio error code.
    pub code: u32,
    /// Seconds after which the request may succeed (sent as `Retry-After`).
    pub retry_after: Option<u32>,
    /// Human-readable text naming the parameter at fault.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
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

fn error(status: StatusCode, code: u32, message: impl Into<String>) -> TwilioError {
    TwilioError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// 401 20003: missing or wrong HTTP Basic credentials.
pub fn authenticate() -> TwilioError {
    error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
}

/// 404 20404 for `path`.
pub fn not_found(path: &str) -> TwilioError {
    error(
        StatusCode::NOT_FOUND,
        20404,
        format!("The requested resource {path} was not found"),
    )
}

/// 405 20004.
pub fn method_not_allowed() -> TwilioError {
    error(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
}

/// 400 20001: a required parameter is missing.
pub fn missing(name: &str) -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        20001,
        format!("Missing required parameter {name} in the post body"),
    )
}

/// 400 60200: a parameter has a bad value.
pub fn invalid(name: &str) -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        60200,
        format!("Invalid parameter: {name}"),
    )
}

/// 400 60200 with a reason.
pub fn invalid_because(name: &str, reason: &str) -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        60200,
        format!("Invalid parameter: {name}: {reason}"),
    )
}

/// 429 60202.
pub fn max_check_attempts() -> TwilioError {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        60202,
        "Max check attempts reached",
    )
}

/// 429 60203.
pub fn max_send_attempts() -> TwilioError {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        60203,
        "Max send attempts reached",
    )
}

/// 429 20429: the service's cooldown between sends to one destination has not passed.
pub fn send_cooldown(retry_after_seconds: u32) -> TwilioError {
    TwilioError {
        retry_after: Some(retry_after_seconds),
        ..error(
            StatusCode::TOO_MANY_REQUESTS,
            20429,
            format!(
                "Too many requests: wait {retry_after_seconds} seconds before sending another code to this destination"
            ),
        )
    }
}

/// 429 `code` (60203 for a destination, 20429 otherwise) for a start refused by a rate
/// limit or the wrong-code lockout.
pub fn rate_limited(code: u32, message: &str, retry_after_seconds: u32) -> TwilioError {
    TwilioError {
        retry_after: Some(retry_after_seconds),
        ..error(StatusCode::TOO_MANY_REQUESTS, code, message)
    }
}

/// 403 `code`: the destination may not receive codes (60605 geo permissions or block list,
/// 60410 premium-rate number, 60205 landline with `SkipSmsToLandlines`).
pub fn blocked(code: u32, message: &str) -> TwilioError {
    error(StatusCode::FORBIDDEN, code, message)
}

/// 400 60210: the rate limit already has the most buckets allowed.
pub fn max_buckets() -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        60210,
        "Max Buckets per Rate limit reached",
    )
}

/// 403 60204.
pub fn custom_code_not_allowed() -> TwilioError {
    error(StatusCode::FORBIDDEN, 60204, "Custom code not allowed")
}

/// 400 60221.
pub fn no_target() -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        60221,
        "No target verification specified",
    )
}

/// 400 60223.
pub fn channel_disabled(channel: &str) -> TwilioError {
    error(
        StatusCode::BAD_REQUEST,
        60223,
        format!("Delivery channel disabled: '{channel}' is not available on this server"),
    )
}

/// 500 20500: logged with its cause, never detailed to the client; 503 20503 when the
/// database is unreachable for now.
pub fn internal<E: std::fmt::Display + 'static>(cause: E) -> TwilioError {
    if crate::is_unavailable(&cause) {
        tracing::warn!(error = %cause, "database unavailable");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service Unavailable: the database is unreachable; retry shortly",
        );
    }
    tracing::error!(error = %cause, "internal error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        20500,
        "Internal Server Error",
    )
}

/// 413: body too large.
pub fn too_large() -> TwilioError {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        20413,
        "Request body too large",
    )
}

/// 408: the body did not arrive in time.
pub fn timeout() -> TwilioError {
    error(
        StatusCode::REQUEST_TIMEOUT,
        20408,
        "Request body did not arrive in time",
    )
}

/// A 4xx chosen below the handlers (a path that is not UTF-8, a broken chunked body, …).
pub fn bad_request(status: StatusCode) -> TwilioError {
    error(
        status,
        20001,
        format!(
            "Invalid request ({})",
            status.canonical_reason().unwrap_or("client error")
        ),
    )
}
