//! Helpers shared by the provider mock servers: start an axum app on a free loopback port,
//! record what it received, build clients with short timeouts and test messages.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use otpd_core::Channel;
use otpd_delivery::{Message, SendError};

/// Serves `app` on `127.0.0.1:0` in the background and returns its base URL
/// (`http://127.0.0.1:PORT`).
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{address}")
}

/// A client like the worker's, with a timeout short enough for a hanging mock.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap()
}

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The body as form pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        otpd_delivery::provider::form_pairs(&self.body)
    }

    /// The first form value named `name`.
    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// Every request a mock received, in order.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    /// Records one request.
    pub fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }

    /// The requests so far.
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// The only request so far (fails the test otherwise).
    pub fn only(&self) -> Seen {
        let all = self.all();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one request, got {}",
            all.len()
        );
        all.into_iter().next().unwrap()
    }
}

/// A phone message (SMS or WhatsApp) to `to` with code `123456`.
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

/// Fails unless `result` is a transient error.
pub fn assert_transient<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Transient { .. }) => error,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

/// Fails unless `result` is a provider error.
pub fn assert_provider<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Provider { .. }) => error,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

/// Fails unless `result` is a rejection.
pub fn assert_rejected<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Err(error @ SendError::Rejected { .. }) => error,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Holds a request open far longer than [`client`]'s timeout.
pub async fn hang() {
    tokio::time::sleep(Duration::from_secs(30)).await;
}
