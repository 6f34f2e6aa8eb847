//! Infobip adapter against a mock of `/sms/2/text/advanced` (§5.3 of the provider reference)
//! and its token-guarded JSON delivery reports.

use std::time::Duration;

use otpd_core::DeliveryStatus;
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::infobip::{InfobipConfig, InfobipProvider};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use serde_json::json;

const API_KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
const TOKEN: &str = "s3cr3t-receipt-token";

fn request_error(status: u16, id: &str, text: &str) -> Reply {
    Reply::json(
        status,
        json!({"requestError": {"serviceException": {"messageId": id, "text": text}}}),
    )
}

fn sent(to: &str, message_id: &str, group: (i64, &str), status: (i64, &str, &str)) -> Reply {
    Reply::json(
        200,
        json!({"bulkId": "2034072219640523072",
               "messages": [{"to": to, "messageId": message_id,
                 "status": {"groupId": group.0, "groupName": group.1, "id": status.0,
                            "name": status.1, "description": status.2}}]}),
    )
}

/// Infobip as documented: `App` auth, JSON, 200 with a per-destination status.
fn infobip(request: &Recorded) -> Reply {
    if request.header("authorization") != Some(&format!("App {API_KEY}")) {
        return request_error(401, "UNAUTHORIZED", "Invalid login details");
    }
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/sms/2/text/advanced");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let destination = &body["messages"][0]["destinations"][0];
    let to = destination["to"].as_str().unwrap_or("").to_string();
    let message_id = destination["messageId"].as_str().unwrap_or("").to_string();
    assert!(to.chars().all(|c| c.is_ascii_digit()));
    match testing::scenario_of(&to) {
        "0001" => {
            return sent(
                &to,
                &message_id,
                (5, "REJECTED"),
                (52, "REJECTED_DESTINATION", "Invalid destination address"),
            );
        }
        "0002" => {
            return Reply::json(
                400,
                json!({"requestError": {"serviceException": {"messageId": "BAD_REQUEST",
                  "text": "Bad request",
                  "validationErrors": {"messages[0].destinations[0].to": ["invalid destination address format"]}}}}),
            );
        }
        "0004" => return request_error(429, "TOO_MANY_REQUESTS", "Too many requests"),
        "0005" => return request_error(500, "GENERAL_ERROR", "Something went wrong"),
        "0006" => return Reply::Hang,
        "0008" => {
            return sent(
                &to,
                &message_id,
                (5, "REJECTED"),
                (12, "REJECTED_NOT_ENOUGH_CREDITS", "Not enough credits"),
            );
        }
        "0009" => {
            return sent(
                &to,
                &message_id,
                (5, "REJECTED"),
                (23, "REJECTED_DUPLICATE_MESSAGE_ID", "Duplicate message id"),
            );
        }
        _ => {}
    }
    sent(
        &to,
        &message_id,
        (1, "PENDING"),
        (26, "PENDING_ACCEPTED", "Message sent to next instance"),
    )
}

fn config(base_url: &str) -> InfobipConfig {
    InfobipConfig {
        base_url: Some(base_url.to_string()),
        api_key: API_KEY.into(),
        from: Some("ACME".to_string()),
        receipt_token: Some(TOKEN.into()),
    }
}

async fn provider() -> (testing::Mock, InfobipProvider) {
    let mock = testing::start(infobip).await;
    let provider = InfobipProvider::new("ib".into(), config(&mock.base_url), testing::client());
    (mock, provider)
}

#[tokio::test]
async fn sms_is_sent_with_the_documented_body() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+41793026727");
    message.validity_seconds = 599;
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(accepted.message_id, "otp-req-123");
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let request = mock.single();
    assert_eq!(request.header("accept"), Some("application/json"));
    let sms = &request.json()["messages"][0];
    assert_eq!(
        sms["destinations"],
        json!([{"to": "41793026727", "messageId": "otp-req-123"}])
    );
    assert_eq!(sms["from"], "ACME");
    assert_eq!(sms["text"], "Your ACME code is 482910");
    // Minutes, rounded up.
    assert_eq!(sms["validityPeriod"], 10);
    assert_eq!(
        sms["notifyUrl"],
        format!("https://otp.example.com/webhooks/test/status?token={TOKEN}")
    );
    assert_eq!(sms["notifyContentType"], "application/json");
}

#[tokio::test]
async fn no_receipt_token_means_no_notify_url() {
    let mock = testing::start(infobip).await;
    let mut config = config(&mock.base_url);
    config.receipt_token = None;
    let provider = InfobipProvider::new("ib".into(), config, testing::client());
    provider
        .send(&testing::message("+41793026727"))
        .await
        .unwrap();
    let sms = &mock.single().json()["messages"][0];
    assert!(sms.get("notifyUrl").is_none());
}

