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

use super::error::{NativeError, token_error};
use crate::AppState;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    token_type: &'static str,
    scope: String,
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
