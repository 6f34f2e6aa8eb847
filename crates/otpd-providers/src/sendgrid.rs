//! SendGrid (Twilio) v3 `mail/send`, and its Event Webhook as delivery receipts, verified with
//! the account's ECDSA P-256 key when one is configured.

use otpd_core::Secret;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use otpd_core::DeliveryStatus;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Value, json};

use crate::http::{classify_status, join, transport_error};

/// One SendGrid account (API key and sender), as written in otpd's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridConfig {
    /// API base URL; defaults to `https://api.sendgrid.com` (EU data residency:
    /// `https://api.eu.sendgrid.com`; tests point it at a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key (`SG.…`) with `mail.send` permission.
    pub api_key: Secret,
    /// Sender address used when the message names none; must be a verified sender identity.
    pub from_email: String,
    /// Display name of the sender (`ACME`).
    #[serde(default)]
    pub from_name: Option<String>,
    /// A `Reply-To` address, when replies should not go to `from_email`.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Sandbox mode: SendGrid validates the request and answers as usual but sends nothing.
    #[serde(default)]
    pub sandbox_mode: bool,
    /// The Signed Event Webhook verification key (base64 DER SubjectPublicKeyInfo as shown in
    /// the SendGrid console, or the same wrapped in PEM). When set, unsigned or badly signed
    /// event batches are refused; when absent, events are accepted unsigned, so the receipt
    /// URL must then stay secret.
    #[serde(default)]
    pub webhook_verification_key: Option<String>,
    /// When set, signed event batches whose timestamp is further than this many seconds from
    /// now are refused as replays.
    #[serde(default)]
    pub webhook_max_age_seconds: Option<u64>,
}

/// Why a SendGrid configuration cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendgridConfigError {
    /// The webhook verification key is not a base64 P-256 public key.
    #[error("sendgrid webhook_verification_key is not a P-256 public key: {0}")]
    VerificationKey(String),
}

/// Sends email through SendGrid's v3 API.
pub struct SendgridProvider {
    name: String,
    config: SendgridConfig,
    url: String,
    key: Option<VerifyingKey>,
    http: reqwest::Client,
}

impl SendgridProvider {
    /// Builds the adapter, parsing the webhook verification key up front so a bad key fails
    /// at startup rather than on the first receipt.
    pub fn new(
        name: String,
        config: SendgridConfig,
        http: reqwest::Client,
    ) -> Result<Self, SendgridConfigError> {
        let key = config
            .webhook_verification_key
            .as_deref()
            .map(parse_public_key)
            .transpose()?;
        let base = config
            .base_url
            .as_deref()
            .unwrap_or("https://api.sendgrid.com");
        let url = join(base, "v3/mail/send");
        Ok(SendgridProvider {
            name,
            config,
            url,
            key,
            http,
        })
    }

    async fn mail_send(&self, message: &Message) -> Result<Accepted, SendError> {
        let body = self.body(message);
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.config.api_key.expose())
            .json(&body)
            .send()
            .await
            .map_err(|error| transport_error(&error))?;
        let status = response.status().as_u16();
        let message_id = response
            .headers()
            .get("x-message-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .map_err(|error| transport_error(&error))?;
        if (200..300).contains(&status) {
            let id = message_id.unwrap_or_else(|| {
                // Accepted all the same: failing now would send the code twice.
                tracing::warn!(provider = %self.name, "SendGrid accepted a mail without X-Message-Id");
                message.reference.clone()
            });
            return Ok(Accepted::sent(id));
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let words = answer
            .pointer("/errors/0/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            status,
            "SendGrid refused a mail"
        );
        Err(classify_status(status, status.to_string(), words))
    }

    /// The `mail/send` body: plain text and, when present, HTML; our reference in
    /// `custom_args` (echoed in events); all tracking off (no rewritten links or pixels in a
    /// code email).
    fn body(&self, message: &Message) -> Value {
        let from_email = if message.from.is_empty() {
            self.config.from_email.as_str()
        } else {
            message.from.as_str()
        };
        let mut from = json!({"email": from_email});
        if let Some(name) = &self.config.from_name {
            from["name"] = json!(name);
        }
        let mut content = vec![json!({"type": "text/plain", "value": message.text})];
        if let Some(html) = &message.html {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let mut body = json!({
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": from,
            "subject": message.subject,
            "content": content,
            "custom_args": {"otpd_reference": message.reference},
            "tracking_settings": {
                "click_tracking": {"enable": false, "enable_text": false},
                "open_tracking": {"enable": false},
                "subscription_tracking": {"enable": false}
            }
        });
        if let Some(reply_to) = &self.config.reply_to {
            body["reply_to"] = json!({"email": reply_to});
        }
        if self.config.sandbox_mode {
            body["mail_settings"] = json!({"sandbox_mode": {"enable": true}});
        }
        body
    }
}

impl Provider for SendgridProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sendgrid"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.mail_send(message).await })
    }

