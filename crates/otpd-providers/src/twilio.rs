//! Twilio: Programmable Messaging (SMS, and WhatsApp through the same Messages resource) and
//! Programmable Voice (a call that reads the code aloud with inline TwiML). Status callbacks
//! are verified with `X-Twilio-Signature` (HMAC-SHA1 keyed with the Auth Token).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use otpd_core::Secret;
use otpd_core::{Channel, DeliveryStatus};
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde::Deserialize;

use crate::http::{classify_status, excerpt, exchange, form_body, join};
use crate::signing::{ct_eq, hmac_sha1, sha256_hex};

/// Twilio's API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// One Twilio account, as configured by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// API host; defaults to `https://api.twilio.com` (tests point it at a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The account SID (`AC…`): names the account in every request path.
    pub account_sid: String,
    /// The account's Auth Token: authenticates requests (unless an API key is set) and is
    /// always the key Twilio signs status callbacks with.
    pub auth_token: Secret,
    /// An API key SID (`SK…`) to authenticate with instead of the Auth Token.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// The secret of `api_key_sid`.
    #[serde(default)]
    pub api_key_secret: Option<Secret>,
    /// Default SMS sender (number or alphanumeric id) when the message names none.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG…`) to send SMS through (Twilio then picks the sender when no
    /// `From` is known).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The WhatsApp sender number (`+14155238886`, with or without `whatsapp:`).
    #[serde(default)]
    pub whatsapp_from: Option<String>,
    /// An approved `whatsapp/authentication` Content template (`HX…`): WhatsApp OTPs outside
    /// a 24 h session must use one; the code is its variable `1`.
    #[serde(default)]
    pub whatsapp_content_sid: Option<String>,
    /// The number calls come from (voice cannot use an alphanumeric sender); falls back to
    /// `from`.
    #[serde(default)]
    pub voice_from: Option<String>,
}

