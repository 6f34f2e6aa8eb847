//! Meta WhatsApp Cloud API: sends the code through an approved *authentication* template
//! (copy-code button), and verifies the app's status webhooks (`X-Hub-Signature-256`) and
//! its subscription handshake.

use otpd_core::Secret;
use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use otpd_core::DeliveryStatus;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::http::{classify_status, digits_only, join, transport_error};

/// One WhatsApp Business phone number, as written in otpd's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCloudConfig {
    /// Graph API base URL; defaults to `https://graph.facebook.com` (tests point it at a
    /// mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Graph API version in the path; defaults to `v21.0`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The sending phone number's id (not the number itself) from the WhatsApp Manager.
    pub phone_number_id: String,
    /// A system-user (or app) access token with `whatsapp_business_messaging`.
    pub access_token: Secret,
    /// Name of the approved authentication template with a copy-code button.
    pub template_name: String,
    /// Template language when the message has no locale; defaults to `en_US`.
    #[serde(default)]
    pub default_language: Option<String>,
    /// Extra locale → template language mappings (`de` → `de`, `fr-CA` → `fr`), checked
    /// before the built-in ones (`en` → `en_US`, `pt` → `pt_BR`, `pt-BR` → `pt_BR`).
    #[serde(default)]
    pub languages: HashMap<String, String>,
    /// The Meta app secret: the key of `X-Hub-Signature-256` on status webhooks. Without
    /// it, receipts are not accepted at all.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// The verify token typed into the app's webhook settings, echoed in the subscription
    /// handshake. Without it, handshakes are refused.
    #[serde(default)]
    pub verify_token: Option<Secret>,
}

/// Sends codes as WhatsApp authentication templates through Meta's Cloud API.
pub struct WhatsappCloudProvider {
    name: String,
    config: WhatsappCloudConfig,
    url: String,
    http: reqwest::Client,
}

impl WhatsappCloudProvider {
    /// Builds the adapter; `http` carries the timeouts the operator chose.
    pub fn new(name: String, config: WhatsappCloudConfig, http: reqwest::Client) -> Self {
        let base = config
            .base_url
            .as_deref()
            .unwrap_or("https://graph.facebook.com");
        let version = config.api_version.as_deref().unwrap_or("v21.0");
        let url = join(
            base,
            &format!("{version}/{}/messages", config.phone_number_id),
        );
        WhatsappCloudProvider {
            name,
            config,
            url,
            http,
        }
    }

    /// The template language for a message locale.
    fn language(&self, locale: &str) -> String {
        if locale.is_empty() {
            return self
                .config
                .default_language
                .clone()
                .unwrap_or_else(|| "en_US".into());
        }
        if let Some(language) = self.config.languages.get(locale) {
            return language.clone();
        }
        template_language(locale)
    }

    async fn send_template(&self, message: &Message) -> Result<Accepted, SendError> {
        let body = template_body(
            digits_only(&message.to),
            &self.config.template_name,
            &self.language(&message.locale),
            &message.code,
        );
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.config.access_token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|error| transport_error(&error))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return match answer.pointer("/messages/0/id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => Ok(Accepted::sent(id)),
                _ => Err(SendError::transient(
                    status.to_string(),
                    "WhatsApp answered without a message id",
                )),
            };
        }
        let error = classify_error(status, &answer);
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            status,
            code = %error.code(),
            "WhatsApp refused a template message"
        );
        Err(error)
    }

    /// The subscription handshake: echo the challenge when the verify token matches.
    fn handshake(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let query = webhook.query_pairs();
        let value = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let (Some(mode), Some(token)) = (value("hub.mode"), value("hub.verify_token")) else {
            return Err(ReceiptError::Malformed(
                "handshake without hub.mode or hub.verify_token".into(),
            ));
        };
        let Some(expected) = self.config.verify_token.as_ref().map(Secret::expose) else {
            return Err(ReceiptError::Forged("no verify token is configured".into()));
        };
        if mode != "subscribe" || !bool::from(token.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ReceiptError::Forged("wrong verify token".into()));
        }
        match value("hub.challenge") {
            Some(challenge) => Ok(ReceiptReply::Challenge(challenge.to_string())),
            None => Err(ReceiptError::Malformed(
                "handshake without hub.challenge".into(),
            )),
        }
    }
}