    fn has_receipts(&self) -> bool {
        true
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        if let Some(key) = &self.key {
            let signature = webhook
                .header("x-twilio-email-event-webhook-signature")
                .ok_or_else(|| ReceiptError::Forged("no event webhook signature".into()))?;
            let timestamp = webhook
                .header("x-twilio-email-event-webhook-timestamp")
                .ok_or_else(|| ReceiptError::Forged("no event webhook timestamp".into()))?;
            if !verify_event_signature(key, timestamp, &webhook.body, signature) {
                return Err(ReceiptError::Forged(
                    "event webhook signature mismatch".into(),
                ));
            }
            if let Some(max_age) = self.config.webhook_max_age_seconds {
                let sent: u64 = timestamp
                    .trim()
                    .parse()
                    .map_err(|_| ReceiptError::Malformed("timestamp is not a number".into()))?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs())
                    .unwrap_or(0);
                if now.abs_diff(sent) > max_age {
                    return Err(ReceiptError::Forged(
                        "event webhook timestamp too old".into(),
                    ));
                }
            }
        }
        parse_events(&webhook.body).map(ReceiptReply::Receipts)
    }
}

/// Reads a SendGrid verification key: base64 DER SubjectPublicKeyInfo, bare or in PEM.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SendgridConfigError> {
    let base64: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|error| SendgridConfigError::VerificationKey(error.to_string()))?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|error| SendgridConfigError::VerificationKey(error.to_string()))
}

/// Checks a signed event batch: ECDSA P-256 / SHA-256 over `timestamp + raw body`, the
/// signature being base64 DER.
pub fn verify_event_signature(
    key: &VerifyingKey,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Ok(der) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    key.verify(&signed, &signature).is_ok()
}

/// Turns an event batch into receipts: `delivered` → delivered; `processed`/`deferred` →
/// sent; `bounce`/`dropped`/`blocked` → undelivered (with the SMTP status as error code);
/// engagement events (open, click, unsubscribe…) are not delivery states and are skipped.
/// The message id is `sg_message_id` up to its first `.`, which is the `X-Message-Id` the
/// send got.
pub(crate) fn parse_events(body: &[u8]) -> Result<Vec<Receipt>, ReceiptError> {
    let events: Value = serde_json::from_slice(body)
        .map_err(|error| ReceiptError::Malformed(format!("not JSON: {error}")))?;
    let events = events
        .as_array()
        .ok_or_else(|| ReceiptError::Malformed("events are not an array".into()))?;
    let mut receipts = Vec::new();
    for event in events {
        let kind = event
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| ReceiptError::Malformed("event without a type".into()))?;
        let status = match kind {
            "delivered" => DeliveryStatus::Delivered,
            "processed" | "deferred" => DeliveryStatus::Sent,
            "bounce" | "dropped" | "blocked" => DeliveryStatus::Undelivered,
            _ => continue,
        };
        let Some(id) = event.get("sg_message_id").and_then(Value::as_str) else {
            // Without an id there is nothing to attach the state to.
            continue;
        };
        let message_id = id.split('.').next().unwrap_or(id).to_string();
        let error_code = (status == DeliveryStatus::Undelivered).then(|| {
            event
                .get("status")
                .and_then(Value::as_str)
                .filter(|code| !code.is_empty())
                .unwrap_or(kind)
                .to_string()
        });
        receipts.push(Receipt {
            message_id,
            status,
            error_code,
            price: None,
            segments: None,
        });
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T17_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const T17_TIMESTAMP: &str = "1600112502";
    const T17_SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const T17_PAYLOAD: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";

    #[test]
    fn vector_t17_verifies() {
        let key = parse_public_key(T17_KEY).unwrap();
        assert!(verify_event_signature(
            &key,
            T17_TIMESTAMP,
            T17_PAYLOAD.as_bytes(),
            T17_SIGNATURE
        ));
        // The trailing CRLF is signed.
        assert!(!verify_event_signature(
            &key,
            T17_TIMESTAMP,
            T17_PAYLOAD.trim_end().as_bytes(),
            T17_SIGNATURE
        ));
        assert!(!verify_event_signature(
            &key,
            "1600112503",
            T17_PAYLOAD.as_bytes(),
            T17_SIGNATURE
        ));
        assert!(!verify_event_signature(
            &key,
            T17_TIMESTAMP,
            T17_PAYLOAD.as_bytes(),
            "not base64!"
        ));
    }

    #[test]
    fn pem_keys_are_accepted_and_garbage_refused() {
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &T17_KEY[..64],
            &T17_KEY[64..]
        );
        assert!(parse_public_key(&pem).is_ok());
        assert!(parse_public_key("bm90IGEga2V5").is_err());
    }

    #[test]
    fn vector_t17_parses() {
        assert_eq!(
            parse_events(T17_PAYLOAD.as_bytes()).unwrap(),
            vec![Receipt {
                message_id: "LRzXl_NHStOGhQ4kofSm_A".into(),
                status: DeliveryStatus::Undelivered,
                error_code: Some("dropped".into()),
                price: None,
                segments: None,
            }]
        );
    }
}
