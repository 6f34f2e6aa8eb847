//! SendGrid adapter against a local mock of `POST /v3/mail/send`, and its signed Event
//! Webhook verification.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::sendgrid::{SendgridConfig, SendgridConfigError, SendgridProvider};
use otpd_providers::testing::*;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

const API_KEY: &str = "SG.test-key.abcdef";
const FROM: &str = "no-reply@acme.example";

fn errors(status: StatusCode, message: &str, field: Value) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "field": field, "help": null}]})),
    )
        .into_response()
}

/// The mock `mail/send`: checks the key, the sender and the body, then switches on the
/// recipient.
async fn mail_send(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(Recorded::new(method, &uri, &headers, &body));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {API_KEY}"))
    {
        return errors(
            StatusCode::UNAUTHORIZED,
            "The provided authorization grant is invalid, expired, or revoked",
            Value::Null,
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, "Bad Request", Value::Null);
    };
    if body["from"]["email"] != FROM {
        return errors(
            StatusCode::FORBIDDEN,
            "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.",
            json!("from"),
        );
    }
    if body["subject"].as_str().unwrap_or("").is_empty() {
        return errors(
            StatusCode::BAD_REQUEST,
            "The subject is required.",
            json!("subject"),
        );
    }
    match body["personalizations"][0]["to"][0]["email"]
        .as_str()
        .unwrap_or("")
    {
        to if !to.contains('@') => errors(
            StatusCode::BAD_REQUEST,
            "Does not contain a valid address.",
            json!("personalizations.0.to.0.email"),
        ),
        "throttled@example.com" => errors(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests",
            Value::Null,
        ),
        "broken@example.com" => errors(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            Value::Null,
        ),
        "silent@example.com" => {
            hang().await;
            StatusCode::ACCEPTED.into_response()
        }
        _ => (
            StatusCode::ACCEPTED,
            [("x-message-id", "LRzXl_NHStOGhQ4kofSm_A")],
        )
            .into_response(),
    }
}

async fn mock() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new()
        .route("/v3/mail/send", axum::routing::post(mail_send))
        .with_state(log.clone());
    (serve(app).await, log)
}

fn config(base: &str) -> SendgridConfig {
    SendgridConfig {
        base_url: Some(base.into()),
        api_key: API_KEY.into(),
        from_email: FROM.into(),
        from_name: Some("ACME".into()),
        reply_to: None,
        sandbox_mode: false,
        webhook_verification_key: None,
        webhook_max_age_seconds: None,
    }
}

fn provider(base: &str) -> SendgridProvider {
    SendgridProvider::new("sendgrid".into(), config(base), client()).unwrap()
}

#[tokio::test]
async fn sends_text_and_html_with_our_reference_and_no_tracking() {
    let (base, log) = mock().await;
    let provider = provider(&base);
    assert_eq!(provider.kind(), "sendgrid");
    let accepted = provider
        .send(&email_message("user@example.com", true))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "LRzXl_NHStOGhQ4kofSm_A");
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let seen = log.single();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/v3/mail/send");
    assert_eq!(
        seen.header("authorization").unwrap_or(""),
        format!("Bearer {API_KEY}")
    );
    assert!(
        seen.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    let body = seen.json();
    assert_eq!(
        body["personalizations"],
        json!([{"to": [{"email": "user@example.com"}]}])
    );
    assert_eq!(body["from"], json!({"email": FROM, "name": "ACME"}));
    assert_eq!(body["subject"], "Your ACME code");
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": "Your code is 482910. It expires in 10 minutes."},
            {"type": "text/html", "value": "<p>Your code is <b>482910</b>.</p>"}
        ])
    );
    assert_eq!(
        body["custom_args"],
        json!({"otpd_reference": "att_0123456789"})
    );
    assert_eq!(body["tracking_settings"]["click_tracking"]["enable"], false);
    assert_eq!(body["tracking_settings"]["open_tracking"]["enable"], false);
    assert!(body.get("mail_settings").is_none());
}

