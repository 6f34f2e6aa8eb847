//! The otpd-native dialect: wire-compatible with the SMS.CX OTP API.

pub mod error;
pub mod otp;
pub mod token;
pub mod wire;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use otpd_core::auth::Caller;
use otpd_core::{Clock, Store};

use crate::{AppState, internal};
use error::NativeError;

/// The native routes. Every path answers unsupported methods with the JSON 405 body.
pub fn router<S: Store + Clone, C: Clock + Clone>() -> Router<AppState<S, C>> {
    Router::new()
        .route(
            "/oauth/token",
            post(token::issue::<S, C>).fallback(crate::method_not_allowed),
        )
        .route(
            "/oauth/revoke",
            post(token::revoke::<S, C>).fallback(crate::method_not_allowed),
        )
        .route(
            "/otp",
            post(otp::create::<S, C>).fallback(crate::method_not_allowed),
        )
        .route(
            "/otp/{otp_id}",
            get(otp::read::<S, C>)
                .post(otp::verify::<S, C>)
                .delete(otp::cancel::<S, C>)
                .fallback(crate::method_not_allowed),
        )
}

/// The authenticated caller of a native request: a valid `X-API-KEY` or bearer token (either
/// is enough when a client sends both) holding the `otp` scope. A handler that takes it cannot
/// run unauthenticated; the rejection is the native error (401 `invalid_credentials`, 403
/// `insufficient_scope`, 500/503).
#[derive(Debug, Clone)]
pub struct NativeCaller(pub Caller);

impl<S: Store + Clone, C: Clock + Clone> FromRequestParts<AppState<S, C>> for NativeCaller {
    type Rejection = NativeError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok())
            && let Some(caller) = state
                .auth
                .authenticate_api_key(key.trim())
                .await
                .map_err(internal)?
        {
            return Ok(NativeCaller(caller));
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = bearer else {
            return Err(error::invalid_credentials());
        };
        let caller = state
            .auth
            .authenticate_bearer(token)
            .await
            .map_err(internal)?
            .ok_or_else(error::invalid_credentials)?;
        if !caller.grants("otp") {
            return Err(error::insufficient_scope());
        }
        Ok(NativeCaller(caller))
    }
}
