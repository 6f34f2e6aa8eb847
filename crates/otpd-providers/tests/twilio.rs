//! Twilio adapter against a mock of the Messages and Calls resources (§1 of the provider
//! reference): exact request shape, success and error bodies, and signed status callbacks.

use std::time::Duration;

use otpd_core::{Channel, DeliveryStatus};
use otpd_delivery::{InboundRequest, Provider, Receipt, ReceiptError, ReceiptReply};
use otpd_providers::testing::{
    self, Recorded, Reply, assert_provider, assert_rejected, assert_transient,
};
use otpd_providers::twilio::{TwilioConfig, TwilioProvider, compute_signature};
use serde_json::json;

const ACCOUNT: &str = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
const TOKEN: &str = "12345";
const SID: &str = "SM1f0e8ae6ade43cb3c0ce4525424e404f";

fn error(status: u16, code: u32, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"code": code, "message": message,
               "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    )
}

/// Twilio as documented: Basic auth with the account or an API key, the account SID in the
/// path, form bodies, 201 with the resource.
fn twilio(request: &Recorded) -> Reply {
    let credentials = request.basic_auth().unwrap_or_default();
    if credentials != format!("{ACCOUNT}:{TOKEN}") && credentials != "SKkey:keysecret" {
        return error(401, 20003, "Authenticate");
    }
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let to = request.form_field("To").unwrap_or_default();
    match testing::scenario_of(&to) {
        "0001" => {
            return error(
                400,
                21211,
                "The 'To' number +15005550001 is not a valid phone number.",
            );
        }
        "0003" => return error(400, 21610, "Attempt to send to unsubscribed recipient"),
        "0004" => return error(429, 20429, "Too Many Requests"),
        "0005" => return error(503, 20503, "Service Unavailable"),
        "0006" => return Reply::Hang,
        _ => {}
    }
    if request.path == format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json") {
        return Reply::json(
            201,
            json!({"sid": "CA5ef8732a3c49700934481addd5ce1659", "status": "queued",
                   "to": to, "from": "+15017122661", "direction": "outbound-api",
                   "price": null, "price_unit": "USD"}),
        );
    }
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    Reply::json(
        201,
        json!({
            "account_sid": ACCOUNT, "api_version": "2010-04-01",
            "body": request.form_field("Body"), "date_created": "Mon, 15 Jan 2024 12:00:00 +0000",
            "date_sent": null, "direction": "outbound-api", "error_code": null, "error_message": null,
            "from": request.form_field("From"), "messaging_service_sid": null, "num_media": "0",
            "num_segments": "1", "price": "-0.00790", "price_unit": "USD", "sid": SID,
            "status": "queued", "to": to,
            "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{SID}.json")
        }),
    )
}

fn config(base_url: &str) -> TwilioConfig {
    TwilioConfig {
        base_url: Some(base_url.to_string()),
        account_sid: ACCOUNT.to_string(),
        auth_token: TOKEN.into(),
        api_key_sid: None,
        api_key_secret: None,
        from: Some("+15017122661".to_string()),
        messaging_service_sid: None,
        whatsapp_from: Some("+14155238886".to_string()),
        whatsapp_content_sid: None,
        voice_from: Some("+15017122662".to_string()),
    }
}

async fn provider() -> (testing::Mock, TwilioProvider) {
    let mock = testing::start(twilio).await;
    let provider = TwilioProvider::new(
        "twilio-test".into(),
        config(&mock.base_url),
        testing::client(),
    );
    (mock, provider)
}

#[tokio::test]
async fn sms_is_sent_with_the_documented_form() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+14155552671");
    message.from = String::new();
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(accepted.message_id, SID);
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    assert_eq!(accepted.segments, Some(1));
    assert_eq!(accepted.price, Some(0.0079));
    assert_eq!(accepted.price_unit.as_deref(), Some("USD"));

    let request = mock.single();
    assert_eq!(
        request.basic_auth().as_deref(),
        Some(format!("{ACCOUNT}:{TOKEN}").as_str())
    );
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.form_field("To").as_deref(), Some("+14155552671"));
    assert_eq!(request.form_field("From").as_deref(), Some("+15017122661"));
    assert_eq!(
        request.form_field("Body").as_deref(),
        Some("Your ACME code is 482910")
    );
    assert_eq!(
        request.form_field("StatusCallback").as_deref(),
        Some("https://otp.example.com/webhooks/test/status")
    );
    assert_eq!(request.form_field("ValidityPeriod").as_deref(), Some("600"));
    assert_eq!(request.form_field("MessagingServiceSid"), None);
}

#[tokio::test]
async fn message_sender_and_messaging_service_are_passed() {
    let mock = testing::start(twilio).await;
    let mut config = config(&mock.base_url);
    config.messaging_service_sid = Some("MG9752274e9e519418a7406176694466fa".into());
    let provider = TwilioProvider::new("t".into(), config, testing::client());
    let mut message = testing::message("+14155552671");
    message.validity_seconds = 100_000;
    message.receipt_url = None;
    provider.send(&message).await.unwrap();
    let request = mock.single();
    assert_eq!(request.form_field("From").as_deref(), Some("ACME"));
    assert_eq!(
        request.form_field("MessagingServiceSid").as_deref(),
        Some("MG9752274e9e519418a7406176694466fa")
    );
    // Twilio caps ValidityPeriod at 36000 s.
    assert_eq!(
        request.form_field("ValidityPeriod").as_deref(),
        Some("36000")
    );
    assert_eq!(request.form_field("StatusCallback"), None);
}