#[tokio::test]
async fn text_only_mail_has_one_part_and_sandbox_is_passed_on() {
    let (base, log) = mock().await;
    let mut config = config(&base);
    config.sandbox_mode = true;
    config.reply_to = Some("support@acme.example".into());
    let provider = SendgridProvider::new("sendgrid".into(), config, client()).unwrap();
    provider
        .send(&email_message("user@example.com", false))
        .await
        .unwrap();
    let body = log.single().json();
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    assert_eq!(body["content"][0]["type"], "text/plain");
    assert_eq!(body["mail_settings"]["sandbox_mode"]["enable"], true);
    assert_eq!(body["reply_to"]["email"], "support@acme.example");
}

#[tokio::test]
async fn an_invalid_address_is_rejected() {
    let (base, _log) = mock().await;
    let error = expect_rejected(
        provider(&base)
            .send(&email_message("not-an-address", false))
            .await,
    );
    assert_eq!(error.code(), "400");
    assert!(
        error
            .to_string()
            .contains("Does not contain a valid address.")
    );
}

#[tokio::test]
async fn a_bad_key_or_unverified_sender_is_a_provider_error() {
    let (base, _log) = mock().await;
    let mut bad_key = config(&base);
    bad_key.api_key = "SG.revoked".into();
    let provider = SendgridProvider::new("sendgrid".into(), bad_key, client()).unwrap();
    let error = expect_provider(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "401");

    let mut unverified = config(&base);
    unverified.from_email = "someone@else.example".into();
    let provider = SendgridProvider::new("sendgrid".into(), unverified, client()).unwrap();
    let error = expect_provider(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "403");
}

