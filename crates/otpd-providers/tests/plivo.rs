//! Plivo adapter against a mock of the Message API (§5.1 of the provider reference) and its
//! V3/V2-signed status callbacks.

use std::time::Duration;

use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::plivo::{PlivoConfig, PlivoProvider, compute_v2, compute_v3};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use serde_json::json;

const AUTH_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
const AUTH_TOKEN: &str = "my_auth_token";
const UUID: &str = "5b40a428-bfc7-4daf-9d06-726c558bf3b8";

fn error(status: u16, text: &str) -> Reply {
    Reply::json(
        status,
        json!({"api_id": "948b53a2-3f08-11e7-b6f4-061564b78b75", "error": text}),
    )
}

/// Plivo as documented: Basic auth, the Auth ID in the path (with its trailing slash), JSON.
fn plivo(request: &Recorded) -> Reply {
    if request.basic_auth().as_deref() != Some(&format!("{AUTH_ID}:{AUTH_TOKEN}")) {
        return error(401, "Authentication credentials invalid");
    }
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/v1/Account/{AUTH_ID}/Message/"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let dst = body["dst"].as_str().unwrap_or("").to_string();
    assert!(dst.chars().all(|c| c.is_ascii_digit()));
    match testing::scenario_of(&dst) {
        "0001" => return error(400, "invalid destination number"),
        "0004" => return error(429, "too many requests"),
        "0005" => return error(500, "internal server error"),
        "0006" => return Reply::Hang,
        "0008" => {
            return error(
                403,
                "This destination is not enabled in your account's geo permissions",
            );
        }
        _ => {}
    }
    Reply::json(
        202,
        json!({"api_id": "948b53a2-3f08-11e7-b6f4-061564b78b75",
               "message": "message(s) queued", "message_uuid": [UUID]}),
    )
}

fn config(base_url: &str) -> PlivoConfig {
    PlivoConfig {
        base_url: Some(base_url.to_string()),
        auth_id: AUTH_ID.to_string(),
        auth_token: AUTH_TOKEN.into(),
        src: Some("+14155550100".to_string()),
        powerpack_uuid: None,
    }
}

async fn provider() -> (testing::Mock, PlivoProvider) {
    let mock = testing::start(plivo).await;
    let provider = PlivoProvider::new("plivo".into(), config(&mock.base_url), testing::client());
    (mock, provider)
}

#[tokio::test]
async fn sms_is_sent_with_the_documented_body() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+14155550123");
    message.from = String::new();
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(accepted.message_id, UUID);
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let body = mock.single().json();
    assert_eq!(body["src"], "14155550100");
    assert_eq!(body["dst"], "14155550123");
    assert_eq!(body["text"], "Your ACME code is 482910");
    assert_eq!(body["type"], "sms");
    assert_eq!(body["url"], "https://otp.example.com/webhooks/test/status");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["message_expiry"], 600);
}

#[tokio::test]
async fn powerpack_replaces_the_sender() {
    let mock = testing::start(plivo).await;
    let mut config = config(&mock.base_url);
    config.powerpack_uuid = Some("d2e8b9c1-0000-4000-8000-000000000000".into());
    let provider = PlivoProvider::new("plivo".into(), config, testing::client());
    provider
        .send(&testing::message("+14155550123"))
        .await
        .unwrap();
    let body = mock.single().json();
    assert_eq!(
        body["powerpack_uuid"],
        "d2e8b9c1-0000-4000-8000-000000000000"
    );
    assert!(body.get("src").is_none());
}

#[tokio::test]
async fn invalid_number_is_rejected() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+14155550001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "400");
}

#[tokio::test]
async fn throttling_and_outages_are_transient() {
    let (_mock, provider) = provider().await;
    for (to, code) in [("+14155550004", "429"), ("+14155550005", "500")] {
        let error = provider.send(&testing::message(to)).await.unwrap_err();
        assert_transient(&error);
        assert_eq!(error.code(), code);
    }
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(plivo).await;
    let provider = PlivoProvider::new(
        "plivo".into(),
        config(&mock.base_url),
        testing::client_with_timeout(Duration::from_millis(300)),
    );
    let error = provider
        .send(&testing::message("+14155550006"))
        .await
        .unwrap_err();
    assert_transient(&error);
}

#[tokio::test]
async fn bad_credentials_and_geo_permissions_are_the_providers_problem() {
    let mock = testing::start(plivo).await;
    let mut config = config(&mock.base_url);
    config.auth_token = "wrong".into();
    let provider = PlivoProvider::new("plivo".into(), config, testing::client());
    let error = provider
        .send(&testing::message("+14155550123"))
        .await
        .unwrap_err();
    assert_provider(&error, "401");

    let (_mock, provider) = self::provider().await;
    let error = provider
        .send(&testing::message("+14155550008"))
        .await
        .unwrap_err();
    assert_provider(&error, "403");
}

