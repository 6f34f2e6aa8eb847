//! The admin API's credential routes (`/admin/v1/account/token`, `/admin/v1/keys`): an account
//! rotates its auth token, lists its Twilio-style API keys (`SK…`) and revokes them. Only the
//! account's own SID and auth token may call them: an API key acting for the account must not
//! be able to mint the account's token or revoke its sibling keys.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use otpd_core::{AccountId, ApiKeyId, Clock, Store};
use serde_json::json;

use super::schemas::{AdminError, ApiKeyList, RotatedToken};
use crate::AppState;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::{Acting, TwilioAccount, basic_credentials, form::sid_uuid};

/// The credential routes, merged into the admin router.
pub fn router<S: Store + Clone, C: Clock + Clone>() -> Router<AppState<S, C>> {
    Router::new()
        .route("/account/token", post(rotate_token::<S, C>))
        .route("/keys", get(list_keys::<S, C>))
        .route("/keys/{sid}", delete(revoke_key::<S, C>))
}

/// The account calling a credential route with its own SID and auth token (`AC…`); any
/// other credential, an `SK…` API key acting for the account too, is 401 20003.
#[derive(Debug, Clone, Copy)]
pub struct AccountOwner(pub AccountId);

impl<S: Store + Clone, C: Clock + Clone> FromRequestParts<AppState<S, C>> for AccountOwner {
    type Rejection = TwilioError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        if !basic_credentials(&parts.headers).is_some_and(|c| c.starts_with("AC")) {
            return Err(error::authenticate());
        }
        let TwilioAccount(account) = TwilioAccount::from_request_parts(parts, state).await?;
        Ok(AccountOwner(account))
    }
}

/// `POST /admin/v1/account/token`: a new auth token for the caller's account (201), shown
/// once; the old one stops working at once on every node.
#[utoipa::path(
    post,
    path = "/admin/v1/account/token",
    tag = "admin",
    summary = "Rotate the account's auth token",
    description = "Authenticate with the Account SID and the current auth token (an API key is refused). The new token is shown only in this answer; the old one is refused (401 20003) from now on.",
    security(("accountBasic" = [])),
    responses(
        (status = 201, description = "The new auth token.", body = RotatedToken),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials, or an API key.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn rotate_token<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    AccountOwner(account): AccountOwner,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let sid = format!("AC{}", account.simple());
    let token = state
        .auth
        .rotate_auth_token(account)
        .await
        .map_err(error::internal)?
        .ok_or_else(|| error::internal("the authenticated account has no row to rotate"))?;
    tracing::warn!(account = %sid, "auth token rotated through the admin API");
    let summary = json!({"changed": "the auth token"});
    super::audit::record(&state, &by, account, "account.rotate_token", &sid, summary).await?;
    let body = json!({ "accountSid": sid, "authToken": token });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /admin/v1/keys`: the caller's API keys, oldest first, never their secrets.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    summary = "List the account's API keys",
    description = "Authenticate with the Account SID and auth token (an API key is refused). Secrets are never shown: they are stored hashed.",
    security(("accountBasic" = [])),
    responses(
        (status = 200, description = "The keys, oldest first.", body = ApiKeyList),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials, or an API key.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn list_keys<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    AccountOwner(account): AccountOwner,
) -> Result<Response, TwilioError> {
    let keys = state
        .verifier
        .manage()
        .api_keys(account)
        .await
        .map_err(error::internal)?;
    let items: Vec<_> = keys
        .iter()
        .map(|key| {
            json!({
                "sid": format!("SK{}", key.id.simple()),
                "friendlyName": key.name,
                "createdAt": crate::twilio::wire::date(key.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "keys": items })).into_response())
}

/// `DELETE /admin/v1/keys/{sid}`: revokes one of the caller's API keys (204); it stops
/// working at once on every node. Another account's or an unknown key is 404 20404.
#[utoipa::path(
    delete,
    path = "/admin/v1/keys/{sid}",
    tag = "admin",
    summary = "Revoke an API key",
    description = "Authenticate with the Account SID and auth token (an API key is refused).",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "`SK…`")),
    responses(
        (status = 204, description = "Revoked: the key is refused (401 20003) from now on."),
        (status = 404, description = "20404: the account has no such key.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials, or an API key.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn revoke_key<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    AccountOwner(account): AccountOwner,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/keys/{sid}");
    let Some(key) = sid_uuid(&sid, "SK").map(ApiKeyId::from_uuid) else {
        return Err(error::not_found(&path));
    };
    if !state
        .auth
        .revoke_api_key(account, key)
        .await
        .map_err(error::internal)?
    {
        return Err(error::not_found(&path));
    }
    tracing::warn!(key = %sid, "API key revoked through the admin API");
    let summary = json!({"before": {"status": "active"}, "after": {"status": "revoked"}});
    super::audit::record(&state, &by, account, "api_key.revoke", &sid, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
