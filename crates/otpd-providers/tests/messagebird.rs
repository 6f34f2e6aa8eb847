//! MessageBird adapter against a mock of `POST /messages` (§3 of the provider reference) and
//! its JWT-signed status reports.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::messagebird::{MessageBirdConfig, MessageBirdProvider};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use serde_json::json;
use sha2::Digest;

const ACCESS_KEY: &str = "live_abcdefghijklmnopqrstuvwxyz";
const SIGNING_KEY: &str = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb";
const ID: &str = "6fe65f90454aa61536e6a88b88972670";

fn errors(status: u16, code: u32, description: &str, parameter: &str) -> Reply {
    Reply::json(
        status,
        json!({"errors": [{"code": code, "description": description, "parameter": parameter}]}),
    )
}

/// MessageBird as documented: AccessKey auth, JSON body, 201 with the Message object.
fn messagebird(request: &Recorded) -> Reply {
    if request.header("authorization") != Some(&format!("AccessKey {ACCESS_KEY}")) {
        return errors(
            401,
            2,
            "Request not allowed (incorrect access_key)",
            "access_key",
        );
    }
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/messages");
    assert!(
        request
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    let body = request.json();
    let recipient = body["recipients"][0].as_str().unwrap_or("").to_string();
    assert!(recipient.chars().all(|c| c.is_ascii_digit()));
    match testing::scenario_of(&recipient) {
        "0001" => return errors(422, 9, "no (correct) recipients found", "recipient"),
        "0004" => return Reply::Body(429, "text/plain", "Too Many Requests".into()),
        "0005" => return errors(500, 99, "Internal error", ""),
        "0006" => return Reply::Hang,
        "0008" => return errors(402, 25, "Not enough balance", ""),
        _ => {}
    }
    Reply::json(
        201,
        json!({"id": ID, "href": format!("https://rest.messagebird.com/messages/{ID}"),
               "direction": "mt", "type": "sms", "originator": body["originator"],
               "body": body["body"], "reference": body["reference"], "validity": body["validity"],
               "gateway": 10, "typeDetails": {}, "datacoding": "plain", "mclass": 1,
               "scheduledDatetime": null, "createdDatetime": "2024-01-15T12:00:00+00:00",
               "recipients": {"totalCount": 1, "totalSentCount": 1, "totalDeliveredCount": 0,
                 "totalDeliveryFailedCount": 0,
                 "items": [{"recipient": recipient.parse::<u64>().unwrap(), "status": "sent",
                            "statusDatetime": "2024-01-15T12:00:00+00:00", "messagePartCount": 1}]}}),
    )
}

fn config(base_url: &str) -> MessageBirdConfig {
    MessageBirdConfig {
        base_url: Some(base_url.to_string()),
        access_key: ACCESS_KEY.into(),
        originator: Some("ACME".to_string()),
        signing_key: Some(SIGNING_KEY.into()),
    }
}

async fn provider() -> (testing::Mock, MessageBirdProvider) {
    let mock = testing::start(messagebird).await;
    let provider = MessageBirdProvider::new("mb".into(), config(&mock.base_url), testing::client());
    (mock, provider)
}

#[tokio::test]
async fn sms_is_sent_with_the_documented_body() {
    let (mock, provider) = provider().await;
    let accepted = provider
        .send(&testing::message("+31612345678"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, ID);
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    assert_eq!(accepted.segments, Some(1));

    let request = mock.single();
    let body = request.json();
    assert_eq!(body["recipients"], json!(["31612345678"]));
    assert_eq!(body["originator"], "ACME");
    assert_eq!(body["body"], "Your ACME code is 482910");
    assert_eq!(body["reference"], "otp-req-123");
    assert_eq!(
        body["reportUrl"],
        "https://otp.example.com/webhooks/test/status"
    );
    // Validity in seconds.
    assert_eq!(body["validity"], 600);
    assert_eq!(body["datacoding"], "auto");
}

#[tokio::test]
async fn invalid_number_is_rejected_with_messagebirds_code() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+31612340001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "9");
}

#[tokio::test]
async fn throttling_and_outages_are_transient() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+31612340004"))
        .await
        .unwrap_err();
    assert_transient(&error);
    assert_eq!(error.code(), "429");
    let error = provider
        .send(&testing::message("+31612340005"))
        .await
        .unwrap_err();
    assert_transient(&error);
    assert_eq!(error.code(), "99");
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(messagebird).await;
    let provider = MessageBirdProvider::new(
        "mb".into(),
        config(&mock.base_url),
        testing::client_with_timeout(Duration::from_millis(300)),
    );
    let error = provider
        .send(&testing::message("+31612340006"))
        .await
        .unwrap_err();
    assert_transient(&error);
}