#[tokio::test]
async fn api_key_authenticates_but_the_path_keeps_the_account() {
    let mock = testing::start(twilio).await;
    let mut config = config(&mock.base_url);
    config.api_key_sid = Some("SKkey".into());
    config.api_key_secret = Some("keysecret".into());
    let provider = TwilioProvider::new("t".into(), config, testing::client());
    provider
        .send(&testing::message("+14155552671"))
        .await
        .unwrap();
    let request = mock.single();
    assert_eq!(request.basic_auth().as_deref(), Some("SKkey:keysecret"));
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
}

#[tokio::test]
async fn whatsapp_uses_the_content_template_with_the_code() {
    let mock = testing::start(twilio).await;
    let mut config = config(&mock.base_url);
    config.whatsapp_content_sid = Some("HXb5b62575e6e4ff6129ad7c8efe1f983e".into());
    let provider = TwilioProvider::new("t".into(), config, testing::client());
    let mut message = testing::message("+15551234567");
    message.channel = Channel::Whatsapp;
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(accepted.message_id, SID);
    let request = mock.single();
    assert_eq!(
        request.form_field("To").as_deref(),
        Some("whatsapp:+15551234567")
    );
    assert_eq!(
        request.form_field("From").as_deref(),
        Some("whatsapp:+14155238886")
    );
    assert_eq!(
        request.form_field("ContentSid").as_deref(),
        Some("HXb5b62575e6e4ff6129ad7c8efe1f983e")
    );
    let variables: serde_json::Value =
        serde_json::from_str(&request.form_field("ContentVariables").unwrap()).unwrap();
    assert_eq!(variables, json!({"1": "482910"}));
    assert_eq!(request.form_field("Body"), None);
}

#[tokio::test]
async fn whatsapp_without_template_sends_the_text() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+15551234567");
    message.channel = Channel::Whatsapp;
    provider.send(&message).await.unwrap();
    let request = mock.single();
    assert_eq!(
        request.form_field("Body").as_deref(),
        Some("Your ACME code is 482910")
    );
    assert_eq!(request.form_field("ContentSid"), None);
}

#[tokio::test]
async fn a_call_reads_the_code_in_the_locale() {
    let (mock, provider) = provider().await;
    let mut message = testing::message("+14155552671");
    message.channel = Channel::Call;
    message.locale = "es".into();
    let accepted = provider.send(&message).await.unwrap();
    assert_eq!(accepted.message_id, "CA5ef8732a3c49700934481addd5ce1659");
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    let request = mock.single();
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    );
    assert_eq!(request.form_field("From").as_deref(), Some("+15017122662"));
    assert_eq!(request.form_field("To").as_deref(), Some("+14155552671"));
    assert_eq!(
        request.form_field("StatusCallback").as_deref(),
        Some("https://otp.example.com/webhooks/test/status")
    );
    let twiml = request.form_field("Twiml").unwrap();
    assert!(twiml.starts_with("<?xml"));
    assert!(twiml.contains("<Say language=\"es-ES\">"));
    assert!(twiml.matches("4, 8, 2, 9, 1, 0.").count() >= 2);
    assert_eq!(request.form_field("Body"), None);
}

#[tokio::test]
async fn invalid_number_is_rejected_with_twilios_code() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+15005550001"))
        .await
        .unwrap_err();
    assert_rejected(&error, "21211");
}

#[tokio::test]
async fn unsubscribed_recipient_is_rejected() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+15005550003"))
        .await
        .unwrap_err();
    assert_rejected(&error, "21610");
}

#[tokio::test]
async fn throttling_and_outages_are_transient() {
    let (_mock, provider) = provider().await;
    let error = provider
        .send(&testing::message("+15005550004"))
        .await
        .unwrap_err();
    assert_transient(&error);
    assert_eq!(error.code(), "20429");
    let error = provider
        .send(&testing::message("+15005550005"))
        .await
        .unwrap_err();
    assert_transient(&error);
    assert_eq!(error.code(), "20503");
}

#[tokio::test]
async fn no_answer_times_out_as_transient() {
    let mock = testing::start(twilio).await;
    let provider = TwilioProvider::new(
        "t".into(),
        config(&mock.base_url),
        testing::client_with_timeout(Duration::from_millis(300)),
    );
    let error = provider
        .send(&testing::message("+15005550006"))
        .await
        .unwrap_err();
    assert_transient(&error);
    assert_eq!(error.code(), "timeout");
}

