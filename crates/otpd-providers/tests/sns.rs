//! AWS SNS adapter against a local mock of the SNS Query API that recomputes the SigV4
//! signature from the request it received (Host with the mock's port included).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use otpd_core::{Channel, DeliveryStatus};
use otpd_delivery::{InboundRequest, Provider, ReceiptError};
use otpd_providers::sns::{SnsConfig, SnsProvider};
use otpd_providers::testing::*;
use sha2::{Digest, Sha256};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// An independent SigV4 check (what AWS does on its side): rebuilds the canonical request
/// from the received method, path, headers and body, and returns the signature it expects
/// for `secret`, with the access key the request claims and its signed headers.
fn expected_signature(
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> Option<(String, String, String)> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = "";
    let mut signed_headers = "";
    for part in rest.split(", ") {
        let (key, value) = part.split_once('=')?;
        match key {
            "Credential" => credential = value,
            "SignedHeaders" => signed_headers = value,
            "Signature" => {}
            _ => return None,
        }
    }
    let mut scope = credential.splitn(2, '/');
    let access_key = scope.next()?.to_string();
    let scope = scope.next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    if parts.len() != 4 || parts[2] != "sns" || parts[3] != "aws4_request" {
        return None;
    }
    let (date, region) = (parts[0], parts[1]);
    let amz_date = headers.get("x-amz-date")?.to_str().ok()?;
    if !amz_date.starts_with(date) {
        return None;
    }
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = headers.get(name)?.to_str().ok()?.trim();
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical_request = format!(
        "{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "sns", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    Some((access_key, signed_headers.to_string(), expected))
}

fn claimed_signature(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit_once("Signature="))
        .map(|(_, signature)| signature.to_string())
        .unwrap_or_default()
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/xml")], body).into_response()
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n  <Error><Type>{kind}</Type><Code>{code}</Code>\n    <Message>{message}</Message></Error>\n  <RequestId>3f1478c7-33a9-5e5f-b1b6-0b3e8b3c9a11</RequestId>\n</ErrorResponse>"
        ),
    )
}

/// The mock SNS endpoint: checks the signature, then switches on the destination number.
async fn sns(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.push(Recorded::new(method.clone(), &uri, &headers, &body));
    if method != Method::POST || uri.path() != "/" {
        return error(
            StatusCode::NOT_FOUND,
            "Sender",
            "NotFound",
            "no such action",
        );
    }
    let Some((access_key, _, expected)) =
        expected_signature("POST", uri.path(), &headers, &body, SECRET)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "IncompleteSignature",
            "Authorization header requires Credential, SignedHeaders and Signature",
        );
    };
    if access_key != AKID {
        return error(
            StatusCode::FORBIDDEN,
            "Sender",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    if claimed_signature(&headers) != expected {
        return error(
            StatusCode::FORBIDDEN,
            "Sender",
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let form = otpd_delivery::provider::form_pairs(&body);
    let value = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if value("Action") != Some("Publish") || value("Version") != Some("2010-03-31") {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidAction",
            "unknown action",
        );
    }
    let phone = value("PhoneNumber").unwrap_or("");
    match phone {
        "+15005550001" => error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidParameter",
            "Invalid parameter: PhoneNumber Reason: +15005550001 is not valid to publish to",
        ),
        "+15005550004" => error(
            StatusCode::TOO_MANY_REQUESTS,
            "Sender",
            "Throttled",
            "Rate exceeded",
        ),
        "+15005550005" => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "InternalError",
            "Internal error",
        ),
        "+15005550009" => {
            hang().await;
            StatusCode::OK.into_response()
        }
        _ => xml(
            StatusCode::OK,
            "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n  <PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult>\n  <ResponseMetadata><RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId></ResponseMetadata>\n</PublishResponse>".into(),
        ),
    }
}

async fn mock() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new().fallback(sns).with_state(log.clone());
    (serve(app).await, log)
}

fn config(base: &str) -> SnsConfig {
    SnsConfig {
        region: "us-east-1".into(),
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        session_token: None,
        base_url: Some(base.into()),
        sender_id: Some("ACME".into()),
    }
}

#[test]
fn the_mock_verifier_reproduces_vector_t11() {
    // Guards the mock itself: its independent SigV4 computation gives AWS's vector.
    let body = "Action=Publish&Version=2010-03-31&PhoneNumber=%2B14155552671&Message=Your+code+is+123456&MessageAttributes.entry.1.Name=AWS.SNS.SMS.SenderID&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=MyApp&MessageAttributes.entry.2.Name=AWS.SNS.SMS.SMSType&MessageAttributes.entry.2.Value.DataType=String&MessageAttributes.entry.2.Value.StringValue=Transactional";
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8"
            .parse()
            .unwrap(),
    );
    headers.insert("host", "sns.us-east-1.amazonaws.com".parse().unwrap());
    headers.insert("x-amz-date", "20240115T120000Z".parse().unwrap());
    headers.insert(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=x"
            .parse()
            .unwrap(),
    );
    let (_, _, expected) =
        expected_signature("POST", "/", &headers, body.as_bytes(), SECRET).unwrap();
    assert_eq!(
        expected,
        "c2900245ba70d228390d49b94a13e8b7935b3383fb82f34bf0ffee3026afdcf9"
    );
}