/// Form fields of a create request, in order.
type Fields = Vec<(&'static str, String)>;

/// Sends through Twilio and verifies its status callbacks.
pub struct TwilioProvider {
    name: String,
    config: TwilioConfig,
    base_url: String,
    http: reqwest::Client,
}

impl TwilioProvider {
    /// An adapter for one configured Twilio account, sharing the server's HTTP client.
    pub fn new(name: String, config: TwilioConfig, http: reqwest::Client) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        TwilioProvider {
            name,
            config,
            base_url,
            http,
        }
    }

    fn resource_url(&self, resource: &str) -> String {
        join(
            &self.base_url,
            &format!(
                "/2010-04-01/Accounts/{}/{resource}.json",
                self.config.account_sid
            ),
        )
    }

    /// The form fields of a Messages or Calls create request, and which resource.
    fn request_fields(&self, message: &Message) -> Result<(&'static str, Fields), SendError> {
        let config = &self.config;
        let mut fields: Vec<(&'static str, String)> = Vec::new();
        let message_from = Some(message.from.clone()).filter(|from| !from.is_empty());
        match message.channel {
            Channel::Call => {
                let from = config
                    .voice_from
                    .clone()
                    .or_else(|| config.from.clone())
                    .or_else(|| message_from.filter(|from| from.starts_with('+')))
                    .ok_or_else(|| {
                        SendError::provider("config", "no voice_from number configured")
                    })?;
                fields.push(("To", message.to.clone()));
                fields.push(("From", from));
                fields.push(("Twiml", twiml_for_code(&message.code, &message.locale)));
                if let Some(url) = &message.receipt_url {
                    fields.push(("StatusCallback", url.clone()));
                }
                Ok(("Calls", fields))
            }
            Channel::Whatsapp => {
                let from = config
                    .whatsapp_from
                    .clone()
                    .or(message_from)
                    .or_else(|| config.from.clone())
                    .ok_or_else(|| {
                        SendError::provider("config", "no whatsapp_from number configured")
                    })?;
                fields.push(("To", whatsapp_address(&message.to)));
                fields.push(("From", whatsapp_address(&from)));
                match &config.whatsapp_content_sid {
                    Some(content_sid) => {
                        fields.push(("ContentSid", content_sid.clone()));
                        fields.push((
                            "ContentVariables",
                            serde_json::json!({ "1": message.code }).to_string(),
                        ));
                    }
                    None => fields.push(("Body", message.text.clone())),
                }
                self.push_message_options(message, &mut fields);
                Ok(("Messages", fields))
            }
            Channel::Email => Err(SendError::provider("channel", "twilio does not send email")),
            Channel::Sms => {
                let from = message_from.or_else(|| config.from.clone());
                if from.is_none() && config.messaging_service_sid.is_none() {
                    return Err(SendError::provider(
                        "config",
                        "no sender: set from or messaging_service_sid",
                    ));
                }
                fields.push(("To", message.to.clone()));
                if let Some(from) = from {
                    fields.push(("From", from));
                }
                if let Some(service) = &config.messaging_service_sid {
                    fields.push(("MessagingServiceSid", service.clone()));
                }
                fields.push(("Body", message.text.clone()));
                self.push_message_options(message, &mut fields);
                Ok(("Messages", fields))
            }
        }
    }

    fn push_message_options(&self, message: &Message, fields: &mut Vec<(&'static str, String)>) {
        if let Some(url) = &message.receipt_url {
            fields.push(("StatusCallback", url.clone()));
        }
        if message.validity_seconds > 0 {
            let validity = message.validity_seconds.clamp(1, 36_000);
            fields.push(("ValidityPeriod", validity.to_string()));
        }
    }

    async fn send_message(&self, message: &Message) -> Result<Accepted, SendError> {
        let (resource, fields) = self.request_fields(message)?;
        let (user, password) = match (&self.config.api_key_sid, &self.config.api_key_secret) {
            (Some(sid), Some(secret)) => (sid.as_str(), secret.expose()),
            _ => (
                self.config.account_sid.as_str(),
                self.config.auth_token.expose(),
            ),
        };
        let request = self
            .http
            .post(self.resource_url(resource))
            .basic_auth(user, Some(password))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form_body(&fields));
        let (status, body) = exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &body));
        }
        let created: Created = serde_json::from_slice(&body).map_err(|e| {
            SendError::transient("bad_response", format!("unreadable Twilio answer: {e}"))
        })?;
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            sid = %created.sid,
            "twilio accepted"
        );
        let price = created
            .price
            .as_deref()
            .and_then(|price| price.parse::<f64>().ok())
            .map(f64::abs);
        Ok(Accepted {
            message_id: created.sid,
            status: DeliveryStatus::Sent,
            segments: created
                .num_segments
                .as_deref()
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0),
            price,
            price_unit: created.price_unit.filter(|_| price.is_some()),
        })
    }
}

/// The part of a created Message or Call resource otpd reads.
#[derive(Deserialize)]
struct Created {
    sid: String,
    #[serde(default)]
    num_segments: Option<String>,
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    price_unit: Option<String>,
}

/// Twilio's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Classifies a Twilio error answer by its error code, falling back to the HTTP status.
fn error_from_response(status: u16, body: &[u8]) -> SendError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, text) = match parsed {
        Some(ErrorBody {
            code: Some(code),
            message,
        }) => (Some(code), message.unwrap_or_default()),
        Some(ErrorBody {
            code: None,
            message: Some(message),
        }) => (None, message),
        _ => (None, excerpt(body)),
    };
    let Some(code) = code else {
        return classify_status(status, status.to_string(), text);
    };
    let code_text = code.to_string();
    match code {
        // Invalid / unroutable / not mobile / unsubscribed / invalid call number.
        21211 | 21217 | 21610 | 21612 | 21614 | 13223 | 21401 | 21407 => {
            SendError::rejected(code_text, text)
        }
        // Credentials, sender, geo permissions, caller id: this account's configuration.
        20003 | 20005 | 21210 | 21212 | 21215 | 21606 | 21408 | 21660 | 21608 | 63007 => {
            SendError::provider(code_text, text)
        }
        // Throttling, queue overflow, Twilio-side errors.
        20429 | 21611 | 20500 | 20503 => SendError::transient(code_text, text),
        // Unknown codes: the HTTP status decides (an unknown 400 stays a rejection).
        _ => classify_status(status, code_text, text),
    }
}

