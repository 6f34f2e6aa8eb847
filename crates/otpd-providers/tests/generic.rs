//! The generic HTTP gateway adapter against a mock gateway: templated form, JSON and GET
//! requests, id extraction and status classification.

use std::collections::BTreeMap;
use std::time::Duration;

use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, ReceiptError};
use otpd_providers::generic::{
    ContentType, GenericConfig, GenericConfigError, GenericProvider, Method,
};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use serde_json::json;

/// A typical aggregator: key header, 200 with an id, 400 for bad numbers.
fn gateway(request: &Recorded) -> Reply {
    if request.header("x-api-key") != Some("k3y") {
        return Reply::json(401, json!({"error": "unauthorized"}));
    }
    assert_eq!(request.path, "/api/send");
    let fields = if request.method == "GET" {
        request.query_pairs()
    } else if request.header("content-type") == Some("application/json") {
        request
            .json()
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_string()))
            .collect()
    } else {
        request.form()
    };
    let to = fields
        .iter()
        .find(|(key, _)| key == "msisdn")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    match testing::scenario_of(&to) {
        "0001" => {
            let echoed = field_value(&fields, "otp");
            return Reply::json(400, json!({"error": "invalid number", "otp": echoed}));
        }
        "0004" => return Reply::Body(429, "text/plain", "slow down".into()),
        "0005" => return Reply::Body(503, "text/plain", "down".into()),
        "0006" => return Reply::Hang,
        _ => {}
    }
    Reply::json(200, json!({"data": {"id": "gw-4711", "accepted": true}}))
}

fn config(base_url: &str, method: Method, content_type: ContentType) -> GenericConfig {
    let mut headers = BTreeMap::new();
    headers.insert("X-Api-Key".to_string(), "k3y".into());
    let mut body = BTreeMap::new();
    body.insert("msisdn".to_string(), "{{to_digits}}".to_string());
    body.insert("phone".to_string(), "{{to}}".to_string());
    body.insert("sender".to_string(), "{{from}}".to_string());
    body.insert("message".to_string(), "{{text}}".to_string());
    body.insert("otp".to_string(), "{{code}}".to_string());
    body.insert("ref".to_string(), "otp:{{reference}}".to_string());
    body.insert("dlr".to_string(), "{{receipt_url}}".to_string());
    GenericConfig {
        url: format!("{base_url}/api/send?account=42"),
        method,
        headers,
        content_type,
        body,
        message_id_pointer: Some("/data/id".to_string()),
        from: None,
    }
}

async fn provider(method: Method, content_type: ContentType) -> (testing::Mock, GenericProvider) {
    let mock = testing::start(gateway).await;
    let provider = GenericProvider::new(
        "gw".into(),
        config(&mock.base_url, method, content_type),
        testing::client(),
    )
    .unwrap();
    (mock, provider)
}