#[tokio::test]
async fn rate_limits_and_outages_are_transient() {
    let (base, _log) = mock().await;
    let provider = provider(&base);
    let error = expect_transient(
        provider
            .send(&email_message("throttled@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "429");
    let error = expect_transient(
        provider
            .send(&email_message("broken@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "503");
}

#[tokio::test]
async fn a_silent_api_times_out_as_transient() {
    let (base, _log) = mock().await;
    let error = expect_transient(
        provider(&base)
            .send(&email_message("silent@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "timeout");
}

/// A fixed test key pair (the scalar is arbitrary) and its public key as SendGrid shows it:
/// base64 DER SubjectPublicKeyInfo.
fn test_key() -> (SigningKey, String) {
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(key.verifying_key().to_sec1_point(false).as_bytes());
    (key, STANDARD.encode(spki))
}

fn signed_events(key: &SigningKey, timestamp: &str, body: &[u8]) -> InboundRequest {
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let signature: Signature = key.sign(&signed);
    InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/sendgrid".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                "x-twilio-email-event-webhook-signature".into(),
                STANDARD.encode(signature.to_der().as_bytes()),
            ),
            (
                "x-twilio-email-event-webhook-timestamp".into(),
                timestamp.into(),
            ),
        ],
        body: body.to_vec(),
    }
}

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

const EVENTS: &str = r#"[{"email":"user@example.com","timestamp":1705320000,"event":"processed","sg_event_id":"cHJvY2Vzc2Vk","sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","otpd_reference":"att_0123456789"},
{"email":"user@example.com","timestamp":1705320003,"event":"delivered","response":"250 OK","sg_event_id":"ZGVsaXZlcmVk","sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","otpd_reference":"att_0123456789"},
{"email":"user@example.com","timestamp":1705320004,"event":"open","sg_event_id":"b3Blbg","sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"},
{"email":"gone@example.com","timestamp":1705320005,"event":"bounce","type":"bounce","status":"5.1.1","reason":"550 5.1.1 The email account that you tried to reach does not exist.","sg_event_id":"Ym91bmNl","sg_message_id":"Xq9Kp2vTQ0uV3rDxLmNbAw.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-10.0"}]
"#;

fn signed_provider(public_key: &str) -> SendgridProvider {
    let mut config = config("http://127.0.0.1:9");
    config.webhook_verification_key = Some(public_key.into());
    config.webhook_max_age_seconds = Some(300);
    SendgridProvider::new("sendgrid".into(), config, client()).unwrap()
}

#[test]
fn a_signed_event_batch_gives_receipts() {
    let (key, public) = test_key();
    let provider = signed_provider(&public);
    let reply = provider
        .receipt(&signed_events(&key, &now(), EVENTS.as_bytes()))
        .unwrap();
    let receipt = |id: &str, status, error: Option<&str>| Receipt {
        message_id: id.into(),
        status,
        error_code: error.map(str::to_string),
        price: None,
        segments: None,
    };
    assert_eq!(
        reply,
        ReceiptReply::Receipts(vec![
            receipt("LRzXl_NHStOGhQ4kofSm_A", DeliveryStatus::Sent, None),
            receipt("LRzXl_NHStOGhQ4kofSm_A", DeliveryStatus::Delivered, None),
            receipt(
                "Xq9Kp2vTQ0uV3rDxLmNbAw",
                DeliveryStatus::Undelivered,
                Some("5.1.1")
            ),
        ])
    );
}

#[test]
fn the_reference_vector_t17_is_accepted_without_an_age_limit() {
    let config = SendgridConfig {
        webhook_verification_key: Some("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==".into()),
        ..config("http://127.0.0.1:9")
    };
    let provider = SendgridProvider::new("sendgrid".into(), config, client()).unwrap();
    let webhook = InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/sendgrid".into(),
        headers: vec![
            ("x-twilio-email-event-webhook-signature".into(), "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=".into()),
            ("x-twilio-email-event-webhook-timestamp".into(), "1600112502".into()),
        ],
        body: b"[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n".to_vec(),
    };
    let ReceiptReply::Receipts(receipts) = provider.receipt(&webhook).unwrap() else {
        panic!("expected receipts");
    };
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].message_id, "LRzXl_NHStOGhQ4kofSm_A");
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
}

#[test]
fn tampered_stale_unsigned_or_foreign_batches_are_forged() {
    let (key, public) = test_key();
    let provider = signed_provider(&public);
    let timestamp = now();

    let mut tampered = signed_events(&key, &timestamp, EVENTS.as_bytes());
    tampered.body = EVENTS.replace("\"bounce\"", "\"delivered\"").into_bytes();
    assert!(matches!(
        provider.receipt(&tampered),
        Err(ReceiptError::Forged(_))
    ));

    let other = SigningKey::from_slice(&[0x17; 32]).unwrap();
    assert!(matches!(
        provider.receipt(&signed_events(&other, &timestamp, EVENTS.as_bytes())),
        Err(ReceiptError::Forged(_))
    ));

    let stale = (timestamp.parse::<u64>().unwrap() - 3600).to_string();
    assert!(matches!(
        provider.receipt(&signed_events(&key, &stale, EVENTS.as_bytes())),
        Err(ReceiptError::Forged(_))
    ));

    let mut unsigned = signed_events(&key, &timestamp, EVENTS.as_bytes());
    unsigned
        .headers
        .retain(|(name, _)| !name.contains("signature"));
    assert!(matches!(
        provider.receipt(&unsigned),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn a_signed_but_malformed_batch_is_malformed() {
    let (key, public) = test_key();
    let provider = signed_provider(&public);
    for body in [
        &b"{\"event\":\"delivered\"}"[..],
        b"[{\"event\":",
        b"[{\"email\":\"x\"}]",
    ] {
        assert!(matches!(
            provider.receipt(&signed_events(&key, &now(), body)),
            Err(ReceiptError::Malformed(_))
        ));
    }
}

#[test]
fn without_a_key_events_are_taken_unsigned() {
    let provider = provider("http://127.0.0.1:9");
    let webhook = InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/sendgrid".into(),
        headers: vec![],
        body: EVENTS.as_bytes().to_vec(),
    };
    let ReceiptReply::Receipts(receipts) = provider.receipt(&webhook).unwrap() else {
        panic!("expected receipts");
    };
    assert_eq!(receipts.len(), 3);
}

#[test]
fn a_bad_verification_key_fails_at_startup() {
    let mut config = config("http://127.0.0.1:9");
    config.webhook_verification_key = Some("definitely not a key".into());
    assert!(matches!(
        SendgridProvider::new("sendgrid".into(), config, client()),
        Err(SendgridConfigError::VerificationKey(_))
    ));
}