impl Provider for TwilioProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_message(message).await })
    }

    fn has_receipts(&self) -> bool {
        true
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let signature = webhook
            .header("x-twilio-signature")
            .ok_or_else(|| ReceiptError::Forged("no X-Twilio-Signature".into()))?;
        let is_form = webhook.method.eq_ignore_ascii_case("POST")
            && !webhook
                .header("content-type")
                .is_some_and(|ct| ct.contains("json"));
        let params = if is_form {
            webhook.form_pairs()
        } else {
            Vec::new()
        };
        if !verify_signature(
            self.config.auth_token.expose().as_bytes(),
            &webhook.url,
            &params,
            &webhook.body,
            signature,
        ) {
            return Err(ReceiptError::Forged("X-Twilio-Signature mismatch".into()));
        }
        let fields = if is_form {
            params
        } else {
            webhook.query_pairs()
        };
        parse_status_callback(&fields).map(|receipt| ReceiptReply::Receipts(vec![receipt]))
    }
}

/// `whatsapp:+…` form of a number (idempotent).
fn whatsapp_address(number: &str) -> String {
    if number.starts_with("whatsapp:") {
        number.to_string()
    } else {
        format!("whatsapp:{number}")
    }
}

/// Reads a Messages or Calls status callback.
fn parse_status_callback(fields: &[(String, String)]) -> Result<Receipt, ReceiptError> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let (message_id, status) = if let Some(call_sid) = get("CallSid") {
        let status =
            get("CallStatus").ok_or_else(|| ReceiptError::Malformed("no CallStatus".into()))?;
        (call_sid, call_status(status)?)
    } else {
        let sid = get("MessageSid")
            .or_else(|| get("SmsSid"))
            .ok_or_else(|| ReceiptError::Malformed("no MessageSid or CallSid".into()))?;
        let status = get("MessageStatus")
            .or_else(|| get("SmsStatus"))
            .ok_or_else(|| ReceiptError::Malformed("no MessageStatus".into()))?;
        (sid, message_status(status)?)
    };
    Ok(Receipt {
        message_id: message_id.to_string(),
        status,
        error_code: get("ErrorCode")
            .filter(|code| *code != "0")
            .map(str::to_string),
        price: None,
        segments: get("NumSegments").and_then(|n| n.parse().ok()),
    })
}

/// Message statuses in otpd's terms. Every state before delivery is `Sent`: Twilio has the
/// message, so otpd's `Queued` (not yet handed over) would move the attempt backwards.
fn message_status(status: &str) -> Result<DeliveryStatus, ReceiptError> {
    Ok(match status {
        "queued" | "accepted" | "scheduled" | "sending" | "sent" | "partially_delivered" => {
            DeliveryStatus::Sent
        }
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "canceled" => DeliveryStatus::Failed,
        other => {
            return Err(ReceiptError::Malformed(format!(
                "unknown MessageStatus {other:?}"
            )));
        }
    })
}

/// Call statuses in otpd's terms: a completed call is a delivered code.
fn call_status(status: &str) -> Result<DeliveryStatus, ReceiptError> {
    Ok(match status {
        "queued" | "initiated" | "ringing" | "in-progress" | "answered" => DeliveryStatus::Sent,
        "completed" => DeliveryStatus::Delivered,
        "busy" | "no-answer" | "failed" | "canceled" => DeliveryStatus::Undelivered,
        other => {
            return Err(ReceiptError::Malformed(format!(
                "unknown CallStatus {other:?}"
            )));
        }
    })
}

/// The string Twilio signs: the URL, then each parameter name (sorted by bytes) followed by
/// each of its distinct values (sorted), with no separators.
pub fn signature_base(url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut base = String::from(url);
    for (key, value) in pairs {
        base.push_str(key);
        base.push_str(value);
    }
    base
}

/// `X-Twilio-Signature` for `url` and form `params` under `auth_token`.
pub fn compute_signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(hmac_sha1(
        auth_token,
        signature_base(url, params).as_bytes(),
    ))
}

