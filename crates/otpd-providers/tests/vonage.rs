//! Vonage SMS API adapter against a mock of `POST /sms/json` (§2.1 of the provider
//! reference) and its delivery receipts (§2.1, signatures §2.3a).

use std::time::Duration;

use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use otpd_providers::vonage::{SignatureMethod, VonageConfig, VonageProvider, compute_signature};
use serde_json::json;

const KEY: &str = "abcd1234";
const SECRET: &str = "abcdef0123456789";
const SIGNATURE_SECRET: &str = "my_secret_key_for_testing";

fn status(code: &str, text: &str) -> Reply {
    Reply::json(
        200,
        json!({"message-count": "1", "messages": [{"status": code, "error-text": text}]}),
    )
}

/// Vonage as documented: form body with credentials, 200 for success and most errors.
fn vonage(request: &Recorded) -> Reply {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/sms/json");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    if request.form_field("api_key").as_deref() != Some(KEY)
        || request.form_field("api_secret").as_deref() != Some(SECRET)
    {
        return status("4", "Bad Credentials");
    }
    let to = request.form_field("to").unwrap_or_default();
    assert!(to.chars().all(|c| c.is_ascii_digit()), "to must be digits");
    match testing::scenario_of(&to) {
        "0001" => return status("6", "Unroutable message - rejected"),
        "0003" => return status("7", "Number barred."),
        "0004" => {
            return Reply::json(
                429,
                json!({"type": "https://developer.vonage.com/api-errors#rate-limit",
                       "title": "Rate Limit Hit", "detail": "Please wait, then retry your request",
                       "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf"}),
            );
        }
        "0005" => return Reply::Body(503, "text/html", "<html>unavailable</html>".into()),
        "0006" => return Reply::Hang,
        "0007" => return status("1", "Throttled"),
        "0009" => return status("9", "Partner quota exceeded"),
        _ => {}
    }
    let client_ref = request.form_field("client-ref");
    let part = |id: &str| {
        json!({"to": to, "message-id": id, "status": "0",
               "remaining-balance": "37.43563628", "message-price": "0.04120000",
               "network": "23420", "client-ref": client_ref})
    };
    if request.form_field("type").as_deref() == Some("unicode") {
        return Reply::json(
            200,
            json!({"message-count": "2", "messages": [
                part("62dfdf68-6c7c-479a-a190-5c52f798a787"),
                part("72ff9536-62d6-455a-9f0b-65f3c265b423")]}),
        );
    }
    Reply::json(
        200,
        json!({"message-count": "1", "messages": [part("62dfdf68-6c7c-479a-a190-5c52f798a787")]}),
    )
}

fn config(base_url: &str) -> VonageConfig {
    VonageConfig {
        base_url: Some(base_url.to_string()),
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        from: Some("ACME".to_string()),
        signature_secret: None,
        signature_method: SignatureMethod::default(),
    }
}

async fn provider() -> (testing::Mock, VonageProvider) {
    let mock = testing::start(vonage).await;
    let provider = VonageProvider::new("vonage".into(), config(&mock.base_url), testing::client());
    (mock, provider)
}

#[tokio::test]
async fn sms_is_sent_with_the_documented_form() {
    let (mock, provider) = provider().await;
    let accepted = provider
        .send(&testing::message("+447700900000"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "62dfdf68-6c7c-479a-a190-5c52f798a787");
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    assert_eq!(accepted.segments, Some(1));
    assert_eq!(accepted.price, Some(0.0412));

    let request = mock.single();
    assert_eq!(request.form_field("to").as_deref(), Some("447700900000"));
    assert_eq!(request.form_field("from").as_deref(), Some("ACME"));
    assert_eq!(
        request.form_field("text").as_deref(),
        Some("Your ACME code is 482910")
    );
    assert_eq!(request.form_field("type").as_deref(), Some("text"));
    // Validity in milliseconds.
    assert_eq!(request.form_field("ttl").as_deref(), Some("600000"));
    assert_eq!(
        request.form_field("client-ref").as_deref(),
        Some("otp-req-123")
    );
    assert_eq!(
        request.form_field("callback").as_deref(),
        Some("https://otp.example.com/webhooks/test/status")
    );
    assert_eq!(
        request.form_field("status-report-req").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn non_gsm_text_goes_as_unicode_and_sums_parts() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+447700900000");
    message.text = "Ваш код подтверждения 482910 — никому его не сообщайте. Сотрудники никогда не спросят его.".into();
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(mock.single().form_field("type").as_deref(), Some("unicode"));
    assert_eq!(accepted.segments, Some(2));
    assert!((accepted.price.unwrap() - 0.0824).abs() < 1e-9);
}

#[tokio::test]
async fn invalid_number_is_rejected_with_vonages_status() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+447700900001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "6");
    let error = provider
        .send(&testing::message("+447700900003"))
        .await
        .unwrap_err();
    assert_rejected(&error, "7");
}

#[tokio::test]
async fn throttling_and_outages_are_transient() {
    let (_mock, provider) = provider().await;
    for (to, code) in [
        ("+447700900004", "429"),
        ("+447700900005", "503"),
        ("+447700900007", "1"),
    ] {
        let error = provider.send(&testing::message(to)).await.unwrap_err();
        assert_transient(&error);
        assert_eq!(error.code(), code);
    }
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(vonage).await;
    let provider = VonageProvider::new(
        "v".into(),
        config(&mock.base_url),
        testing::client_with_timeout(Duration::from_millis(300)),
    );
    let error = provider
        .send(&testing::message("+447700900006"))
        .await
        .unwrap_err();
    assert_transient(&error);
}

