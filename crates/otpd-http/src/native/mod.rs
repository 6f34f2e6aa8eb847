//! The otpd-native dialect: wire-compatible with the SMS.CX OTP API.

pub mod error;
pub mod otp;
pub mod token;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};
use otpd_core::{Clock, Store};

use crate::AppState;

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
