//! Mock-server plumbing shared by the provider tests: an axum server on 127.0.0.1:0 that
//! records every request and answers with whatever the test's scenario function says.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use otpd_core::Channel;
use otpd_delivery::{Message, SendError};

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Decoded form pairs of the body.
    pub fn form(&self) -> Vec<(String, String)> {
        otpd_delivery::provider::form_pairs(&self.body)
    }

    /// The single value of form field `name`.
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

/// What the mock answers.
pub enum Reply {
    /// Status, content type and body.
    Body(u16, &'static str, String),
    /// Never answers (the client's timeout must fire).
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Body(status, "application/json", body.to_string())
    }
}

type Scenario = dyn Fn(&Recorded) -> Reply + Send + Sync;

#[derive(Clone)]
struct MockState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    scenario: Arc<Scenario>,
}

/// A running mock server.
pub struct Mock {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received.
    pub fn single(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request");
        requests.into_iter().next().unwrap()
    }
}

async fn handle(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    value.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    state.requests.lock().unwrap().push(recorded.clone());
    match (state.scenario)(&recorded) {
        Reply::Body(status, content_type, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

/// Starts a mock answering with `scenario`.
pub async fn start(scenario: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Mock {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let state = MockState {
        requests: requests.clone(),
        scenario: Arc::new(scenario),
    };
    let app = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Mock {
        base_url: format!("http://{address}"),
        requests,
    }
}

/// The HTTP client adapters get in tests: a short timeout so the hanging scenario is quick.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(5))
}

/// A client with a given timeout.
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// A typical SMS OTP message to `to`.
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

/// The last four digits of a number: the mock's scenario switch (§0.1).
pub fn scenario_of(number: &str) -> &str {
    let digits: &str = number.trim_start_matches("whatsapp:");
    &digits[digits.len().saturating_sub(4)..]
}

/// Asserts an error's class and code.
pub fn assert_transient(error: &SendError) {
    assert!(
        matches!(error, SendError::Transient { .. }),
        "expected transient, got {error:?}"
    );
}

pub fn assert_provider(error: &SendError, code: &str) {
    assert!(
        matches!(error, SendError::Provider { .. }),
        "expected provider, got {error:?}"
    );
    assert_eq!(error.code(), code);
}

pub fn assert_rejected(error: &SendError, code: &str) {
    assert!(
        matches!(error, SendError::Rejected { .. }),
        "expected rejected, got {error:?}"
    );
    assert_eq!(error.code(), code);
}
