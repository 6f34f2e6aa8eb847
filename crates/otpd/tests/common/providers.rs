//! Mock third-party providers for the server tests (only providers are mocked): a Twilio
//! Messages API that can be switched down (503) and up, recording what it was sent.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-test-token";

/// A Twilio Messages API mock: answers 503 to every request while `down`, else 201, and
/// records each request's form fields.
/// Form fields of one request.
pub type Form = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct TwilioMock {
    pub down: Arc<std::sync::atomic::AtomicBool>,
    pub requests: Arc<Mutex<Vec<Form>>>,
    accepted: Arc<Mutex<usize>>,
}

impl TwilioMock {
    pub async fn start(down: bool) -> (TwilioMock, String) {
        let mock = TwilioMock::default();
        mock.down.store(down, std::sync::atomic::Ordering::SeqCst);
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                axum::routing::post(twilio_messages),
            )
            .with_state(mock.clone());
        (mock, serve(app).await)
    }

    pub fn requests(&self) -> Vec<Form> {
        self.requests.lock().unwrap().clone()
    }

    pub fn field(request: &[(String, String)], name: &str) -> String {
        request
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

async fn twilio_messages(
    State(mock): State<TwilioMock>,
    Path(account): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    assert_eq!(account, ACCOUNT);
    assert!(headers.contains_key("authorization"));
    let form = otpd_delivery::provider::form_pairs(&body);
    let n = {
        let mut requests = mock.requests.lock().unwrap();
        requests.push(form.clone());
        requests.len()
    };
    if TwilioMock::field(&form, "To").ends_with("0001") {
        let body = json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if mock.down.load(std::sync::atomic::Ordering::SeqCst) {
        let body = json!({"code": 20503, "message": "Service unavailable", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    *mock.accepted.lock().unwrap() += 1;
    let body = json!({
        "sid": format!("SM{n:032x}"), "status": "queued", "num_segments": "1",
        "price": null, "price_unit": "USD", "error_code": null,
        "to": TwilioMock::field(&form, "To"), "body": TwilioMock::field(&form, "Body"),
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

impl TwilioMock {
    /// Requests that were answered 201 (messages that left).
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }

    /// Switches the mock up or down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn twilio_provider(name: &str, base: &str) -> otpd::config::ProviderTable {
    json!({
        "name": name, "kind": "twilio", "base_url": base,
        "account_sid": ACCOUNT, "auth_token": AUTH_TOKEN, "from": "+15005550006",
    })
    .as_object()
    .unwrap()
    .clone()
    .into()
}
