//! HTTP dialects over the core. Each dialect maps the core's results and errors to its own
//! wire format in one place (`native::error` for the SMS.CX-shaped API).

pub mod admin;
pub mod connections;
pub mod dev;
pub mod native;
pub mod openapi;
pub mod receipts;
pub mod throttle;
pub mod twilio;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use otpd_core::auth::Authenticator;
use otpd_core::{Clock, Store, StoreError, Timestamp, Verifier};
use otpd_delivery::Inbox;

use native::error::{self as native_error, NativeError};

/// Largest request body accepted (the biggest legitimate one, a `POST /otp` with a long
/// template, is well under 4 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler needs, shared by every request through [`AppState`].
pub struct AppParts<S, C> {
    /// The verification engine.
    pub verifier: Arc<Verifier<S, C>>,
    pub auth: Arc<Authenticator<S, C>>,
    /// The dev inbox, present only in dev mode (which is what enables `/dev/*`).
    pub inbox: Option<Inbox>,
    /// The base URL resource links use (Twilio `url`, `links`, paging); `None` derives it
    /// from the request's `Host`.
    pub public_base_url: Option<String>,
    /// Where delivery receipts go (absent in tests that need no delivery).
    pub receipts: Option<Arc<dyn ReceiptSink>>,
    /// Proxies whose `X-Forwarded-For` is believed (the client address is otherwise the
    /// socket's peer).
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// Prometheus metrics.
    pub metrics: otpd_delivery::SharedMetrics,
    /// Signs callbacks and webhooks (the admin API shows a service's key).
    pub signer: Arc<otpd_core::auth::CallbackSigner>,
    /// Where callbacks and webhooks may go; checked when a tenant sets a URL.
    pub outbound: otpd_delivery::Outbound,
    /// Time a request has to send its whole body (408 after).
    pub body_timeout: std::time::Duration,
    /// `Host` values links may use when `public_base_url` is unset: the listen address
    /// first (the fallback), then the configured `server.hosts`.
    pub link_hosts: Arc<Vec<String>>,
    /// Failed authentications allowed per client address and window (`None`: no limit).
    pub auth_failures: Option<otpd_core::abuse::Limit>,
}

pub use otpd_core::auth::ClientIp;

/// The client address of a request: the socket peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

/// Records delivery receipts: the delivery worker, seen from HTTP.
pub trait ReceiptSink: Send + Sync + 'static {
    /// Verifies and records a receipt posted to `provider`'s endpoint.
    fn handle<'a>(
        &'a self,
        provider: &'a str,
        webhook: &'a otpd_delivery::InboundRequest,
    ) -> otpd_delivery::BoxFuture<
        'a,
        Result<otpd_delivery::ReceiptReply, otpd_delivery::ReceiptHandlingError>,
    >;
}

/// The handlers' state: one shared [`AppParts`], so the clone every request makes is one
/// reference count, whatever the state holds.
pub struct AppState<S, C>(Arc<AppParts<S, C>>);

impl<S, C> AppState<S, C> {
    /// The state holding `parts`.
    pub fn new(parts: AppParts<S, C>) -> Self {
        AppState(Arc::new(parts))
    }
}

impl<S, C> std::ops::Deref for AppState<S, C> {
    type Target = AppParts<S, C>;

    fn deref(&self) -> &AppParts<S, C> {
        &self.0
    }
}

impl<S, C> Clone for AppState<S, C> {
    fn clone(&self) -> Self {
        AppState(self.0.clone())
    }
}

/// Whether a failure is the database being unreachable for now (answered 503, not 500).
pub fn is_unavailable(error: &dyn std::any::Any) -> bool {
    let store = |e: &StoreError| matches!(e, StoreError::Unavailable(_));
    error.downcast_ref::<StoreError>().is_some_and(store)
        || error
            .downcast_ref::<otpd_core::StartError>()
            .is_some_and(|e| matches!(e, otpd_core::StartError::Store(s) if store(s)))
}