const CALLBACK_URL: &str = "https://otp.example.com/webhooks/plivo";
const NONCE: &str = "05429567804466091622";
const CALLBACK_BODY: &str = "MessageUUID=5b40a428-bfc7-4daf-9d06-726c558bf3b8&Status=delivered&From=14155550100&To=14155550123&Units=1&TotalAmount=0.00500&ErrorCode=";

fn callback(url: &str, body: &str, headers: &[(&str, &str)]) -> InboundRequest {
    let mut all = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    all.extend(
        headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string())),
    );
    InboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers: all,
        body: body.as_bytes().to_vec(),
    }
}

fn offline() -> PlivoProvider {
    PlivoProvider::new(
        "plivo".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    )
}

#[test]
fn v3_signed_callback_parses() {
    // Reference vector T14 (URL without query).
    let webhook = callback(
        CALLBACK_URL,
        CALLBACK_BODY,
        &[
            (
                "x-plivo-signature-v3",
                "Sso3Gl8d9tBdQYpR/bcIjy3V3bEvikskhNITzOwbOwY=",
            ),
            ("x-plivo-signature-v3-nonce", NONCE),
        ],
    );
    assert_eq!(
        offline().receipt(&webhook).unwrap(),
        ReceiptReply::Receipts(vec![Receipt {
            message_id: UUID.into(),
            status: DeliveryStatus::Delivered,
            error_code: None,
            price: Some(0.005),
            segments: Some(1),
        }])
    );
}

#[test]
fn v3_signed_callback_with_query_parses() {
    let url = "https://otp.example.com/webhooks/plivo?tenant=a";
    let webhook = callback(
        url,
        CALLBACK_BODY,
        &[
            (
                "x-plivo-signature-v3",
                "DuHJGvOybURQe5e9gu+qmVoCDh5A7u6YDIth1flIglM=",
            ),
            ("x-plivo-signature-v3-nonce", NONCE),
        ],
    );
    assert!(offline().receipt(&webhook).is_ok());
}

#[test]
fn v2_signature_is_the_fallback() {
    let signature = compute_v2(AUTH_TOKEN.as_bytes(), CALLBACK_URL, "12345");
    let webhook = callback(
        CALLBACK_URL,
        CALLBACK_BODY,
        &[
            ("x-plivo-signature-v2", &signature),
            ("x-plivo-signature-v2-nonce", "12345"),
        ],
    );
    assert!(offline().receipt(&webhook).is_ok());
}

#[test]
fn tampered_callbacks_are_forged() {
    let tampered = CALLBACK_BODY.replace("Status=delivered", "Status=failed");
    let webhook = callback(
        CALLBACK_URL,
        &tampered,
        &[
            (
                "x-plivo-signature-v3",
                "Sso3Gl8d9tBdQYpR/bcIjy3V3bEvikskhNITzOwbOwY=",
            ),
            ("x-plivo-signature-v3-nonce", NONCE),
        ],
    );
    assert!(matches!(
        offline().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
    let params = otpd_delivery::provider::form_pairs(CALLBACK_BODY.as_bytes());
    let other_token = compute_v3(b"my_auth_tokens", CALLBACK_URL, &params, true, NONCE);
    let webhook = callback(
        CALLBACK_URL,
        CALLBACK_BODY,
        &[
            ("x-plivo-signature-v3", &other_token),
            ("x-plivo-signature-v3-nonce", NONCE),
        ],
    );
    assert!(matches!(
        offline().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        offline().receipt(&callback(CALLBACK_URL, CALLBACK_BODY, &[])),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn failed_callback_carries_the_error_code() {
    let body = "MessageUUID=u1&Status=undelivered&ErrorCode=50&Units=1";
    let params = otpd_delivery::provider::form_pairs(body.as_bytes());
    let signature = compute_v3(AUTH_TOKEN.as_bytes(), CALLBACK_URL, &params, true, "n1");
    let webhook = callback(
        CALLBACK_URL,
        body,
        &[
            ("x-plivo-signature-v3", &signature),
            ("x-plivo-signature-v3-nonce", "n1"),
        ],
    );
    let ReceiptReply::Receipts(receipts) = offline().receipt(&webhook).unwrap() else {
        panic!("expected receipts");
    };
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
    assert_eq!(receipts[0].error_code.as_deref(), Some("50"));
}

#[test]
fn signed_but_incomplete_callback_is_malformed() {
    let body = "Status=delivered&Units=1";
    let params = otpd_delivery::provider::form_pairs(body.as_bytes());
    let signature = compute_v3(AUTH_TOKEN.as_bytes(), CALLBACK_URL, &params, true, "n1");
    let webhook = callback(
        CALLBACK_URL,
        body,
        &[
            ("x-plivo-signature-v3", &signature),
            ("x-plivo-signature-v3-nonce", "n1"),
        ],
    );
    assert!(matches!(
        offline().receipt(&webhook),
        Err(ReceiptError::Malformed(_))
    ));
}