#[tokio::test]
async fn publishes_a_signed_transactional_sms() {
    let (base, log) = mock().await;
    let provider = SnsProvider::new("sns-us".into(), config(&base), client());
    assert_eq!(provider.kind(), "sns");
    assert_eq!(provider.name(), "sns-us");
    let accepted = provider
        .send(&phone_message(Channel::Sms, "+14155552671"))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "567910cd-659e-55d4-8ccb-5aaf14679dc0");
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let seen = log.single();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/");
    assert_eq!(
        seen.header("content-type").unwrap_or(""),
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    // The Host the signature covers carries the mock's port.
    assert_eq!(
        seen.header("host").unwrap_or(""),
        base.trim_start_matches("http://")
    );
    assert!(
        seen.header("authorization")
            .unwrap_or("")
            .contains("Credential=AKIDEXAMPLE/")
    );
    assert!(seen.header("authorization").unwrap_or("").contains(
        "/us-east-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
    ));
    assert_eq!(
        seen.form_field("PhoneNumber").as_deref(),
        Some("+14155552671")
    );
    assert_eq!(
        seen.form_field("Message").as_deref(),
        Some("Your code is 123456")
    );
    assert_eq!(
        seen.form_field("MessageAttributes.entry.1.Name").as_deref(),
        Some("AWS.SNS.SMS.SenderID")
    );
    assert_eq!(
        seen.form_field("MessageAttributes.entry.1.Value.StringValue")
            .as_deref(),
        Some("ACME")
    );
    assert_eq!(
        seen.form_field("MessageAttributes.entry.2.Name").as_deref(),
        Some("AWS.SNS.SMS.SMSType")
    );
    assert_eq!(
        seen.form_field("MessageAttributes.entry.2.Value.StringValue")
            .as_deref(),
        Some("Transactional")
    );
}

#[tokio::test]
async fn the_message_sender_wins_over_the_configured_one() {
    let (base, log) = mock().await;
    let provider = SnsProvider::new("sns".into(), config(&base), client());
    let mut message = phone_message(Channel::Sms, "+14155552671");
    message.from = "OTPD".into();
    provider.send(&message).await.unwrap();
    assert_eq!(
        log.single()
            .form_field("MessageAttributes.entry.1.Value.StringValue")
            .as_deref(),
        Some("OTPD")
    );
}

#[tokio::test]
async fn temporary_credentials_send_and_sign_the_session_token() {
    let (base, log) = mock().await;
    let mut config = config(&base);
    config.session_token = Some("FwoGZXIvYXdzEXAMPLE".into());
    let provider = SnsProvider::new("sns".into(), config, client());
    provider
        .send(&phone_message(Channel::Sms, "+14155552671"))
        .await
        .unwrap();
    let seen = log.single();
    assert_eq!(
        seen.header("x-amz-security-token").unwrap_or(""),
        "FwoGZXIvYXdzEXAMPLE"
    );
    assert!(
        seen.header("authorization")
            .unwrap_or("")
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token")
    );
}

#[tokio::test]
async fn an_invalid_number_is_rejected() {
    let (base, _log) = mock().await;
    let provider = SnsProvider::new("sns".into(), config(&base), client());
    let error = expect_rejected(
        provider
            .send(&phone_message(Channel::Sms, "+15005550001"))
            .await,
    );
    assert_eq!(error.code(), "InvalidParameter");
    // The number SNS quotes back is masked.
    assert!(
        error.to_string().contains("is not valid to publish to"),
        "{error}"
    );
    assert!(!error.to_string().contains("+15005550001"), "{error}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_provider_error() {
    let (base, _log) = mock().await;
    let mut config = config(&base);
    config.secret_access_key = "not-the-secret".into();
    let provider = SnsProvider::new("sns".into(), config, client());
    let error = expect_provider(
        provider
            .send(&phone_message(Channel::Sms, "+14155552671"))
            .await,
    );
    assert_eq!(error.code(), "SignatureDoesNotMatch");
}

#[tokio::test]
async fn an_unknown_access_key_is_a_provider_error() {
    let (base, _log) = mock().await;
    let mut config = config(&base);
    config.access_key_id = "AKIDUNKNOWN".into();
    let provider = SnsProvider::new("sns".into(), config, client());
    let error = expect_provider(
        provider
            .send(&phone_message(Channel::Sms, "+14155552671"))
            .await,
    );
    assert_eq!(error.code(), "InvalidClientTokenId");
}

#[tokio::test]
async fn throttling_and_server_errors_are_transient() {
    let (base, _log) = mock().await;
    let provider = SnsProvider::new("sns".into(), config(&base), client());
    let throttled = expect_transient(
        provider
            .send(&phone_message(Channel::Sms, "+15005550004"))
            .await,
    );
    assert_eq!(throttled.code(), "Throttled");
    let internal = expect_transient(
        provider
            .send(&phone_message(Channel::Sms, "+15005550005"))
            .await,
    );
    assert_eq!(internal.code(), "InternalError");
}

#[tokio::test]
async fn a_silent_endpoint_times_out_as_transient() {
    let (base, _log) = mock().await;
    let provider = SnsProvider::new("sns".into(), config(&base), client());
    let error = expect_transient(
        provider
            .send(&phone_message(Channel::Sms, "+15005550009"))
            .await,
    );
    assert_eq!(error.code(), "timeout");
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let provider = SnsProvider::new("sns".into(), config("http://127.0.0.1:9"), client());
    expect_transient(
        provider
            .send(&phone_message(Channel::Sms, "+14155552671"))
            .await,
    );
}

#[test]
fn sns_has_no_receipts() {
    let provider = SnsProvider::new(
        "sns".into(),
        config("http://127.0.0.1:9"),
        reqwest::Client::new(),
    );
    assert_eq!(
        provider.receipt(&InboundRequest::default()),
        Err(ReceiptError::NotSupported)
    );
}