/// Checks an `X-Twilio-Signature` the way Twilio's own validator does: over the URL as
/// received and with its default port added or removed (Twilio signs either), in constant
/// time. A URL carrying `bodySHA256` (JSON bodies) is signed without parameters and the body
/// hash must match.
pub fn verify_signature(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    body: &[u8],
    signature: &str,
) -> bool {
    let body_hash = url.split_once('?').and_then(|(_, query)| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "bodySHA256")
            .map(|(_, value)| value.into_owned())
    });
    let params: &[(String, String)] = match &body_hash {
        Some(expected) => {
            if !ct_eq(
                expected.to_ascii_lowercase().as_bytes(),
                sha256_hex(body).as_bytes(),
            ) {
                return false;
            }
            &[]
        }
        None => params,
    };
    let mut valid = false;
    for candidate in url_port_variants(url) {
        let expected = compute_signature(auth_token, &candidate, params);
        valid |= ct_eq(expected.as_bytes(), signature.trim().as_bytes());
    }
    valid
}

/// The URL as given plus the same URL with its scheme's default port toggled (added when
/// absent, removed when present).
fn url_port_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    // The port is after the last ':' unless that colon is inside an IPv6 literal.
    let (host, port) = match hostport.rfind(':') {
        Some(colon) if !hostport[colon..].contains(']') => {
            (&hostport[..colon], Some(&hostport[colon + 1..]))
        }
        _ => (hostport, None),
    };
    let toggled = match port {
        Some(port) if port == default_port => format!("{scheme}://{userinfo}{host}{tail}"),
        Some(_) => return variants,
        None => format!("{scheme}://{userinfo}{host}:{default_port}{tail}"),
    };
    variants.push(toggled);
    variants
}

/// The `<Say language=…>` for a message locale (`pt-BR`, `fr`, `zh-TW`, …); English when
/// unknown.
pub fn say_language(locale: &str) -> &'static str {
    let normalized = locale.replace('_', "-").to_ascii_lowercase();
    let mut parts = normalized.split('-');
    let language = parts.next().unwrap_or("");
    let region = parts.next().unwrap_or("");
    match (language, region) {
        ("en", "gb") => "en-GB",
        ("en", "au") => "en-AU",
        ("en", "in") => "en-IN",
        ("en", _) => "en-US",
        ("es", "mx") => "es-MX",
        ("es", "us") => "es-US",
        ("es", _) => "es-ES",
        ("fr", "ca") => "fr-CA",
        ("fr", _) => "fr-FR",
        ("de", _) => "de-DE",
        ("pt", "pt") => "pt-PT",
        ("pt", _) => "pt-BR",
        ("it", _) => "it-IT",
        ("ar", _) => "ar-AE",
        ("hi", _) => "hi-IN",
        ("zh", "tw") | ("zh", "hant") => "zh-TW",
        ("zh", "hk") => "zh-HK",
        ("zh", _) => "zh-CN",
        ("ja", _) => "ja-JP",
        ("ru", _) => "ru-RU",
        _ => "en-US",
    }
}

