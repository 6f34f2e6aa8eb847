//! AWS SNS: `Publish` straight to a phone number through the Query API (form body, XML
//! answer), signed with AWS Signature Version 4 by the official `aws-sigv4` signer.
//!
//! SNS has no per-message delivery receipts (only CloudWatch delivery-status logs), so
//! [`Provider::receipt`] keeps its "not supported" default and a send is `Sent` at best.

use otpd_core::Secret;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use otpd_delivery::{Accepted, BoxFuture, Message, Provider, SendError};

use crate::http::{classify_status, transport_error};

/// The content type the Query API expects; it is part of the signed headers.
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// One SNS account and region, as written in otpd's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// The AWS region to publish from and sign for (`us-east-1`); it must be a region where
    /// SNS sends SMS.
    pub region: String,
    /// The IAM access key id (`AKIA…`), with `sns:Publish` permission.
    pub access_key_id: String,
    /// The IAM secret access key.
    pub secret_access_key: Secret,
    /// A session token, when the keys are temporary (STS); it is then signed too.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Endpoint override, for tests or VPC endpoints; defaults to
    /// `https://sns.{region}.amazonaws.com/`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Sender used when the message names none: an alphanumeric sender id (3–11 letters,
    /// digits or hyphens, at least one letter; ignored by carriers in the US) or an
    /// origination number (`+` and 5–14 digits) owned by the account.
    #[serde(default)]
    pub sender_id: Option<String>,
}

/// Sends SMS through AWS SNS `Publish`.
pub struct SnsProvider {
    name: String,
    config: SnsConfig,
    url: String,
    http: reqwest::Client,
}

impl SnsProvider {
    /// Builds the adapter; `http` carries the timeouts the operator chose.
    pub fn new(name: String, config: SnsConfig, http: reqwest::Client) -> Self {
        let base = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://sns.{}.amazonaws.com/", config.region));
        // The Query API lives at `/`: keep exactly one trailing slash so the URL we sign is
        // the URL we send.
        let url = format!("{}/", base.trim_end_matches('/'));
        SnsProvider {
            name,
            config,
            url,
            http,
        }
    }

    async fn publish(&self, message: &Message) -> Result<Accepted, SendError> {
        let sender = if message.from.is_empty() {
            self.config.sender_id.as_deref().unwrap_or("")
        } else {
            message.from.as_str()
        };
        let body = publish_body(&message.to, &message.text, sender);
        let headers = sign_publish(&self.config, &self.url, body.as_bytes(), SystemTime::now())?;
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|error| transport_error(&error))?;
        if (200..300).contains(&status) {
            return match xml_text(&text, "MessageId") {
                Some(id) if !id.is_empty() => Ok(Accepted::sent(id)),
                _ => Err(SendError::transient(
                    status.to_string(),
                    "SNS answered without a MessageId",
                )),
            };
        }
        let code = xml_text(&text, "Code").unwrap_or_else(|| status.to_string());
        // SNS quotes the number back ("+1555 is not valid to publish to"): mask it, since
        // the worker may log or store the error.
        let words = xml_text(&text, "Message")
            .unwrap_or_default()
            .replace(&message.to, &otpd_core::phone::mask_phone(&message.to));
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            status,
            code = %code,
            "SNS refused a publish"
        );
        Err(classify_error(status, code, words))
    }
}

impl Provider for SnsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sns"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.publish(message).await })
    }
}

/// The form body of a transactional `Publish` to `to`, with the sender as the right SMS
/// attribute (none when `sender` is empty or neither a sender id nor a number).
pub(crate) fn publish_body(to: &str, text: &str, sender: &str) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "Publish")
        .append_pair("Version", "2010-03-31")
        .append_pair("PhoneNumber", to)
        .append_pair("Message", text);
    let mut attributes: Vec<(&str, &str)> = Vec::new();
    if is_sender_id(sender) {
        attributes.push(("AWS.SNS.SMS.SenderID", sender));
    } else if is_origination_number(sender) {
        attributes.push(("AWS.MM.SMS.OriginationNumber", sender));
    }
    // Transactional: best-effort delivery priority, the right class for codes.
    attributes.push(("AWS.SNS.SMS.SMSType", "Transactional"));
    for (index, (name, value)) in attributes.into_iter().enumerate() {
        let prefix = format!("MessageAttributes.entry.{}", index + 1);
        form.append_pair(&format!("{prefix}.Name"), name)
            .append_pair(&format!("{prefix}.Value.DataType"), "String")
            .append_pair(&format!("{prefix}.Value.StringValue"), value);
    }
    form.finish()
}

/// SNS's rule for alphanumeric sender ids: 3–11 letters, digits or hyphens, one letter at
/// least.
fn is_sender_id(sender: &str) -> bool {
    (3..=11).contains(&sender.len())
        && sender
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && sender.chars().any(|c| c.is_ascii_alphabetic())
}