#[tokio::test]
async fn invalid_numbers_are_rejected() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+41793020001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "REJECTED_DESTINATION");
    let error = provider
        .send(&testing::message("+41793020002"))
        .await
        .unwrap_err();
    assert_rejected(&error, "BAD_REQUEST");
}

#[tokio::test]
async fn a_duplicate_message_id_means_the_first_send_was_taken() {
    let (_mock, provider) = provider().await;
    let accepted = provider
        .send(&testing::message("+41793020009"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "otp-req-123");
}

#[tokio::test]
async fn throttling_and_outages_are_transient() {
    let (_mock, provider) = provider().await;
    for (to, code) in [
        ("+41793020004", "TOO_MANY_REQUESTS"),
        ("+41793020005", "GENERAL_ERROR"),
    ] {
        let error = provider.send(&testing::message(to)).await.unwrap_err();
        assert_transient(&error);
        assert_eq!(error.code(), code);
    }
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(infobip).await;
    let provider = InfobipProvider::new(
        "ib".into(),
        config(&mock.base_url),
        testing::client_with_timeout(Duration::from_millis(300)),
    );
    let error = provider
        .send(&testing::message("+41793020006"))
        .await
        .unwrap_err();
    assert_transient(&error);
}

#[tokio::test]
async fn bad_credentials_and_no_credit_are_the_providers_problem() {
    let mock = testing::start(infobip).await;
    let mut config = config(&mock.base_url);
    config.api_key = "wrong".into();
    let provider = InfobipProvider::new("ib".into(), config, testing::client());
    let error = provider
        .send(&testing::message("+41793026727"))
        .await
        .unwrap_err();
    assert_provider(&error, "UNAUTHORIZED");

    let (_mock, provider) = self::provider().await;
    let error = provider
        .send(&testing::message("+41793020008"))
        .await
        .unwrap_err();
    assert_provider(&error, "REJECTED_NOT_ENOUGH_CREDITS");
}

fn report_body() -> String {
    json!({"results": [
        {"bulkId": "2034072219640523072", "messageId": "otp-req-123", "to": "41793026727",
         "sentAt": "2024-01-15T12:00:00.000+0000", "doneAt": "2024-01-15T12:00:03.000+0000",
         "smsCount": 1, "mccMnc": "22801", "callbackData": "otp-req-123",
         "price": {"pricePerMessage": 0.01, "currency": "EUR"},
         "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                    "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset"},
         "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                   "description": "No Error", "permanent": false}},
        {"bulkId": "2034072219640523072", "messageId": "otp-req-124", "to": "41793026728",
         "smsCount": 1,
         "status": {"groupId": 2, "groupName": "UNDELIVERABLE", "id": 9,
                    "name": "UNDELIVERABLE_NOT_DELIVERED", "description": "Message not delivered"},
         "error": {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER",
                   "description": "Absent Subscriber", "permanent": false}}]})
    .to_string()
}

fn report(url: &str, body: &str) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn offline() -> InfobipProvider {
    InfobipProvider::new(
        "ib".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    )
}

#[test]
fn report_with_the_token_parses_every_result() {
    let url = format!("https://otp.example.com/webhooks/ib?token={TOKEN}");
    assert_eq!(
        offline().receipt(&report(&url, &report_body())).unwrap(),
        ReceiptReply::Receipts(vec![
            Receipt {
                message_id: "otp-req-123".into(),
                status: DeliveryStatus::Delivered,
                error_code: None,
                price: Some(0.01),
                segments: Some(1),
            },
            Receipt {
                message_id: "otp-req-124".into(),
                status: DeliveryStatus::Undelivered,
                error_code: Some("27".into()),
                price: None,
                segments: Some(1),
            },
        ])
    );
}

#[test]
fn report_without_the_right_token_is_forged() {
    for url in [
        "https://otp.example.com/webhooks/ib",
        "https://otp.example.com/webhooks/ib?token=guess",
    ] {
        assert!(matches!(
            offline().receipt(&report(url, &report_body())),
            Err(ReceiptError::Forged(_))
        ));
    }
    let mut config = config("http://127.0.0.1:9");
    config.receipt_token = None;
    let unkeyed = InfobipProvider::new("ib".into(), config, reqwest::Client::new());
    assert!(matches!(
        unkeyed.receipt(&report(
            "https://otp.example.com/webhooks/ib?token=",
            &report_body()
        )),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn malformed_report_is_refused() {
    let url = format!("https://otp.example.com/webhooks/ib?token={TOKEN}");
    for body in [
        "not json",
        r#"{"results": [{"messageId": "x"}]}"#,
        r#"{"nothing": []}"#,
    ] {
        assert!(matches!(
            offline().receipt(&report(&url, body)),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
