//! The Twilio Verify v2 dialect: `/v2/Services`, `Verifications`, `VerificationCheck`, with
//! form-encoded PascalCase parameters, HTTP Basic (`AC…` + auth token or `SK…` + secret) and
//! Twilio's JSON and error shapes, so the official SDKs work by changing only the base URL.

pub mod attempts;
pub mod error;
pub mod form;
pub mod rate_limits;
pub mod safe_list;
pub mod services;
pub mod verifications;
pub mod webhooks;
pub mod wire;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::routing::{get, post};
use base64::Engine;
use otpd_core::audit::{ActedBy, Actor};
use otpd_core::store::ServiceRecord;
use otpd_core::{AccountId, ApiKeyId, Clock, ServiceId, Store};

use crate::AppState;
use error::TwilioError;

/// The routes, mounted under `/v2`.
pub fn router<S: Store + Clone, C: Clock + Clone>() -> Router<AppState<S, C>> {
    Router::new()
        .route(
            "/Services",
            post(services::create::<S, C>)
                .get(services::list::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}",
            get(services::fetch::<S, C>)
                .post(services::update::<S, C>)
                .delete(services::delete::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/Verifications",
            post(verifications::start::<S, C>).fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/Verifications/{sid}",
            get(verifications::fetch::<S, C>)
                .post(verifications::update::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Attempts",
            get(attempts::list::<S, C>).fallback(method_not_allowed),
        )
        .route(
            "/Attempts/Summary",
            get(attempts::summary::<S, C>).fallback(method_not_allowed),
        )
        .route(
            "/Attempts/{sid}",
            get(attempts::fetch::<S, C>).fallback(method_not_allowed),
        )
        .route(
            "/SafeList/Numbers",
            post(safe_list::add::<S, C>).fallback(method_not_allowed),
        )
        .route(
            "/SafeList/Numbers/{number}",
            get(safe_list::fetch::<S, C>)
                .delete(safe_list::remove::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/RateLimits",
            post(rate_limits::create::<S, C>)
                .get(rate_limits::list::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/RateLimits/{limit}",
            get(rate_limits::fetch::<S, C>)
                .post(rate_limits::update::<S, C>)
                .delete(rate_limits::delete::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/RateLimits/{limit}/Buckets",
            post(rate_limits::create_bucket::<S, C>)
                .get(rate_limits::list_buckets::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/RateLimits/{limit}/Buckets/{bucket}",
            get(rate_limits::fetch_bucket::<S, C>)
                .post(rate_limits::update_bucket::<S, C>)
                .delete(rate_limits::delete_bucket::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/Webhooks",
            post(webhooks::create::<S, C>)
                .get(webhooks::list::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/Webhooks/{webhook}",
            get(webhooks::fetch::<S, C>)
                .post(webhooks::update::<S, C>)
                .delete(webhooks::delete::<S, C>)
                .fallback(method_not_allowed),
        )
        .route(
            "/Services/{service}/VerificationCheck",
            post(verifications::check::<S, C>).fallback(method_not_allowed),
        )
        .fallback(not_found)
}

async fn method_not_allowed() -> TwilioError {
    error::method_not_allowed()
}

async fn not_found(uri: axum::http::Uri) -> TwilioError {
    error::not_found(uri.path())
}

/// The base URL resources link to: the configured public URL; else `http://` + the
/// request's `Host` when it names this server (its listen address, a configured host or a
/// loopback name), so a forged `Host` cannot put another site into paging links; else the
/// listen address.
pub(crate) fn base_url<S, C>(state: &AppState<S, C>, headers: &HeaderMap) -> String {
    if let Some(base) = &state.public_base_url {
        return base.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let known = host.is_some_and(|host| {
        crate::dev::loopback_host(headers)
            || state
                .link_hosts
                .iter()
                .any(|known| known.eq_ignore_ascii_case(host))
    });
    match host {
        Some(host) if known => format!("http://{host}"),
        _ => format!(
            "http://{}",
            state.link_hosts.first().map_or("localhost", String::as_str)
        ),
    }
}

/// The account behind a request's HTTP Basic credentials: `AC…` + auth token, or an API key
/// `SK…` + secret acting for it. A handler that takes it cannot run unauthenticated; the
/// rejection is Twilio's 401 20003 (or 500/503 when the store fails).
#[derive(Debug, Clone, Copy)]
pub struct TwilioAccount(pub AccountId);

impl<S: Store + Clone, C: Clock + Clone> FromRequestParts<AppState<S, C>> for TwilioAccount {
    type Rejection = TwilioError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<Authenticated>() {
            return Ok(TwilioAccount(known.account));
        }
        let credentials = basic_credentials(&parts.headers);
        let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(error::authenticate());
        };
        let account = state
            .auth
            .authenticate_account(user, password)
            .await
            .map_err(error::internal)?
            .ok_or_else(error::authenticate)?;
        let actor = match user
            .strip_prefix("SK")
            .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        {
            Some(key) => Actor::ApiKey(ApiKeyId::from_uuid(key)),
            None => Actor::Account(account),
        };
        parts.extensions.insert(Authenticated { account, actor });
        Ok(TwilioAccount(account))
    }
}

/// Who a request authenticated as, kept in its extensions by [`TwilioAccount`] so that the
/// other extractors of the same request ([`Acting`]) do not authenticate it again.
#[derive(Debug, Clone)]
struct Authenticated {
    account: AccountId,
    actor: Actor,
}

/// Who is making an audited change and from where: the account itself (`AC…` + auth token)
/// or one of its API keys (`SK…`), and the client address. Authenticates like
/// [`TwilioAccount`] (once per request, whichever runs first).
#[derive(Debug, Clone)]
pub struct Acting(pub ActedBy);

impl<S: Store + Clone, C: Clock + Clone> FromRequestParts<AppState<S, C>> for Acting {
    type Rejection = TwilioError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        TwilioAccount::from_request_parts(parts, state).await?;
        let actor = parts
            .extensions
            .get::<Authenticated>()
            .map(|known| known.actor.clone())
            .ok_or_else(error::authenticate)?;
        let source = parts
            .extensions
            .get::<crate::ClientIp>()
            .and_then(crate::ClientIp::text);
        Ok(Acting(ActedBy { actor, source }))
    }
}

/// The decoded `user:password` of an HTTP Basic `Authorization` header, if there is one.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// The service `sid` (a `VA…` path segment) if `account` owns it; anything else (a malformed
/// SID, an unknown service, another account's) is 404 20404 for `path`.
pub(crate) async fn owned_service<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    account: AccountId,
    sid: &str,
    path: &str,
) -> Result<ServiceRecord, TwilioError> {
    let id = form::sid_uuid(sid, "VA")
        .map(ServiceId::from_uuid)
        .ok_or_else(|| error::not_found(path))?;
    state
        .verifier
        .manage()
        .owned_service(account, id)
        .await
        .map_err(error::internal)?
        .ok_or_else(|| error::not_found(path))
}