#[tokio::test]
async fn bad_credentials_are_the_providers_problem() {
    let mock = testing::start(twilio).await;
    let mut config = config(&mock.base_url);
    config.auth_token = "wrong".into();
    let provider = TwilioProvider::new("t".into(), config, testing::client());
    let error = provider
        .send(&testing::message("+14155552671"))
        .await
        .unwrap_err();
    assert_provider(&error, "20003");
}

const CALLBACK_URL: &str = "https://otp.example.com/webhooks/twilio/status";
const CALLBACK_BODY: &str = "AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&ApiVersion=2010-04-01&From=%2B15017122661&MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&MessageStatus=delivered&SmsSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&SmsStatus=delivered&To=%2B15558675310";

fn callback(url: &str, body: &str, signature: Option<&str>) -> InboundRequest {
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(signature) = signature {
        headers.push(("x-twilio-signature".to_string(), signature.to_string()));
    }
    InboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn offline_provider() -> TwilioProvider {
    TwilioProvider::new(
        "t".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    )
}

#[test]
fn signed_status_callback_parses() {
    // Reference vector T5.
    let webhook = callback(
        CALLBACK_URL,
        CALLBACK_BODY,
        Some("pJF3ytmFoNomBMTfOZ4GxTfpSZQ="),
    );
    let reply = offline_provider().receipt(&webhook).unwrap();
    assert_eq!(
        reply,
        ReceiptReply::Receipts(vec![Receipt {
            message_id: SID.into(),
            status: DeliveryStatus::Delivered,
            error_code: None,
            price: None,
            segments: None,
        }])
    );
}

#[test]
fn callback_signed_with_the_default_port_is_accepted() {
    let params = otpd_delivery::provider::form_pairs(CALLBACK_BODY.as_bytes());
    let signature = compute_signature(
        TOKEN.as_bytes(),
        "https://otp.example.com:443/webhooks/twilio/status",
        &params,
    );
    let webhook = callback(CALLBACK_URL, CALLBACK_BODY, Some(&signature));
    assert!(offline_provider().receipt(&webhook).is_ok());
}

#[test]
fn tampered_callback_is_forged() {
    let body = CALLBACK_BODY.replace("MessageStatus=delivered", "MessageStatus=failed");
    let webhook = callback(CALLBACK_URL, &body, Some("pJF3ytmFoNomBMTfOZ4GxTfpSZQ="));
    assert!(matches!(
        offline_provider().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
    // Another URL, same body and signature.
    let webhook = callback(
        "https://evil.example.com/webhooks/twilio/status",
        CALLBACK_BODY,
        Some("pJF3ytmFoNomBMTfOZ4GxTfpSZQ="),
    );
    assert!(matches!(
        offline_provider().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
    // No signature at all.
    let webhook = callback(CALLBACK_URL, CALLBACK_BODY, None);
    assert!(matches!(
        offline_provider().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn callback_signed_with_another_token_is_forged() {
    let params = otpd_delivery::provider::form_pairs(CALLBACK_BODY.as_bytes());
    let signature = compute_signature(b"not-the-token", CALLBACK_URL, &params);
    let webhook = callback(CALLBACK_URL, CALLBACK_BODY, Some(&signature));
    assert!(matches!(
        offline_provider().receipt(&webhook),
        Err(ReceiptError::Forged(_))
    ));
}

#[test]
fn failed_message_carries_the_error_code() {
    let body = "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003&AccountSid=AC1";
    let params = otpd_delivery::provider::form_pairs(body.as_bytes());
    let signature = compute_signature(TOKEN.as_bytes(), CALLBACK_URL, &params);
    let reply = offline_provider()
        .receipt(&callback(CALLBACK_URL, body, Some(&signature)))
        .unwrap();
    let ReceiptReply::Receipts(receipts) = reply else {
        panic!("expected receipts")
    };
    assert_eq!(receipts[0].message_id, "SM1");
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
    assert_eq!(receipts[0].error_code.as_deref(), Some("30003"));
}

#[test]
fn call_status_callback_parses() {
    let body = "CallSid=CA5ef8732a3c49700934481addd5ce1659&CallStatus=no-answer&AccountSid=AC1&Direction=outbound-api";
    let params = otpd_delivery::provider::form_pairs(body.as_bytes());
    let signature = compute_signature(TOKEN.as_bytes(), CALLBACK_URL, &params);
    let reply = offline_provider()
        .receipt(&callback(CALLBACK_URL, body, Some(&signature)))
        .unwrap();
    let ReceiptReply::Receipts(receipts) = reply else {
        panic!("expected receipts")
    };
    assert_eq!(receipts[0].message_id, "CA5ef8732a3c49700934481addd5ce1659");
    assert_eq!(receipts[0].status, DeliveryStatus::Undelivered);
}

#[test]
fn signed_but_incomplete_callback_is_malformed() {
    let body = "AccountSid=AC1&MessageSid=SM1";
    let params = otpd_delivery::provider::form_pairs(body.as_bytes());
    let signature = compute_signature(TOKEN.as_bytes(), CALLBACK_URL, &params);
    assert!(matches!(
        offline_provider().receipt(&callback(CALLBACK_URL, body, Some(&signature))),
        Err(ReceiptError::Malformed(_))
    ));
}