impl Provider for WhatsappCloudProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "whatsapp_cloud"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_template(message).await })
    }

    fn has_receipts(&self) -> bool {
        // Without it receipts are refused, so none can ever arrive.
        self.config.app_secret.is_some()
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        if webhook.method.eq_ignore_ascii_case("GET") {
            return self.handshake(webhook);
        }
        let Some(secret) = self.config.app_secret.as_ref().map(Secret::expose) else {
            return Err(ReceiptError::NotSupported);
        };
        let signature = webhook
            .header("x-hub-signature-256")
            .ok_or_else(|| ReceiptError::Forged("no X-Hub-Signature-256".into()))?;
        if !verify_signature(secret.as_bytes(), &webhook.body, signature) {
            return Err(ReceiptError::Forged("X-Hub-Signature-256 mismatch".into()));
        }
        parse_statuses(&webhook.body).map(ReceiptReply::Receipts)
    }
}

/// Meta's template language for an otpd locale: the bare languages Meta only has as regional
/// templates get their usual region (`en` → `en_US`, `pt` → `pt_BR`), BCP 47 dashes become
/// underscores (`pt-BR` → `pt_BR`), anything else passes through.
pub fn template_language(locale: &str) -> String {
    match locale {
        "en" => "en_US".into(),
        "pt" => "pt_BR".into(),
        "zh" => "zh_CN".into(),
        other => other.replace('-', "_"),
    }
}

/// The authentication-template message: the code goes both in the body parameter and in the
/// copy-code (URL) button parameter, as Meta requires.
pub(crate) fn template_body(to: &str, template: &str, language: &str, code: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": template,
            "language": {"code": language},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": code}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": code}]}
            ]
        }
    })
}

/// Maps a Graph API error object (falling back on the HTTP status) to the worker's classes.
fn classify_error(status: u16, answer: &Value) -> SendError {
    let error = answer.get("error");
    let Some(code) = error
        .and_then(|error| error.get("code"))
        .and_then(Value::as_i64)
    else {
        return classify_status(status, status.to_string(), "unexpected WhatsApp answer");
    };
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let text = code.to_string();
    match code {
        // Not a WhatsApp user, bad number, not in the allowed list, unregistered, opted out.
        131026 | 100 | 131030 | 133010 | 131050 | 131049 | 131008 | 131009 => {
            SendError::rejected(text, message)
        }
        // Token, permission, account, payment and template problems of this account.
        0 | 190 | 3 | 10 | 200..=299 | 131031 | 131042 | 131048 | 132000 | 132001 | 132012 => {
            SendError::provider(text, message)
        }
        // Rate limits and Meta-side outages.
        4 | 80007 | 130429 | 131056 | 131000 | 131016 | 1 | 2 => {
            SendError::transient(text, message)
        }
        _ => classify_status(status, text, message),
    }
}

