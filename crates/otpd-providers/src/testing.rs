//! The provider mock toolkit (feature `testing`), shared by this crate's adapter tests and the
//! server's tests: an axum server on `127.0.0.1:0` that records every request ([`Recorded`]
//! in a [`Log`]) and answers as a scenario says ([`start`], [`Reply`]), or any axum app the
//! test writes ([`serve`]); clients with short timeouts; test messages; and checks of the
//! [`SendError`] classes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use otpd_core::Channel;
use otpd_delivery::{Message, SendError};

/// One request as a mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, …
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The headers as sent.
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The request made of these parts (what a custom handler records).
    pub fn new(method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Recorded {
        Recorded {
            method,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers.clone(),
            body: body.to_vec(),
        }
    }

    /// A header's value, if present (and text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Decoded form pairs of the body.
    pub fn form(&self) -> Vec<(String, String)> {
        otpd_delivery::provider::form_pairs(&self.body)
    }

    /// The single value of form field `name` (fails the test when it is repeated).
    pub fn form_field(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .form()
            .into_iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value)
            .collect();
        assert!(values.len() <= 1, "form field {name} repeated");
        values.into_iter().next()
    }

    /// Decoded query pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        otpd_delivery::provider::form_pairs(self.query.as_deref().unwrap_or("").as_bytes())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// `Basic` credentials decoded to `user:password`.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine;
        let value = self.header("authorization")?.strip_prefix("Basic ")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// Every request a mock received, in order; cheap to clone into a handler's state.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Recorded>>>);

impl Log {
    /// Records one request; answers how many have been recorded, this one included.
    pub fn push(&self, recorded: Recorded) -> usize {
        let mut requests = self.0.lock().unwrap();
        requests.push(recorded);
        requests.len()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    /// The only request received (fails the test otherwise).
    pub fn single(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request, got {}",
            requests.len()
        );
        requests.into_iter().next().unwrap()
    }
}

/// What a scenario mock answers.
pub enum Reply {
    /// Status, content type and body.
    Body(u16, &'static str, String),
    /// Never answers (the client's timeout must fire).
    Hang,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Body(status, "application/json", body.to_string())
    }
}

type Scenario = dyn Fn(&Recorded) -> Reply + Send + Sync;

#[derive(Clone)]
struct MockState {
    log: Log,
    scenario: Arc<Scenario>,
}

/// A running scenario mock.
pub struct Mock {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// What it received.
    pub log: Log,
}

impl Mock {
    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.requests()
    }

    /// The only request received (fails the test otherwise).
    pub fn single(&self) -> Recorded {
        self.log.single()
    }
}

async fn answer(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded::new(method, &uri, &headers, &body);
    state.log.push(recorded.clone());
    match (state.scenario)(&recorded) {
        Reply::Body(status, content_type, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::Hang => {
            hang().await;
            StatusCode::OK.into_response()
        }
    }
}

/// Starts a mock that records every request and answers with `scenario`.
pub async fn start(scenario: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Mock {
    let log = Log::default();
    let state = MockState {
        log: log.clone(),
        scenario: Arc::new(scenario),
    };
    let app = axum::Router::new().fallback(answer).with_state(state);
    Mock {
        base_url: serve(app).await,
        log,
    }
}

/// Serves `app` on `127.0.0.1:0` in the background and returns its base URL
/// (`http://127.0.0.1:PORT`), for mocks that need their own routes and state.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{address}")
}

/// Holds a request open far longer than any test client waits.
pub async fn hang() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// The HTTP client adapters get in tests: a timeout short enough for a hanging mock.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(5))
}

/// A client with a given timeout.
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// A typical SMS OTP message to `to` (code `482910`, with a receipt URL).
pub fn message(to: &str) -> Message {
    Message {
        reference: "otp-req-123".to_string(),
        channel: Channel::Sms,
        to: to.to_string(),
        from: "ACME".to_string(),
        text: "Your ACME code is 482910".to_string(),
        code: "482910".to_string(),
        locale: "en".to_string(),
        subject: String::new(),
        html: None,
        validity_seconds: 600,
        receipt_url: Some("https://otp.example.com/webhooks/test/status".to_string()),
    }
}

/// A phone message (SMS or WhatsApp) to `to` with code `123456`, no sender, no receipt URL.
pub fn phone_message(channel: Channel, to: &str) -> Message {
    Message {
        reference: "att_0123456789".into(),
        channel,
        to: to.into(),
        from: String::new(),
        text: "Your code is 123456".into(),
        code: "123456".into(),
        locale: "en".into(),
        subject: String::new(),
        html: None,
        validity_seconds: 600,
        receipt_url: None,
    }
}

/// An email message to `to`, with an HTML part when `html`.
pub fn email_message(to: &str, html: bool) -> Message {
    Message {
        reference: "att_0123456789".into(),
        channel: Channel::Email,
        to: to.into(),
        from: String::new(),
        text: "Your code is 482910. It expires in 10 minutes.".into(),
        code: "482910".into(),
        locale: "en".into(),
        subject: "Your ACME code".into(),
        html: html.then(|| "<p>Your code is <b>482910</b>.</p>".to_string()),
        validity_seconds: 600,
        receipt_url: None,
    }
}

/// The last four digits of a number: a scenario mock's switch.
pub fn scenario_of(number: &str) -> &str {
    let digits: &str = number.trim_start_matches("whatsapp:");
    &digits[digits.len().saturating_sub(4)..]
}

/// Asserts `error` is transient (worth retrying).
pub fn assert_transient(error: &SendError) {
    assert!(
        matches!(error, SendError::Transient { .. }),
        "expected transient, got {error:?}"
    );
}

/// Asserts `error` is this provider's configuration, with `code`.
pub fn assert_provider(error: &SendError, code: &str) {
    assert!(
        matches!(error, SendError::Provider { .. }),
        "expected provider, got {error:?}"
    );
    assert_eq!(error.code(), code);
}

/// Asserts `error` is a rejection of this message, with `code`.
pub fn assert_rejected(error: &SendError, code: &str) {
    assert!(
        matches!(error, SendError::Rejected { .. }),
        "expected rejected, got {error:?}"
    );
    assert_eq!(error.code(), code);
}

/// The transient error of `result` (fails the test on anything else).
pub fn expect_transient<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Transient { .. }) => error,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

/// The provider error of `result` (fails the test on anything else).
pub fn expect_provider<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Provider { .. }) => error,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

/// The rejection of `result` (fails the test on anything else).
pub fn expect_rejected<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Rejected { .. }) => error,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