/// "Your code is" and "Again" in the call's language.
fn call_phrases(language: &str) -> (&'static str, &'static str) {
    match &language[..2] {
        "es" => ("Su código de verificación es", "Repito"),
        "fr" => ("Votre code de vérification est", "Je répète"),
        "de" => ("Ihr Bestätigungscode lautet", "Noch einmal"),
        "pt" => ("O seu código de verificação é", "Repetindo"),
        "it" => ("Il tuo codice di verifica è", "Ripeto"),
        "ar" => ("رمز التحقق الخاص بك هو", "مرة أخرى"),
        "hi" => ("आपका सत्यापन कोड है", "फिर से"),
        "zh" => ("您的验证码是", "再说一遍"),
        "ja" => ("あなたの確認コードは", "繰り返します"),
        "ru" => ("Ваш код подтверждения", "Повторяю"),
        _ => ("Your verification code is", "Again"),
    }
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The TwiML document of an OTP call: the code read character by character (comma
/// separated so every voice pauses), twice, in the message's language.
pub fn twiml_for_code(code: &str, locale: &str) -> String {
    let language = say_language(locale);
    let (intro, again) = call_phrases(language);
    let spelled = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let say = |text: String| format!("<Say language=\"{language}\">{}</Say>", xml_escape(&text));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{}<Pause length=\"1\"/>{}<Pause length=\"1\"/>{}</Response>",
        say(format!("{intro}: {spelled}.")),
        say(format!("{again}: {spelled}.")),
        say(format!("{intro}: {spelled}.")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn t1_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn t1_signature_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature_base(url, &t1_params()),
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
        );
        assert_eq!(
            compute_signature(b"12345", url, &t1_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(verify_signature(
            b"12345",
            url,
            &t1_params(),
            b"",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_signature(
            b"12346",
            url,
            &t1_params(),
            b"",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn t2_port_variants() {
        let params = t1_params();
        assert_eq!(
            compute_signature(
                b"12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &params
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            compute_signature(
                b"12345",
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                &params
            ),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            compute_signature(
                b"12345",
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &params
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        // Signed with the port, received without it, and the reverse.
        assert!(verify_signature(
            b"12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(verify_signature(
            b"12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(verify_signature(
            b"12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        // A non-default port is never stripped.
        assert!(!verify_signature(
            b"12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            b"",
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn t3_multi_valued_params() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            compute_signature(
                b"12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn t4_json_body_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert!(verify_signature(
            b"12345",
            url,
            &[],
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify_signature(
            b"12345",
            url,
            &[],
            br#"{"property": "other", "boolean": true}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
    }

    #[test]
    fn t5_sms_status_callback() {
        let body = b"AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&ApiVersion=2010-04-01&From=%2B15017122661&MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&MessageStatus=delivered&SmsSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&SmsStatus=delivered&To=%2B15558675310";
        let params = otpd_delivery::provider::form_pairs(body);
        assert_eq!(
            compute_signature(
                b"12345",
                "https://otp.example.com/webhooks/twilio/status",
                &params
            ),
            "pJF3ytmFoNomBMTfOZ4GxTfpSZQ="
        );
    }

    #[test]
    fn twiml_reads_the_code_twice_escaped_in_the_locale() {
        let twiml = twiml_for_code("48<29", "fr-CA");
        assert!(twiml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"));
        assert!(twiml.contains("<Say language=\"fr-CA\">"));
        assert_eq!(twiml.matches("4, 8, &lt;, 2, 9.").count(), 3);
        assert!(!twiml.contains("48<29"));
        assert_eq!(say_language("pt-BR"), "pt-BR");
        assert_eq!(say_language("pt_PT"), "pt-PT");
        assert_eq!(say_language("ja"), "ja-JP");
        assert_eq!(say_language("zh-Hant"), "zh-TW");
        assert_eq!(say_language("ar"), "ar-AE");
        assert_eq!(say_language("hi"), "hi-IN");
        assert_eq!(say_language("ru"), "ru-RU");
        assert_eq!(say_language("xx"), "en-US");
        assert_eq!(say_language(""), "en-US");
    }

    #[test]
    fn error_codes_map_to_classes() {
        let body = |code: i64| format!(r#"{{"code": {code}, "message": "m", "status": 400}}"#);
        for code in [21211, 21610, 21612, 21614, 21217] {
            assert!(matches!(
                error_from_response(400, body(code).as_bytes()),
                SendError::Rejected { .. }
            ));
        }
        for code in [21408, 21212, 21606, 20003] {
            assert!(matches!(
                error_from_response(400, body(code).as_bytes()),
                SendError::Provider { .. }
            ));
        }
        assert!(matches!(
            error_from_response(429, body(20429).as_bytes()),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            error_from_response(502, b"<html>bad gateway</html>"),
            SendError::Transient { .. }
        ));
    }

    #[test]
    fn statuses_map() {
        assert_eq!(message_status("read").unwrap(), DeliveryStatus::Delivered);
        assert_eq!(message_status("queued").unwrap(), DeliveryStatus::Sent);
        assert_eq!(message_status("canceled").unwrap(), DeliveryStatus::Failed);
        assert_eq!(
            call_status("no-answer").unwrap(),
            DeliveryStatus::Undelivered
        );
        assert_eq!(call_status("completed").unwrap(), DeliveryStatus::Delivered);
        assert!(message_status("weird").is_err());
    }
}