/// Checks `sha256=<hex HMAC-SHA256(app secret, raw body)>` in constant time (hex case-
/// insensitive).
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(claimed) = hex::decode(hex_mac.to_ascii_lowercase()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// Reads `entry[].changes[].value.statuses[]` from a webhook body; changes without
/// statuses (incoming messages, template updates) give nothing.
pub(crate) fn parse_statuses(body: &[u8]) -> Result<Vec<Receipt>, ReceiptError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|error| ReceiptError::Malformed(format!("not JSON: {error}")))?;
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| ReceiptError::Malformed("no entry array".into()))?;
    let mut receipts = Vec::new();
    for change in entries
        .iter()
        .filter_map(|entry| entry.get("changes").and_then(Value::as_array))
        .flatten()
    {
        let Some(statuses) = change.pointer("/value/statuses").and_then(Value::as_array) else {
            continue;
        };
        for status in statuses {
            let id = status.get("id").and_then(Value::as_str);
            let state = status.get("status").and_then(Value::as_str);
            let (Some(id), Some(state)) = (id, state) else {
                return Err(ReceiptError::Malformed(
                    "status without id or status".into(),
                ));
            };
            let (status, error_code) = match state {
                "sent" => (DeliveryStatus::Sent, None),
                "delivered" | "read" => (DeliveryStatus::Delivered, None),
                "failed" => (
                    DeliveryStatus::Undelivered,
                    status
                        .pointer("/errors/0/code")
                        .map(|code| match code {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .or_else(|| Some("failed".into())),
                ),
                _ => continue,
            };
            receipts.push(Receipt {
                message_id: id.to_string(),
                status,
                error_code,
                price: None,
                segments: None,
            });
        }
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T16_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA","status":"delivered","timestamp":"1705320005","recipient_id":"16505551234"}]},"field":"messages"}]}]}"#;
    const T16_SIGNATURE: &str =
        "sha256=d56a9e02d4d031dcb88f0de066a4443096f80ec6349e64741c10096f9d91eb15";

    #[test]
    fn vector_t16_verifies() {
        assert_eq!(T16_BODY.len(), 389);
        assert!(verify_signature(
            b"test_app_secret",
            T16_BODY.as_bytes(),
            T16_SIGNATURE
        ));
        assert!(verify_signature(
            b"test_app_secret",
            T16_BODY.as_bytes(),
            &T16_SIGNATURE
                .to_ascii_uppercase()
                .replace("SHA256=", "sha256=")
        ));
        assert!(!verify_signature(
            b"other_secret",
            T16_BODY.as_bytes(),
            T16_SIGNATURE
        ));
        let tampered = T16_BODY.replace("delivered", "failed");
        assert!(!verify_signature(
            b"test_app_secret",
            tampered.as_bytes(),
            T16_SIGNATURE
        ));
        assert!(!verify_signature(
            b"test_app_secret",
            T16_BODY.as_bytes(),
            "d56a9e02"
        ));
    }

    #[test]
    fn vector_t16_parses() {
        let receipts = parse_statuses(T16_BODY.as_bytes()).unwrap();
        assert_eq!(
            receipts,
            vec![Receipt {
                message_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA".into(),
                status: DeliveryStatus::Delivered,
                error_code: None,
                price: None,
                segments: None,
            }]
        );
    }

    #[test]
    fn locales_map_to_template_languages() {
        assert_eq!(template_language("en"), "en_US");
        assert_eq!(template_language("pt"), "pt_BR");
        assert_eq!(template_language("pt-BR"), "pt_BR");
        assert_eq!(template_language("de"), "de");
        assert_eq!(template_language("en_GB"), "en_GB");
    }

    #[test]
    fn error_codes_are_classified() {
        let class = |status, code: i64| {
            classify_error(status, &json!({"error": {"code": code, "message": "m"}}))
        };
        assert!(matches!(class(400, 131026), SendError::Rejected { .. }));
        assert!(matches!(class(400, 100), SendError::Rejected { .. }));
        assert!(matches!(class(401, 190), SendError::Provider { .. }));
        assert!(matches!(class(400, 132001), SendError::Provider { .. }));
        assert!(matches!(class(429, 130429), SendError::Transient { .. }));
        assert!(matches!(class(400, 131056), SendError::Transient { .. }));
        assert!(matches!(class(503, 999999), SendError::Transient { .. }));
        assert!(matches!(
            classify_error(502, &Value::Null),
            SendError::Transient { .. }
        ));
    }
}
