//! `POST /oauth/token` (OAuth2 client credentials with HTTP Basic) and `POST /oauth/revoke`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use otpd_core::auth::TokenError;
use otpd_core::{Clock, Store};
use serde::Serialize;

use super::error::{ErrorBody, NativeError, token_error};
use crate::AppState;

/// An access token (OAuth2 client credentials).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The bearer token to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Seconds the token is valid.
    #[schema(example = 86400)]
    expires_in: i64,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// The scopes granted, space-separated (`otp`).
    #[schema(example = "otp")]
    scope: String,
}

/// The token request (form-encoded), authenticated with HTTP Basic: the application id and
/// its secret.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: String,
    /// Space-separated scopes; `otp` is the only one.
    #[schema(example = "otp")]
    scope: Option<String>,
}

/// The revocation request (form-encoded), authenticated with the same HTTP Basic credentials.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RevokeRequest {
    /// The access token to revoke.
    token: String,
}

/// The revocation answer.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RevokeResponse {
    /// Whether a live token of this application was revoked (`false`: unknown, expired,
    /// or another application's).
    revoked: bool,
}

fn invalid_client() -> NativeError {
    token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client")
}

/// The `application id : secret` pair of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn form_value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Issues a bearer token for a valid application id + secret.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "native",
    summary = "Issue an access token (OAuth2 client credentials)",
    description = "HTTP Basic with the application id and secret; form fields `grant_type=client_credentials` and `scope=otp`. Errors all have code 1600.",
    security(("applicationBasic" = [])),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The access token.", body = TokenResponse),
        (status = 400, description = "`invalid_request` (no `grant_type`), `unsupported_grant_type`, `invalid_scope` (code 1600).", body = ErrorBody),
        (status = 401, description = "`invalid_client`: missing or wrong Basic credentials (code 1600).", body = ErrorBody),
        (status = 413, description = "`invalid_body` 1009: the body is too large.", body = ErrorBody),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn issue<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NativeError> {
    let fields = form(&body);
    let grant = form_value(&fields, "grant_type")
        .filter(|g| !g.is_empty())
        .ok_or_else(|| {
            token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is missing a required parameter (grant_type)",
            )
        })?;
    if grant != "client_credentials" {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant type is not supported (only client_credentials)",
        ));
    }
    let (id, secret) = basic_credentials(&headers).ok_or_else(invalid_client)?;
    let scope = form_value(&fields, "scope").unwrap_or("");
    match state.auth.issue_token(&id, &secret, scope).await {
        Ok(token) => Ok(Json(TokenResponse {
            access_token: token.token,
            expires_in: token.expires_in,
            token_type: "Bearer",
            scope: token.scope,
        })
        .into_response()),
        Err(TokenError::InvalidClient) => Err(invalid_client()),
        Err(TokenError::InvalidScope) => Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed",
        )),
        Err(TokenError::Store(e)) => Err(crate::internal(e)),
    }
}

/// Revokes a token (RFC 7009 style): authenticated with the same Basic credentials, form
/// field `token`. Answers 200 `{"revoked": true|false}`.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "native",
    summary = "Revoke an access token (otpd extension)",
    description = "HTTP Basic with the application id and secret; form field `token`.",
    security(("applicationBasic" = [])),
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Whether a token was revoked.", body = RevokeResponse),
        (status = 400, description = "`invalid_request`: no `token` (code 1600).", body = ErrorBody),
        (status = 401, description = "`invalid_client`: missing or wrong Basic credentials (code 1600).", body = ErrorBody),
        (status = 413, description = "`invalid_body` 1009: the body is too large.", body = ErrorBody),
        (status = 500, description = "`server_error` 1006.", body = ErrorBody),
        (status = 503, description = "`server_error` 1010: the database is unavailable.", body = ErrorBody),
    )
)]
pub async fn revoke<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NativeError> {
    let (id, secret) = basic_credentials(&headers).ok_or_else(invalid_client)?;
    let application = state
        .auth
        .verify_client(&id, &secret)
        .await
        .map_err(crate::internal)?
        .ok_or_else(invalid_client)?;
    let fields = form(&body);
    let token = form_value(&fields, "token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is missing a required parameter (token)",
            )
        })?;
    let revoked = state
        .auth
        .revoke_token(&application, token)
        .await
        .map_err(crate::internal)?;
    Ok(Json(serde_json::json!({ "revoked": revoked })).into_response())
}
