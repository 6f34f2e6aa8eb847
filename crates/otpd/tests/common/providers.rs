//! Mock third-party providers for the server tests (only providers are mocked), built on the
//! provider mock toolkit (`otpd_providers::testing`): a Twilio Messages API that can be
//! switched down (503) and up, and a Meta WhatsApp Cloud API, each recording what it was sent.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
pub use otpd_providers::testing::serve;
use otpd_providers::testing::{Log, Recorded};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-test-token";

/// Form fields of one request.
pub type Form = Vec<(String, String)>;

/// A Twilio Messages API mock: answers 503 to every request while `down`, else 201, and
/// records each request.
#[derive(Clone, Default)]
pub struct TwilioMock {
    pub down: Arc<AtomicBool>,
    log: Log,
    accepted: Arc<AtomicUsize>,
}

impl TwilioMock {
    pub async fn start(down: bool) -> (TwilioMock, String) {
        let mock = TwilioMock::default();
        mock.down.store(down, Ordering::SeqCst);
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                axum::routing::post(twilio_messages),
            )
            .with_state(mock.clone());
        (mock, serve(app).await)
    }

    /// The form fields of every request received, in order.
    pub fn requests(&self) -> Vec<Form> {
        self.log.requests().iter().map(Recorded::form).collect()
    }

    pub fn field(request: &[(String, String)], name: &str) -> String {
        request
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Requests that were answered 201 (messages that left).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Switches the mock up or down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

async fn twilio_messages(
    State(mock): State<TwilioMock>,
    Path(account): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    assert_eq!(account, ACCOUNT);
    assert!(headers.contains_key("authorization"));
    let recorded = Recorded::new(method, &uri, &headers, &body);
    let form = recorded.form();
    let n = mock.log.push(recorded);
    if TwilioMock::field(&form, "To").ends_with("0001") {
        let body = json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if mock.down.load(Ordering::SeqCst) {
        let body = json!({"code": 20503, "message": "Service unavailable", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    mock.accepted.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "sid": format!("SM{n:032x}"), "status": "queued", "num_segments": "1",
        "price": null, "price_unit": "USD", "error_code": null,
        "to": TwilioMock::field(&form, "To"), "body": TwilioMock::field(&form, "Body"),
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
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

/// A Meta WhatsApp Cloud API mock that accepts every template message.
#[derive(Clone, Default)]
pub struct WhatsappMock {
    log: Log,
}

impl WhatsappMock {
    pub async fn start() -> (WhatsappMock, String) {
        let mock = WhatsappMock::default();
        let app = axum::Router::new()
            .route(
                "/v21.0/{phone_id}/messages",
                axum::routing::post(whatsapp_messages),
            )
            .with_state(mock.clone());
        (mock, serve(app).await)
    }

    /// The JSON bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.log.requests().iter().map(Recorded::json).collect()
    }
}

async fn whatsapp_messages(
    State(mock): State<WhatsappMock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let n = mock.log.push(Recorded::new(method, &uri, &headers, &body));
    let body = json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "33612345678", "wa_id": "33612345678"}],
        "messages": [{"id": format!("wamid.TEST{n}")}],
    });
    axum::Json(body).into_response()
}