#[tokio::test]
async fn bad_credentials_and_no_balance_are_the_providers_problem() {
    let mock = testing::start(messagebird).await;
    let mut config = config(&mock.base_url);
    config.access_key = "wrong".into();
    let provider = MessageBirdProvider::new("mb".into(), config, testing::client());
    let error = provider
        .send(&testing::message("+31612345678"))
        .await
        .unwrap_err();
    assert_provider(&error, "2");

    let (_mock, provider) = self::provider().await;
    let error = provider
        .send(&testing::message("+31612340008"))
        .await
        .unwrap_err();
    assert_provider(&error, "25");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Mints a status-report JWT the way MessageBird does (independently of the adapter).
fn mint(key: &str, url: &str, body: &[u8], nbf: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = json!({"iss": "MessageBird", "nbf": nbf, "exp": nbf + 60,
        "jti": "c946af77-e182-4eaa-b2ff-1a545b5e991a",
        "url_hash": hex::encode(sha2::Sha256::digest(url.as_bytes()))});
    if !body.is_empty() {
        claims["payload_hash"] = hex::encode(sha2::Sha256::digest(body)).into();
    }
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

const REPORT_URL: &str = "https://otp.example.com/webhooks/messagebird?id=6fe65f90454aa61536e6a88b88972670&reference=otp-req-123&recipient=31612345678&status=delivered&statusDatetime=2024-01-15T12%3A00%3A03%2B00%3A00&statusReason=successfully+delivered&mccmnc=20408&ported=0&price%5Bamount%5D=0.07&price%5Bcurrency%5D=EUR&messagePartCount=1";

fn report(url: &str, token: Option<String>) -> InboundRequest {
    InboundRequest {
        method: "GET".into(),
        url: url.into(),
        headers: token
            .map(|token| vec![("messagebird-signature-jwt".to_string(), token)])
            .unwrap_or_default(),
        body: vec![],
    }
}

fn offline() -> MessageBirdProvider {
    MessageBirdProvider::new(
        "mb".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    )
}

#[test]
fn signed_status_report_parses() {
    let token = mint(SIGNING_KEY, REPORT_URL, b"", now());
    assert_eq!(
        offline().receipt(&report(REPORT_URL, Some(token))).unwrap(),
        ReceiptReply::Receipts(vec![Receipt {
            message_id: ID.into(),
            status: DeliveryStatus::Delivered,
            error_code: None,
            price: Some(0.07),
            segments: Some(1),
        }])
    );
}

#[test]
fn failed_report_carries_the_error_code() {
    let url =
        REPORT_URL.replace("status=delivered", "status=delivery_failed") + "&statusErrorCode=1";
    let token = mint(SIGNING_KEY, &url, b"", now());
    let ReceiptReply::Receipts(receipts) = offline().receipt(&report(&url, Some(token))).unwrap()
    else {
        panic!("expected receipts");
    };
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
    assert_eq!(receipts[0].error_code.as_deref(), Some("1"));
}

#[test]
fn tampered_reports_are_forged() {
    let token = mint(SIGNING_KEY, REPORT_URL, b"", now());
    let tampered = REPORT_URL.replace("status=delivered", "status=expired");
    assert!(matches!(
        offline().receipt(&report(&tampered, Some(token))),
        Err(ReceiptError::Forged(_))
    ));
    let other_key = mint("another-signing-key", REPORT_URL, b"", now());
    assert!(matches!(
        offline().receipt(&report(REPORT_URL, Some(other_key))),
        Err(ReceiptError::Forged(_))
    ));
    let stale = mint(SIGNING_KEY, REPORT_URL, b"", now() - 3600);
    assert!(matches!(
        offline().receipt(&report(REPORT_URL, Some(stale))),
        Err(ReceiptError::Forged(_))
    ));
    assert!(matches!(
        offline().receipt(&report(REPORT_URL, None)),
        Err(ReceiptError::Forged(_))
    ));
    // Without a configured signing key nothing is accepted.
    let mut config = config("http://127.0.0.1:9");
    config.signing_key = None;
    let unkeyed = MessageBirdProvider::new("mb".into(), config, reqwest::Client::new());
    let token = mint(SIGNING_KEY, REPORT_URL, b"", now());
    assert!(matches!(
        unkeyed.receipt(&report(REPORT_URL, Some(token))),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn signed_but_incomplete_report_is_malformed() {
    let url = "https://otp.example.com/webhooks/messagebird?reference=otp-req-123&status=delivered";
    let token = mint(SIGNING_KEY, url, b"", now());
    assert!(matches!(
        offline().receipt(&report(url, Some(token))),
        Err(ReceiptError::Malformed(_))
    ));
}
