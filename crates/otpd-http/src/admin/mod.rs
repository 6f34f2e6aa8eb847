//! The admin API (`/admin/v1`): JSON, HTTP Basic with an account's SID and auth token (the
//! Twilio credentials), errors in the Twilio shape. It lists and lifts SMS-pumping
//! quarantines and reads and changes a service's protection settings (geo permissions,
//! block and safe lists, costly numbers, daily budget). Credential routes (auth token, API
//! keys) are in `keys`; the audit log of every change is in `audit`; a destination's export
//! and erasure in `destinations`.

pub mod audit;
pub mod destinations;
pub mod events;
pub mod keys;
pub mod protection;
pub mod quarantines;
pub mod report;
pub mod schemas;
pub mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{delete, get};
use otpd_core::{AccountId, Clock, Store};
use serde_json::{Map, Value};

use crate::AppState;
use crate::twilio::TwilioAccount;
use crate::twilio::error::{self, TwilioError};

/// The admin routes.
pub fn router<S: Store + Clone, C: Clock + Clone>() -> Router<AppState<S, C>> {
    Router::new()
        .route("/quarantines", get(quarantines::quarantines::<S, C>))
        .route("/quarantines/{prefix}", delete(quarantines::lift::<S, C>))
        .route("/events", get(events::events::<S, C>))
        .route("/audit", get(audit::audit::<S, C>))
        .route(
            "/destinations/{to}",
            get(destinations::export::<S, C>).delete(destinations::erase::<S, C>),
        )
        .route("/report", get(report::report::<S, C>))
        .route(
            "/services/{sid}/webhooks",
            get(webhooks::list_webhooks::<S, C>).post(webhooks::create_webhook::<S, C>),
        )
        .route(
            "/services/{sid}/webhooks/{id}",
            delete(webhooks::delete_webhook::<S, C>),
        )
        .route(
            "/services/{sid}/webhooks/{id}/deliveries",
            get(webhooks::webhook_deliveries::<S, C>),
        )
        .route(
            "/services/{sid}/protection",
            get(protection::protection::<S, C>).put(protection::update_protection::<S, C>),
        )
        .merge(keys::router::<S, C>())
}

/// The account calling an admin route, by the same HTTP Basic credentials as the Twilio
/// dialect (`AC…` + auth token, or an `SK…` API key acting for it); the rejection is Twilio's
/// 401 20003. The credential routes take [`keys::AccountOwner`] instead, which refuses keys.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccount(pub AccountId);

impl<S: Store + Clone, C: Clock + Clone> FromRequestParts<AppState<S, C>> for AdminAccount {
    type Rejection = TwilioError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        let TwilioAccount(account) = TwilioAccount::from_request_parts(parts, state).await?;
        Ok(AdminAccount(account))
    }
}

/// The array of strings `fields[name]`, if present (400 60200 naming `name` otherwise).
pub(super) fn strings(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, TwilioError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| error::invalid_because(name, "expected an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(error::invalid_because(name, "expected an array of strings")),
    }
}