fn field_value(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// A text that needs escaping in every encoding.
fn tricky_message(to: &str) -> otpd_delivery::Message {
    let mut message = testing::message(to);
    message.text = "Code \"482910\" & {{code}} — ok\n".to_string();
    message
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn assert_fields(fields: &[(String, String)]) {
    assert_eq!(field(fields, "msisdn"), "491701234567");
    assert_eq!(field(fields, "phone"), "+491701234567");
    assert_eq!(field(fields, "sender"), "ACME");
    assert_eq!(
        field(fields, "message"),
        "Code \"482910\" & {{code}} — ok\n"
    );
    assert_eq!(field(fields, "otp"), "482910");
    assert_eq!(field(fields, "ref"), "otp:otp-req-123");
    assert_eq!(
        field(fields, "dlr"),
        "https://otp.example.com/webhooks/test/status"
    );
}

#[tokio::test]
async fn form_post_substitutes_and_encodes() {
    let (mock, provider) = provider(Method::Post, ContentType::Form).await;
    let accepted = provider
        .send(&tricky_message("+491701234567"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "gw-4711");
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    let request = mock.single();
    assert_eq!(request.method, "POST");
    assert_eq!(request.query.as_deref(), Some("account=42"));
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_fields(&request.form());
}

#[tokio::test]
async fn json_post_escapes_properly() {
    let (mock, provider) = provider(Method::Post, ContentType::Json).await;
    provider
        .send(&tricky_message("+491701234567"))
        .await
        .unwrap();
    let request = mock.single();
    assert_eq!(request.header("content-type"), Some("application/json"));
    let object = request.json();
    let fields: Vec<(String, String)> = object
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_string()))
        .collect();
    assert_fields(&fields);
}

#[tokio::test]
async fn get_puts_fields_in_the_query() {
    let (mock, provider) = provider(Method::Get, ContentType::Form).await;
    provider
        .send(&tricky_message("+491701234567"))
        .await
        .unwrap();
    let request = mock.single();
    assert_eq!(request.method, "GET");
    assert!(request.body.is_empty());
    let query = request.query_pairs();
    assert_eq!(field(&query, "account"), "42");
    assert_fields(&query);
}

#[tokio::test]
async fn without_a_pointer_the_reference_is_the_id() {
    let mock = testing::start(gateway).await;
    let mut config = config(&mock.base_url, Method::Post, ContentType::Form);
    config.message_id_pointer = None;
    let provider = GenericProvider::new("gw".into(), config, testing::client()).unwrap();
    let accepted = provider
        .send(&testing::message("+491701234567"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "otp-req-123");
}

#[tokio::test]
async fn failures_are_classified_by_status() {
    let (_mock, provider) = provider(Method::Post, ContentType::Json).await;
    let error = provider
        .send(&testing::message("+491701230001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "400");
    // The echoed code does not end up in the error text.
    assert!(!error.to_string().contains("482910"));
    for (to, code) in [("+491701230004", "429"), ("+491701230005", "503")] {
        let error = provider.send(&testing::message(to)).await.unwrap_err();
        assert_transient(&error);
        assert_eq!(error.code(), code);
    }
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(gateway).await;
    let provider = GenericProvider::new(
        "gw".into(),
        config(&mock.base_url, Method::Post, ContentType::Form),
        testing::client_with_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let error = provider
        .send(&testing::message("+491701230006"))
        .await
        .unwrap_err();
    assert_transient(&error);
}

#[tokio::test]
async fn bad_credentials_are_the_providers_problem() {
    let mock = testing::start(gateway).await;
    let mut config = config(&mock.base_url, Method::Post, ContentType::Form);
    config
        .headers
        .insert("X-Api-Key".to_string(), "wrong".into());
    let provider = GenericProvider::new("gw".into(), config, testing::client()).unwrap();
    let error = provider
        .send(&testing::message("+491701234567"))
        .await
        .unwrap_err();
    assert_provider(&error, "401");
}

#[test]
fn unusable_configurations_are_refused() {
    let base = config("http://127.0.0.1:9", Method::Post, ContentType::Form);
    let mut bad = base.clone();
    bad.body.insert("x".into(), "{{pin}}".into());
    assert!(matches!(
        GenericProvider::new("gw".into(), bad, reqwest::Client::new()),
        Err(GenericConfigError::Placeholder { .. })
    ));
    let mut bad = base.clone();
    bad.url = "not a url".into();
    assert!(matches!(
        GenericProvider::new("gw".into(), bad, reqwest::Client::new()),
        Err(GenericConfigError::Url(_))
    ));
    let mut bad = base.clone();
    bad.headers.insert("bad header".into(), "x".into());
    assert!(matches!(
        GenericProvider::new("gw".into(), bad, reqwest::Client::new()),
        Err(GenericConfigError::Header(_))
    ));
    let mut bad = base;
    bad.message_id_pointer = Some("data.id".into());
    assert!(matches!(
        GenericProvider::new("gw".into(), bad, reqwest::Client::new()),
        Err(GenericConfigError::Pointer(_))
    ));
}

#[test]
fn config_deserializes_with_defaults() {
    let config: GenericConfig = serde_json::from_value(json!({
        "url": "https://gw.example/send",
        "body": {"to": "{{to_digits}}", "text": "{{text}}"}
    }))
    .unwrap();
    assert_eq!(config.method, Method::Post);
    assert_eq!(config.content_type, ContentType::Form);
    let config: GenericConfig = serde_json::from_value(json!({
        "url": "https://gw.example/send", "method": "GET", "content_type": "json"
    }))
    .unwrap();
    assert_eq!(config.method, Method::Get);
    assert_eq!(config.content_type, ContentType::Json);
    assert!(
        serde_json::from_value::<GenericConfig>(json!({"url": "https://x", "nope": 1})).is_err()
    );
}

#[test]
fn no_receipts() {
    let provider = GenericProvider::new(
        "gw".into(),
        config("http://127.0.0.1:9", Method::Post, ContentType::Form),
        reqwest::Client::new(),
    )
    .unwrap();
    assert_eq!(
        provider.receipt(&InboundRequest::default()),
        Err(ReceiptError::NotSupported)
    );
}