#[tokio::test]
async fn bad_credentials_and_no_credit_are_the_providers_problem() {
    let mock = testing::start(vonage).await;
    let mut config = config(&mock.base_url);
    config.api_secret = "wrong".into();
    let provider = VonageProvider::new("v".into(), config, testing::client());
    let error = provider
        .send(&testing::message("+447700900000"))
        .await
        .unwrap_err();
    assert_provider(&error, "4");

    let (_mock, provider) = self::provider().await;
    let error = provider
        .send(&testing::message("+447700900009"))
        .await
        .unwrap_err();
    assert_provider(&error, "9");
}

const DLR_QUERY: &str = "msisdn=447700900000&to=ACME&network-code=23410&messageId=0A0000001234567B&price=0.03330000&status=delivered&scts=2001011400&err-code=0&api-key=abcd1234&client-ref=otp-req-123&message-timestamp=2020-01-01+12%3A00%3A00";

fn signed_provider(method: SignatureMethod) -> VonageProvider {
    let mut config = config("http://127.0.0.1:9");
    config.signature_secret = Some(SIGNATURE_SECRET.into());
    config.signature_method = method;
    VonageProvider::new("v".into(), config, reqwest::Client::new())
}

fn get(query: &str) -> InboundRequest {
    InboundRequest {
        method: "GET".into(),
        url: format!("https://otp.example.com/webhooks/vonage/dlr?{query}"),
        headers: vec![],
        body: vec![],
    }
}

fn signed_query(query: &str, secret: &str, method: SignatureMethod) -> String {
    let mut params = otpd_delivery::provider::form_pairs(query.as_bytes());
    params.push(("timestamp".into(), "1705320005".into()));
    params.push((
        "nonce".into(),
        "a0b1c2d3-aaaa-bbbb-cccc-0123456789ab".into(),
    ));
    let sig = compute_signature(&params, secret, method);
    params.push(("sig".into(), sig));
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in &params {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

fn expected_delivered() -> ReceiptReply {
    ReceiptReply::Receipts(vec![Receipt {
        message_id: "0A0000001234567B".into(),
        status: DeliveryStatus::Delivered,
        error_code: None,
        price: Some(0.0333),
        segments: None,
    }])
}

#[test]
fn unsigned_get_receipt_parses_when_no_secret_is_set() {
    let provider = VonageProvider::new(
        "v".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    );
    assert_eq!(
        provider.receipt(&get(DLR_QUERY)).unwrap(),
        expected_delivered()
    );
}

#[test]
fn signed_receipts_verify_with_every_method() {
    for method in [
        SignatureMethod::Md5hash,
        SignatureMethod::Md5,
        SignatureMethod::Sha1,
        SignatureMethod::Sha256,
        SignatureMethod::Sha512,
    ] {
        let query = signed_query(DLR_QUERY, SIGNATURE_SECRET, method);
        assert_eq!(
            signed_provider(method).receipt(&get(&query)).unwrap(),
            expected_delivered(),
            "{method:?}"
        );
    }
}

#[test]
fn signed_post_form_and_json_receipts_verify() {
    let method = SignatureMethod::Sha256;
    let body = signed_query(DLR_QUERY, SIGNATURE_SECRET, method);
    let form = InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/vonage/dlr".into(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.clone().into_bytes(),
    };
    assert_eq!(
        signed_provider(method).receipt(&form).unwrap(),
        expected_delivered()
    );

    let object: serde_json::Map<String, serde_json::Value> =
        otpd_delivery::provider::form_pairs(body.as_bytes())
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::String(value)))
            .collect();
    let json = InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/vonage/dlr".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::Value::Object(object).to_string().into_bytes(),
    };
    assert_eq!(
        signed_provider(method).receipt(&json).unwrap(),
        expected_delivered()
    );
}

#[test]
fn tampered_or_unsigned_receipt_is_forged() {
    let method = SignatureMethod::Md5hash;
    let query = signed_query(DLR_QUERY, SIGNATURE_SECRET, method);
    let tampered = query.replace("status=delivered", "status=failed");
    assert!(matches!(
        signed_provider(method).receipt(&get(&tampered)),
        Err(ReceiptError::Forged(_))
    ));
    let other_secret = signed_query(DLR_QUERY, "not-the-secret", method);
    assert!(matches!(
        signed_provider(method).receipt(&get(&other_secret)),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        signed_provider(method).receipt(&get(DLR_QUERY)),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn failed_receipt_carries_the_error_code() {
    let query = DLR_QUERY
        .replace("status=delivered", "status=failed")
        .replace("err-code=0", "err-code=9");
    let method = SignatureMethod::Sha1;
    let signed = signed_query(&query, SIGNATURE_SECRET, method);
    let ReceiptReply::Receipts(receipts) = signed_provider(method).receipt(&get(&signed)).unwrap()
    else {
        panic!("expected receipts");
    };
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
    assert_eq!(receipts[0].error_code.as_deref(), Some("9"));
}

#[test]
fn malformed_receipts_are_refused() {
    let provider = VonageProvider::new(
        "v".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    );
    assert!(matches!(
        provider.receipt(&get("msisdn=447700900000&status=delivered")),
        Err(ReceiptError::Malformed(_))
    ));
    assert!(matches!(
        provider.receipt(&get("messageId=1&status=teleported")),
        Err(ReceiptError::Malformed(_))
    ));
    let json = InboundRequest {
        method: "POST".into(),
        url: "https://otp.example.com/webhooks/vonage/dlr".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{not json".to_vec(),
    };
    assert!(matches!(
        provider.receipt(&json),
        Err(ReceiptError::Malformed(_))
    ));
}

#[tokio::test]
async fn other_channels_are_refused_without_a_request() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+447700900000");
    message.channel = otpd_core::Channel::Call;
    let error = provider.send(&message).await.unwrap_err();
    assert_provider(&error, "channel");
    assert!(mock.requests().is_empty());
}