/// Logs an internal failure with its cause and answers a generic 500, or 503 when the
/// database is unreachable (retry later; nothing committed is lost).
pub fn internal<E: std::fmt::Display + 'static>(error: E) -> NativeError {
    if is_unavailable(&error) {
        tracing::warn!(%error, "database unavailable");
        return native_error::unavailable();
    }
    tracing::error!(%error, "internal error");
    native_error::server_error()
}

/// RFC 3339 in UTC, for otpd's own JSON.
pub fn rfc3339(timestamp: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(timestamp.0 as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

async fn method_not_allowed() -> NativeError {
    native_error::method_not_allowed()
}

async fn not_found() -> NativeError {
    native_error::no_such_path()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
) -> Response {
    match state.verifier.manage().ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "store not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

/// Logs one line per request with its path (never the query string, which can hold a phone
/// number) and what the handler noted ([`LogNote`]), and adds `X-Request-Id` and
/// `X-Response-Time`. The body is read here, bounded in size and time whatever its framing
/// (chunked included), and every error answer is the dialect's JSON: no client ever sees a
/// plain-text error, whichever layer produced it.
async fn observe(State(observed): State<Observed>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let client = client_ip(peer, request.headers(), &observed.trusted_proxies);
    request.extensions_mut().insert(ClientIp(client));
    let method = request.method().clone();
    // The path only: a query string (the inbox filter) can hold a phone number.
    let path = request.uri().path().to_string();
    let dialect = Dialect::of_path(&path);
    let guarded = client.filter(|_| needs_credentials(&path));
    let held_back = guarded.and_then(|ip| observed.throttle.retry_after(ip));
    let mut response = match held_back {
        Some(retry_after) => dialect.throttled(retry_after),
        None => match read_body(request, observed.body_timeout).await {
            Ok(request) => next.run(request).await,
            Err(status) => dialect.error(status, &path),
        },
    };
    if let Some(ip) = guarded
        && response.status() == StatusCode::UNAUTHORIZED
    {
        observed.throttle.failed(ip);
    }
    if (response.status().is_client_error() || response.status().is_server_error())
        && !dialect.shaped(&response)
    {
        let status = response.status();
        response = dialect.error(status, &path);
    }
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let elapsed = started.elapsed();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{}ms", elapsed.as_millis())) {
        headers.insert("x-response-time", value);
    }
    let labels = otpd_delivery::metrics::HttpLabels {
        dialect: dialect_of(&route).to_string(),
        route,
        method: method_label(&method).to_string(),
        status: response.status().as_u16(),
    };
    let metrics = &observed.metrics;
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_seconds
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    let note = response.extensions_mut().remove::<LogNote>();
    let note = note.as_ref();
    tracing::info!(
        request_id,
        %method,
        path,
        status = response.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        step = note.map(|n| n.step),
        verification = note.map(|n| tracing::field::display(n.verification)),
        to = note.and_then(|n| n.to.as_deref()),
        channel = note.and_then(|n| n.channel),
        outcome = note.and_then(|n| n.outcome).map(tracing::field::debug),
        delivery = note.and_then(|n| n.delivery).map(tracing::field::display),
        delivery_status = note.and_then(|n| n.delivery_status),
        provider = note.and_then(|n| n.provider.as_deref()),
        "request"
    );
    response
}

/// What `observe` needs, cheap to clone.
#[derive(Clone)]
struct Observed {
    trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    metrics: otpd_delivery::SharedMetrics,
    body_timeout: std::time::Duration,
    throttle: throttle::AuthThrottle,
}

/// Whether a path takes credentials (its failures count towards the client's throttle).
fn needs_credentials(path: &str) -> bool {
    path.starts_with("/otp")
        || path.starts_with("/oauth/")
        || path.starts_with("/v2/")
        || path.starts_with("/admin/")
        || path == "/console/login"
        || path == "/console/login/code"
}

/// The request with its body read whole: at most [`MAX_BODY_BYTES`] (413 beyond), within
/// `timeout` (408 after), and well-formed (400 for a broken chunked encoding).
async fn read_body(request: Request, timeout: std::time::Duration) -> Result<Request, StatusCode> {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    if request.body().size_hint().exact() == Some(0) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        Ok(Err(_)) => return Err(StatusCode::BAD_REQUEST),
        Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
    };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// The method as a metric label: the standard ones by name, anything else `other`, so a
/// client cannot create label values (and series) at will.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Which error shape a path answers in.
#[derive(Clone, Copy)]
enum Dialect {
    /// Twilio's body, for `/v2` and `/admin`.
    Twilio,
    /// The SMS.CX body, for everything else.
    Native,
    /// HTML pages, for the console (`/console`): people read its errors.
    Console,
}

impl Dialect {
    fn of_path(path: &str) -> Dialect {
        if path == "/console" || path.starts_with("/console/") {
            Dialect::Console
        } else if path.starts_with("/v2/") || path.starts_with("/admin/") {
            Dialect::Twilio
        } else {
            Dialect::Native
        }
    }

    /// 429 for a client address that failed to authenticate too often.
    fn throttled(self, retry_after: u32) -> Response {
        let message = "Too many failed authentications from this address; retry later";
        match self {
            Dialect::Twilio => {
                twilio::error::rate_limited(20429, message, retry_after).into_response()
            }
            Dialect::Native => native_error::auth_throttled(retry_after).into_response(),
            Dialect::Console => {
                let mut page = html_error(StatusCode::TOO_MANY_REQUESTS, message);
                if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                    page.headers_mut().insert("retry-after", value);
                }
                page
            }
        }
    }

    /// The dialect's JSON error for a status a layer below the handlers chose.
    fn error(self, status: StatusCode, path: &str) -> Response {
        match self {
            Dialect::Twilio => match status {
                StatusCode::PAYLOAD_TOO_LARGE => twilio::error::too_large(),
                StatusCode::REQUEST_TIMEOUT => twilio::error::timeout(),
                StatusCode::NOT_FOUND => twilio::error::not_found(path),
                StatusCode::METHOD_NOT_ALLOWED => twilio::error::method_not_allowed(),
                status if status.is_server_error() => {
                    twilio::error::internal("a layer below the handlers failed")
                }
                status => twilio::error::bad_request(status),
            }
            .into_response(),
            Dialect::Native => match status {
                StatusCode::PAYLOAD_TOO_LARGE => native_error::body_too_large(),
                StatusCode::REQUEST_TIMEOUT => native_error::timeout(),
                StatusCode::NOT_FOUND => native_error::no_such_path(),
                StatusCode::METHOD_NOT_ALLOWED => native_error::method_not_allowed(),
                status if status.is_server_error() => native_error::server_error(),
                status => native_error::bad_request(status),
            }
            .into_response(),
            Dialect::Console => html_error(status, "The console could not answer this request."),
        }
    }

    /// Whether `response` already is this dialect's error shape.
    fn shaped(self, response: &Response) -> bool {
        let content_type = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self {
            Dialect::Console => content_type.starts_with("text/html"),
            _ => content_type.starts_with("application/json"),
        }
    }
}

/// A small HTML error page for a console path, when a layer below the console answered.
fn html_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · otpd console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body class=\"narrow\"><main>\
         <h1>{title}</h1><p class=\"error\" role=\"alert\">{message}</p><p><a href=\"/console/\">Back to the console</a></p></main></body></html>"
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What a handler adds to its request's `request` log line: a start or a check logs one line,
/// not two (each line costs the request path more than its JSON does).
#[derive(Clone, Debug)]
pub(crate) struct LogNote {
    /// The lifecycle step, e.g. `otp created`.
    step: &'static str,
    verification: otpd_core::VerificationId,
    /// The recipient, masked.
    to: Option<String>,
    channel: Option<&'static str>,
    outcome: Option<otpd_core::CheckOutcome>,
    /// The attempt a start queued, its status and provider as its first try left them (that
    /// try logs no line of its own when the start waited for it).
    delivery: Option<otpd_core::DeliveryId>,
    delivery_status: Option<&'static str>,
    provider: Option<String>,
}

impl LogNote {
    /// A verification started (or resent), with the attempt it queued.
    pub(crate) fn started(step: &'static str, started: &otpd_core::verifier::Started) -> LogNote {
        let (verification, attempt) = (started.verification(), started.attempt());
        LogNote {
            step,
            verification: verification.id,
            to: Some(verification.to.masked()),
            channel: Some(verification.channel.as_str()),
            outcome: None,
            delivery: Some(attempt.id),
            delivery_status: Some(attempt.status.as_str()),
            provider: attempt.provider.clone(),
        }
    }

    /// A code checked against `verification`.
    pub(crate) fn checked(
        step: &'static str,
        verification: otpd_core::VerificationId,
        outcome: otpd_core::CheckOutcome,
    ) -> LogNote {
        LogNote {
            step,
            verification,
            to: None,
            channel: None,
            outcome: Some(outcome),
            delivery: None,
            delivery_status: None,
            provider: None,
        }
    }

    /// `response`, carrying this note to the request's log line.
    pub(crate) fn on(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// Which API a route pattern belongs to (a metric label).
fn dialect_of(route: &str) -> &'static str {
    if route.starts_with("/v2") {
        "twilio"
    } else if route.starts_with("/admin") {
        "admin"
    } else if route.starts_with("/webhooks") {
        "webhooks"
    } else if route.starts_with("/console") {
        "console"
    } else if route.starts_with("/otp") || route.starts_with("/oauth") {
        "native"
    } else {
        "ops"
    }
}

/// `GET /metrics`: OpenMetrics text; outbox depth and quarantines are read when scraped.
async fn metrics_text<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
) -> Response {
    let manage = state.verifier.manage();
    let now = state.verifier.clock().now();
    if let Ok(stats) = manage.outbox_stats().await {
        let metrics = &state.metrics;
        metrics.outbox_queued.set(stats.queued_deliveries as i64);
        metrics
            .callbacks_pending
            .set(stats.pending_callbacks as i64);
        let age = stats
            .oldest_queued
            .map_or(0, |t| (now.0 - t.0).max(0) / 1000);
        metrics.outbox_oldest_seconds.set(age);
    }
    if let Ok(quarantines) = manage.quarantines().await {
        state.metrics.quarantines.set(quarantines.len() as i64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    native_error::server_error().into_response()
}

/// The whole HTTP surface: native API, ops endpoints, and the dev inbox when enabled.
pub fn router<S: Store + Clone, C: Clock + Clone>(state: AppState<S, C>) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes (the console) behind the same request handling: logging,
/// body limits, metrics, the authentication throttle and panic recovery.
pub fn router_with<S: Store + Clone, C: Clock + Clone>(
    state: AppState<S, C>,
    extra: Router,
) -> Router {
    let mut app = native::router::<S, C>()
        .nest("/v2", twilio::router::<S, C>())
        .nest("/admin/v1", admin::router::<S, C>())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S, C>))
        .route("/metrics", get(metrics_text::<S, C>))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs_page))
        .route(
            "/webhooks/{provider}",
            get(receipts::receive::<S, C>).post(receipts::receive::<S, C>),
        );
    if state.inbox.is_some() {
        app = app
            .route("/dev/inbox", get(dev::inbox_page::<S, C>))
            .route("/dev/inbox.json", get(dev::inbox_json::<S, C>));
    }
    let observed = Observed {
        trusted_proxies: state.trusted_proxies.clone(),
        metrics: state.metrics.clone(),
        body_timeout: state.body_timeout,
        throttle: throttle::AuthThrottle::new(state.auth_failures, {
            let verifier = state.verifier.clone();
            Arc::new(move || verifier.clock().now())
        }),
    };
    app.fallback(not_found)
        .with_state(state)
        .merge(extra)
        .layer(middleware::from_fn_with_state(observed, observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        assert_eq!(
            client_ip(Some(client), &headers, &[proxy]),
            Some(client),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(Some(proxy), &headers, &[proxy]),
            Some(client),
            "right-most"
        );
        assert_eq!(
            client_ip(Some(proxy), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
        assert_eq!(client_ip(None, &headers, &[proxy]), None);
    }
}
