//! Meta WhatsApp Cloud API adapter against a local mock of `POST /{version}/{phone id}/messages`,
//! and its status-webhook verification.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use otpd_core::{Channel, DeliveryStatus};
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::testing::*;
use otpd_providers::whatsapp_cloud::{WhatsappCloudConfig, WhatsappCloudProvider};
use serde_json::{Value, json};
use sha2::Sha256;

const TOKEN: &str = "EAAGtestaccesstoken";
const PHONE_ID: &str = "106540352242922";
const APP_SECRET: &str = "test_app_secret";

fn graph_error(status: StatusCode, code: i64, message: &str, kind: &str) -> Response {
    (
        status,
        Json(json!({"error": {
            "message": message,
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf123"
        }})),
    )
        .into_response()
}

/// The mock Cloud API: checks the bearer token and the template body, then switches on the
/// recipient.
async fn messages(
    State(log): State<Log>,
    Path((version, phone_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(Recorded::new(method, &uri, &headers, &body));
    if version != "v21.0" || phone_id != PHONE_ID {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported post request. Object does not exist",
            "GraphMethodException",
        );
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired",
            "OAuthException",
        );
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            "OAuthException",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            "OAuthException",
        );
    };
    let code_ok = body.pointer("/template/components/0/parameters/0/text")
        == body.pointer("/template/components/1/parameters/0/text");
    if body["messaging_product"] != "whatsapp" || body["type"] != "template" || !code_ok {
        return graph_error(
            StatusCode::BAD_REQUEST,
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
            "OAuthException",
        );
    }
    let to = body["to"].as_str().unwrap_or("").to_string();
    match to.as_str() {
        "15005550001" => graph_error(
            StatusCode::BAD_REQUEST,
            131026,
            "(#131026) Message undeliverable",
            "OAuthException",
        ),
        "15005550004" => graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            130429,
            "(#130429) Rate limit hit",
            "OAuthException",
        ),
        "15005550005" => graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            "(#131000) Something went wrong",
            "OAuthException",
        ),
        "15005550009" => {
            hang().await;
            StatusCode::OK.into_response()
        }
        _ => Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": "wamid.HBgLMTIwMTU1NTM5MzEVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}]
        }))
        .into_response(),
    }
}

async fn mock() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new()
        .route(
            "/{version}/{phone_id}/messages",
            axum::routing::post(messages),
        )
        .with_state(log.clone());
    (serve(app).await, log)
}

fn config(base: &str) -> WhatsappCloudConfig {
    WhatsappCloudConfig {
        base_url: Some(format!("{base}/")),
        api_version: None,
        phone_number_id: PHONE_ID.into(),
        access_token: TOKEN.into(),
        template_name: "verification_code".into(),
        default_language: None,
        languages: Default::default(),
        app_secret: Some(APP_SECRET.into()),
        verify_token: Some("my-verify-token".into()),
    }
}

fn provider(base: &str) -> WhatsappCloudProvider {
    WhatsappCloudProvider::new("wa".into(), config(base), client())
}

#[tokio::test]
async fn sends_the_authentication_template_with_the_code_twice() {
    let (base, log) = mock().await;
    let provider = provider(&base);
    assert_eq!(provider.kind(), "whatsapp_cloud");
    let accepted = provider
        .send(&phone_message(Channel::Whatsapp, "+12015553931"))
        .await
        .unwrap();
    assert_eq!(
        accepted.message_id,
        "wamid.HBgLMTIwMTU1NTM5MzEVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
    );
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let seen = log.single();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, format!("/v21.0/{PHONE_ID}/messages"));
    assert_eq!(
        seen.header("authorization").unwrap_or(""),
        format!("Bearer {TOKEN}")
    );
    assert!(
        seen.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    assert_eq!(
        seen.json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "12015553931",
            "type": "template",
            "template": {
                "name": "verification_code",
                "language": {"code": "en_US"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "123456"}]},
                    {"type": "button", "sub_type": "url", "index": "0",
                     "parameters": [{"type": "text", "text": "123456"}]}
                ]
            }
        })
    );
}

#[tokio::test]
async fn template_language_follows_the_locale_and_the_configuration() {
    let (base, log) = mock().await;
    let mut config = config(&base);
    config.default_language = Some("es".into());
    config.languages.insert("fr-CA".into(), "fr".into());
    let provider = WhatsappCloudProvider::new("wa".into(), config, client());
    for (locale, expected) in [
        ("pt-BR", "pt_BR"),
        ("pt", "pt_BR"),
        ("fr-CA", "fr"),
        ("", "es"),
        ("de", "de"),
    ] {
        let mut message = phone_message(Channel::Whatsapp, "+12015553931");
        message.locale = locale.into();
        provider.send(&message).await.unwrap();
        let last = log.requests().pop().unwrap();
        assert_eq!(
            last.json()["template"]["language"]["code"],
            expected,
            "{locale}"
        );
    }
}

#[tokio::test]
async fn not_a_whatsapp_user_is_rejected() {
    let (base, _log) = mock().await;
    let error = expect_rejected(
        provider(&base)
            .send(&phone_message(Channel::Whatsapp, "+15005550001"))
            .await,
    );
    assert_eq!(error.code(), "131026");
}