/// An origination number: optional `+`, then 5–14 digits.
fn is_origination_number(sender: &str) -> bool {
    let digits = sender.strip_prefix('+').unwrap_or(sender);
    (5..=14).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

/// Signs a `Publish` POST of `body` to `url` at `time` and returns the headers to add
/// (`x-amz-date`, `authorization`, and `x-amz-security-token` with temporary keys). The
/// signed headers are `content-type;host;x-amz-date` (+ the token): the host comes from `url`,
/// port included, which is what reqwest sends as `Host`. The time is a parameter so tests can
/// check AWS's published vector.
pub(crate) fn sign_publish(
    config: &SnsConfig,
    url: &str,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, SendError> {
    let signing_error =
        |error: &dyn std::fmt::Display| SendError::provider("signing", error.to_string());
    let identity: Identity = Credentials::new(
        config.access_key_id.clone(),
        config.secret_access_key.expose().to_string(),
        config
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "otpd-config",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&config.region)
        .name("sns")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| signing_error(&error))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        std::iter::once(("content-type", CONTENT_TYPE)),
        SignableBody::Bytes(body),
    )
    .map_err(|error| signing_error(&error))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| signing_error(&error))?
        .into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

/// Maps an SNS/AWS error code (falling back on the HTTP status) to the worker's classes.
fn classify_error(status: u16, code: String, message: String) -> SendError {
    match code.as_str() {
        "InvalidParameter" | "ParameterValueInvalid" | "EndpointDisabled" => {
            SendError::rejected(code, message)
        }
        "AuthorizationError"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "InvalidSecurity"
        | "IncompleteSignature"
        | "RequestExpired"
        | "ExpiredToken"
        | "AccessDenied"
        | "OptInRequired" => SendError::provider(code, message),
        "Throttled"
        | "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestThrottledException"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable" => SendError::transient(code, message),
        _ if code.starts_with("KMS") => SendError::provider(code, message),
        _ => classify_status(status, code, message),
    }
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded: enough for SNS's flat
/// answers without an XML parser.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_config() -> SnsConfig {
        SnsConfig {
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            base_url: None,
            sender_id: None,
        }
    }

    const T11_BODY: &str = "Action=Publish&Version=2010-03-31&PhoneNumber=%2B14155552671&Message=Your+code+is+123456&MessageAttributes.entry.1.Name=AWS.SNS.SMS.SenderID&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=MyApp&MessageAttributes.entry.2.Name=AWS.SNS.SMS.SMSType&MessageAttributes.entry.2.Value.DataType=String&MessageAttributes.entry.2.Value.StringValue=Transactional";

    fn t11_time() -> SystemTime {
        // 2024-01-15T12:00:00Z
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_705_320_000)
    }

    #[test]
    fn body_matches_the_reference_publish() {
        assert_eq!(
            publish_body("+14155552671", "Your code is 123456", "MyApp"),
            T11_BODY
        );
    }

    #[test]
    fn signature_matches_vector_t11() {
        let headers = sign_publish(
            &vector_config(),
            "https://sns.us-east-1.amazonaws.com/",
            T11_BODY.as_bytes(),
            t11_time(),
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        assert_eq!(get("x-amz-date").as_deref(), Some("20240115T120000Z"));
        assert_eq!(
            get("authorization").as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/sns/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=c2900245ba70d228390d49b94a13e8b7935b3383fb82f34bf0ffee3026afdcf9"
            )
        );
        assert_eq!(get("x-amz-security-token"), None);
    }

    #[test]
    fn host_port_and_session_token_are_signed() {
        let mut config = vector_config();
        config.session_token = Some("token".into());
        let headers = sign_publish(
            &config,
            "http://127.0.0.1:4566/",
            T11_BODY.as_bytes(),
            t11_time(),
        )
        .unwrap();
        let authorization = &headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .unwrap()
            .1;
        assert!(
            authorization
                .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token")
        );
        // A different host (the port) gives a different signature than the vector's.
        assert!(!authorization.contains("c2900245"));
        assert!(headers.iter().any(
            |(key, value)| key.eq_ignore_ascii_case("x-amz-security-token") && value == "token"
        ));
    }

    #[test]
    fn senders_pick_the_right_attribute() {
        assert!(publish_body("+1", "x", "ACME").contains("AWS.SNS.SMS.SenderID"));
        let numbered = publish_body("+1", "x", "+14155550000");
        assert!(numbered.contains("AWS.MM.SMS.OriginationNumber"));
        assert!(numbered.contains("entry.2.Value.StringValue=Transactional"));
        let bare = publish_body("+1", "x", "");
        assert!(bare.contains("entry.1.Name=AWS.SNS.SMS.SMSType"));
        assert!(!bare.contains("entry.2"));
        assert!(!is_sender_id("12345"));
        assert!(!is_sender_id("TOO-LONG-SENDER"));
    }

    #[test]
    fn errors_are_classified() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code>\
                   <Message>Invalid parameter: PhoneNumber &amp; more</Message></Error></ErrorResponse>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("InvalidParameter"));
        assert_eq!(
            xml_text(xml, "Message").as_deref(),
            Some("Invalid parameter: PhoneNumber & more")
        );
        let class = |status, code: &str| classify_error(status, code.into(), String::new());
        assert!(matches!(
            class(400, "InvalidParameter"),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            class(403, "SignatureDoesNotMatch"),
            SendError::Provider { .. }
        ));
        assert!(matches!(
            class(400, "Throttling"),
            SendError::Transient { .. }
        ));
        assert!(matches!(class(502, "502"), SendError::Transient { .. }));
        assert!(matches!(class(429, "Unknown"), SendError::Transient { .. }));
    }
}
