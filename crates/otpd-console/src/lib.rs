//! The operators' console at `/console/`: server-rendered pages over the core's management
//! operations, for the people who run otpd (support, operations, fraud). It knows nothing of
//! SQL or of the API dialects; sign-in, sessions and roles come from
//! [`otpd_core::operators`], every change goes to the audit log as the operator's.

mod chart;
mod error;
mod explain;
mod fraud;
mod insights;
mod keys;
mod login;
mod numbers;
mod render;
mod reports;
mod services;
mod session;
mod verifications;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use otpd_core::auth::Authenticator;
use otpd_core::operators::{Operators, PasswordWork, hash_password, verify_password};
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, Secret, Store, Verifier};

pub use error::ConsoleError;

/// Everything the console's handlers share.
pub struct ConsoleParts<S, C> {
    pub verifier: Arc<Verifier<S, C>>,
    pub auth: Arc<Authenticator<S, C>>,
    pub operators: Arc<Operators<S, C>>,
    /// Shows the dev-mode banner on every page.
    pub dev_mode: bool,
    /// Marks the session cookie `Secure` (the console is reached over https).
    pub secure_cookies: bool,
    /// Runs argon2id off the request workers, a few at a time.
    pub passwords: Passwords,
}

/// The console's state: one shared [`ConsoleParts`] and the reports computed so far.
pub struct ConsoleState<S, C>(Arc<ConsoleParts<S, C>>, Arc<reports::Reports>);

impl<S, C> ConsoleState<S, C> {
    pub fn new(parts: ConsoleParts<S, C>) -> Self {
        ConsoleState(Arc::new(parts), Arc::default())
    }

    fn reports(&self) -> &reports::Reports {
        &self.1
    }
}

impl<S, C> Clone for ConsoleState<S, C> {
    fn clone(&self) -> Self {
        ConsoleState(self.0.clone(), self.1.clone())
    }
}

impl<S, C> std::ops::Deref for ConsoleState<S, C> {
    type Target = ConsoleParts<S, C>;

    fn deref(&self) -> &ConsoleParts<S, C> {
        &self.0
    }
}

/// Password hashing on tokio's blocking threads, at most as many at once as there are
/// cores, so that a burst of sign-ins cannot starve the API of CPU.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<tokio::sync::Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }
}

impl PasswordWork for Passwords {
    async fn hash(&self, password: Secret) -> String {
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .unwrap_or_default()
    }

    async fn verify(&self, phc: String, password: Secret) -> bool {
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(move || verify_password(&phc, &password))
            .await
            .unwrap_or(false)
    }
}

/// The console's routes, all under `/console`.
pub fn router<S, C>(state: ConsoleState<S, C>) -> Router
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(verifications::overview::<S, C>))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route(
            "/console/login",
            get(login::form::<S, C>).post(login::submit::<S, C>),
        )
        .route(
            "/console/login/code",
            get(login::code_form::<S, C>).post(login::code_submit::<S, C>),
        )
        .route("/console/logout", post(login::sign_out::<S, C>))
        .route(
            "/console/logout/everywhere",
            post(login::sign_out_everywhere::<S, C>),
        )
        .route(
            "/console/invite/{token}",
            get(login::invitation::<S, C>).post(login::accept::<S, C>),
        )
        .route("/console/search", get(numbers::search))
        .route("/console/numbers/{to}", get(numbers::timeline::<S, C>))
        .route("/console/verifications", get(verifications::log::<S, C>))
        .route(
            "/console/verifications/{id}",
            get(verifications::detail::<S, C>),
        )
        .route(
            "/console/verifications/{id}/cancel",
            post(verifications::cancel::<S, C>),
        )
        .route("/console/insights", get(insights::page::<S, C>))
        .route("/console/fraud", get(fraud::page::<S, C>))
        .route("/console/fraud/quarantines/lift", post(fraud::lift::<S, C>))
        .route("/console/fraud/safe-list", post(fraud::safe_list::<S, C>))
        .route("/console/services", get(services::list::<S, C>))
        .route(
            "/console/services/{sid}",
            get(services::page::<S, C>).post(services::update::<S, C>),
        )
        .route("/console/keys", get(keys::page::<S, C>))
        .route(
            "/console/keys/{account}/api-keys",
            post(keys::create::<S, C>),
        )
        .route(
            "/console/keys/{account}/api-keys/{sid}/revoke",
            post(keys::revoke::<S, C>),
        )
        .route(
            "/console/keys/{account}/applications/{id}/rotate",
            post(keys::rotate_application::<S, C>),
        )
        .route(
            "/console/keys/{account}/token",
            post(keys::rotate_token::<S, C>),
        )
        .route("/console/webhooks", get(webhooks::page::<S, C>))
        .route(
            "/console/webhooks/{service}/{id}",
            get(webhooks::log::<S, C>),
        )
        .route(
            "/console/webhooks/{service}/{id}/replay",
            post(webhooks::replay::<S, C>),
        )
        .route("/console/{*rest}", get(not_found).post(not_found))
        .with_state(state)
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