#[tokio::test]
async fn an_expired_token_is_a_provider_error() {
    let (base, _log) = mock().await;
    let mut config = config(&base);
    config.access_token = "EAAGwrong".into();
    let provider = WhatsappCloudProvider::new("wa".into(), config, client());
    let error = expect_provider(
        provider
            .send(&phone_message(Channel::Whatsapp, "+12015553931"))
            .await,
    );
    assert_eq!(error.code(), "190");
}

#[tokio::test]
async fn rate_limits_and_outages_are_transient() {
    let (base, _log) = mock().await;
    let provider = provider(&base);
    let limited = expect_transient(
        provider
            .send(&phone_message(Channel::Whatsapp, "+15005550004"))
            .await,
    );
    assert_eq!(limited.code(), "130429");
    let broken = expect_transient(
        provider
            .send(&phone_message(Channel::Whatsapp, "+15005550005"))
            .await,
    );
    assert_eq!(broken.code(), "131000");
}

#[tokio::test]
async fn a_silent_api_times_out_as_transient() {
    let (base, _log) = mock().await;
    let error = expect_transient(
        provider(&base)
            .send(&phone_message(Channel::Whatsapp, "+15005550009"))
            .await,
    );
    assert_eq!(error.code(), "timeout");
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn status_webhook(body: &[u8], signature: Option<String>) -> InboundRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(signature) = signature {
        headers.push(("x-hub-signature-256".into(), signature));
    }
    InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/wa".into(),
        headers,
        body: body.to_vec(),
    }
}

const STATUSES: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.A","status":"sent","timestamp":"1705320001","recipient_id":"16505551234"},{"id":"wamid.A","status":"read","timestamp":"1705320009","recipient_id":"16505551234"},{"id":"wamid.B","status":"failed","timestamp":"1705320010","recipient_id":"16505551235","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Message Undeliverable."}}]}]}}]}]}"#;

#[test]
fn a_signed_status_webhook_gives_receipts() {
    let provider = provider("http://127.0.0.1:9");
    let body = STATUSES.as_bytes();
    let reply = provider
        .receipt(&status_webhook(body, Some(sign(APP_SECRET, body))))
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
            receipt("wamid.A", DeliveryStatus::Sent, None),
            receipt("wamid.A", DeliveryStatus::Delivered, None),
            receipt("wamid.B", DeliveryStatus::Undelivered, Some("131026")),
        ])
    );
}

#[test]
fn the_reference_vector_t16_is_accepted() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA","status":"delivered","timestamp":"1705320005","recipient_id":"16505551234"}]},"field":"messages"}]}]}"#;
    let reply = provider("http://127.0.0.1:9")
        .receipt(&status_webhook(
            body.as_bytes(),
            Some("sha256=d56a9e02d4d031dcb88f0de066a4443096f80ec6349e64741c10096f9d91eb15".into()),
        ))
        .unwrap();
    let ReceiptReply::Receipts(receipts) = reply else {
        panic!("expected receipts");
    };
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].status, DeliveryStatus::Delivered);
}

#[test]
fn tampered_unsigned_or_wrongly_keyed_webhooks_are_forged() {
    let provider = provider("http://127.0.0.1:9");
    let body = STATUSES.as_bytes();
    let signature = sign(APP_SECRET, body);
    let tampered = STATUSES.replace("\"failed\"", "\"delivered\"");
    assert!(matches!(
        provider.receipt(&status_webhook(tampered.as_bytes(), Some(signature))),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        provider.receipt(&status_webhook(body, Some(sign("another_secret", body)))),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        provider.receipt(&status_webhook(body, None)),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn a_signed_but_malformed_webhook_is_malformed() {
    let provider = provider("http://127.0.0.1:9");
    for body in [
        &b"{not json"[..],
        br#"{"object":"whatsapp_business_account"}"#,
    ] {
        assert!(matches!(
            provider.receipt(&status_webhook(body, Some(sign(APP_SECRET, body)))),
            Err(ReceiptError::Malformed(_))
        ));
    }
}

#[test]
fn webhooks_without_statuses_record_nothing() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"16505551234","id":"wamid.X","type":"text"}]}}]}]}"#;
    assert_eq!(
        provider("http://127.0.0.1:9")
            .receipt(&status_webhook(body, Some(sign(APP_SECRET, body))))
            .unwrap(),
        ReceiptReply::Receipts(vec![])
    );
}

#[test]
fn without_an_app_secret_receipts_are_not_supported() {
    let mut config = config("http://127.0.0.1:9");
    config.app_secret = None;
    let provider = WhatsappCloudProvider::new("wa".into(), config, client());
    let body = STATUSES.as_bytes();
    assert_eq!(
        provider.receipt(&status_webhook(body, Some(sign(APP_SECRET, body)))),
        Err(ReceiptError::NotSupported)
    );
}

fn handshake(query: &str) -> InboundRequest {
    InboundRequest {
        method: "GET".into(),
        url: format!("https://otp.example.com/webhooks/wa?{query}"),
        headers: vec![],
        body: vec![],
    }
}

#[test]
fn the_subscription_handshake_echoes_the_challenge() {
    let provider = provider("http://127.0.0.1:9");
    assert_eq!(
        provider
            .receipt(&handshake(
                "hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444"
            ))
            .unwrap(),
        ReceiptReply::Challenge("1158201444".into())
    );
    assert!(matches!(
        provider.receipt(&handshake(
            "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444"
        )),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        provider.receipt(&handshake("hub.challenge=1158201444")),
        Err(ReceiptError::Malformed(_))
    ));
}
