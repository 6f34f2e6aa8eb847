//! Plivo Message API: `POST /v1/Account/{auth_id}/Message/` (JSON, Basic auth), and status
//! callbacks verified with `X-Plivo-Signature-V3` (falling back to V2), both HMAC-SHA256
//! keyed with the Auth Token.

use otpd_core::Secret;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use otpd_core::DeliveryStatus;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde::Deserialize;

use crate::http::{classify_status, digits_only, excerpt, exchange, join, sms_only};
use crate::signing::{ct_eq, hmac_sha256};

/// Plivo's API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.plivo.com";

/// One Plivo account, as configured by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoConfig {
    /// API host; defaults to `https://api.plivo.com` (tests point it at a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The Auth ID (`MA…`): the Basic-auth user and part of every request path.
    pub auth_id: String,
    /// The Auth Token: the Basic-auth password and the key callbacks are signed with.
    pub auth_token: Secret,
    /// Default sender (Plivo number, short code or alphanumeric id) when the message names
    /// none and no Powerpack is set.
    #[serde(default)]
    pub src: Option<String>,
    /// A Powerpack to send through instead of a fixed `src` (Plivo picks the number).
    #[serde(default)]
    pub powerpack_uuid: Option<String>,
}

/// Sends through Plivo and verifies its status callbacks.
pub struct PlivoProvider {
    name: String,
    config: PlivoConfig,
    base_url: String,
    http: reqwest::Client,
}

impl PlivoProvider {
    /// An adapter for one configured Plivo account, sharing the server's HTTP client.
    pub fn new(name: String, config: PlivoConfig, http: reqwest::Client) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        PlivoProvider {
            name,
            config,
            base_url,
            http,
        }
    }

    async fn send_sms(&self, message: &Message) -> Result<Accepted, SendError> {
        sms_only("plivo", message)?;
        let mut body = serde_json::json!({
            "dst": digits_only(&message.to),
            "text": message.text,
            "type": "sms",
        });
        match &self.config.powerpack_uuid {
            Some(powerpack) => body["powerpack_uuid"] = powerpack.clone().into(),
            None => {
                let src = Some(message.from.clone())
                    .filter(|from| !from.is_empty())
                    .or_else(|| self.config.src.clone())
                    .ok_or_else(|| SendError::provider("config", "no src configured"))?;
                body["src"] = digits_only(&src).to_string().into();
            }
        }
        if let Some(url) = &message.receipt_url {
            body["url"] = url.clone().into();
            body["method"] = "POST".into();
        }
        if message.validity_seconds > 0 {
            // Seconds; Plivo's accepted range is 5 s to 3 h (outside it the request fails).
            body["message_expiry"] = message.validity_seconds.clamp(5, 10_800).into();
        }
        let url = join(
            &self.base_url,
            &format!("/v1/Account/{}/Message/", self.config.auth_id),
        );
        let request = self
            .http
            .post(url)
            .basic_auth(&self.config.auth_id, Some(self.config.auth_token.expose()))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body.to_string());
        let (status, body) = exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &body));
        }
        let queued: Queued = serde_json::from_slice(&body).map_err(|e| {
            SendError::transient("bad_response", format!("unreadable Plivo answer: {e}"))
        })?;
        let message_id = queued.message_uuid.into_iter().next().ok_or_else(|| {
            SendError::transient("bad_response", "Plivo answered no message_uuid")
        })?;
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            message_uuid = %message_id,
            "plivo accepted"
        );
        Ok(Accepted::sent(message_id))
    }
}

#[derive(Deserialize)]
struct Queued {
    #[serde(default)]
    message_uuid: Vec<String>,
}

/// Classifies a Plivo error (`{api_id, error}`) by HTTP status; a 400 about the sender is
/// this account's configuration, not the recipient's fault.
fn error_from_response(status: u16, body: &[u8]) -> SendError {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value.get("error").map(|error| match error {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| excerpt(body));
    let lower = text.to_ascii_lowercase();
    if status == 400 && (lower.contains("src") || lower.contains("powerpack")) {
        return SendError::provider(status.to_string(), text);
    }
    classify_status(status, status.to_string(), text)
}

impl Provider for PlivoProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "plivo"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_sms(message).await })
    }

    fn has_receipts(&self) -> bool {
        true
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let is_post = webhook.method.eq_ignore_ascii_case("POST");
        let params = if is_post {
            webhook.form_pairs()
        } else {
            Vec::new()
        };
        let token = self.config.auth_token.expose().as_bytes();
        let verified = match (
            webhook.header("x-plivo-signature-v3"),
            webhook.header("x-plivo-signature-v3-nonce"),
            webhook.header("x-plivo-signature-v2"),
            webhook.header("x-plivo-signature-v2-nonce"),
        ) {
            (Some(signature), Some(nonce), _, _) => {
                verify_v3(token, &webhook.url, &params, nonce, signature)
            }
            (_, _, Some(signature), Some(nonce)) => {
                verify_v2(token, &webhook.url, nonce, signature)
            }
            _ => return Err(ReceiptError::Forged("no X-Plivo-Signature".into())),
        };
        if !verified {
            return Err(ReceiptError::Forged("X-Plivo-Signature mismatch".into()));
        }
        let fields = if is_post {
            params
        } else {
            webhook.query_pairs()
        };
        parse_callback(&fields).map(|receipt| ReceiptReply::Receipts(vec![receipt]))
    }
}

/// Reads a message status callback.
fn parse_callback(fields: &[(String, String)]) -> Result<Receipt, ReceiptError> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let uuid =
        get("MessageUUID").ok_or_else(|| ReceiptError::Malformed("no MessageUUID".into()))?;
    let status = match get("Status").ok_or_else(|| ReceiptError::Malformed("no Status".into()))? {
        "queued" | "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" | "rejected" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        other => {
            return Err(ReceiptError::Malformed(format!("unknown Status {other:?}")));
        }
    };
    Ok(Receipt {
        message_id: uuid.to_string(),
        status,
        error_code: get("ErrorCode")
            .filter(|code| *code != "000" && *code != "0")
            .map(str::to_string),
        price: get("TotalAmount").and_then(|amount| amount.parse().ok()),
        segments: get("Units").and_then(|units| units.parse().ok()),
    })
}

/// `scheme://host[:port]/path` and the raw query of a URL (fragment dropped).
fn split_url(url: &str) -> (&str, Option<&str>) {
    let url = url.split('#').next().unwrap_or(url);
    match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    }
}

/// Groups pairs by name with each name's values sorted (Plivo's SDK uses a dict of lists).
fn grouped(pairs: &[(String, String)]) -> BTreeMap<&str, Vec<&str>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in pairs {
        map.entry(key.as_str()).or_default().push(value.as_str());
    }
    for values in map.values_mut() {
        values.sort_unstable();
    }
    map
}

/// The V3 string to sign (before `.nonce`): the URL without query, then `?` and the sorted
/// decoded query `k=v&…`; for POST, a `.` after a non-empty query, then every POST
/// parameter sorted as `keyvalue`.
pub fn v3_base(url: &str, post_params: &[(String, String)], is_post: bool) -> String {
    let (base, query) = split_url(url);
    let query_pairs = otpd_delivery::provider::form_pairs(query.unwrap_or("").as_bytes());
    let query_text = grouped(&query_pairs)
        .into_iter()
        .flat_map(|(key, values)| {
            values
                .into_iter()
                .map(move |value| format!("{key}={value}"))
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut out = base.to_string();
    let has_post = is_post && !post_params.is_empty();
    if !query_text.is_empty() || has_post {
        out.push('?');
        out.push_str(&query_text);
    }
    if !query_text.is_empty() && has_post {
        out.push('.');
    }
    if has_post {
        for (key, values) in grouped(post_params) {
            for value in values {
                out.push_str(key);
                out.push_str(value);
            }
        }
    }
    out
}

/// `X-Plivo-Signature-V3` of a callback.
pub fn compute_v3(
    auth_token: &[u8],
    url: &str,
    post_params: &[(String, String)],
    is_post: bool,
    nonce: &str,
) -> String {
    let base = format!("{}.{nonce}", v3_base(url, post_params, is_post));
    BASE64.encode(hmac_sha256(auth_token, base.as_bytes()))
}

/// Checks an `X-Plivo-Signature-V3` header (one or several comma-separated signatures, for
/// key rotation) in constant time. GET callbacks carry their parameters in the query.
pub fn verify_v3(
    auth_token: &[u8],
    url: &str,
    post_params: &[(String, String)],
    nonce: &str,
    header: &str,
) -> bool {
    let is_post = !post_params.is_empty();
    let expected = compute_v3(auth_token, url, post_params, is_post, nonce);
    let mut valid = false;
    for candidate in header.split(',') {
        valid |= ct_eq(expected.as_bytes(), candidate.trim().as_bytes());
    }
    valid
}

/// `X-Plivo-Signature-V2`: the URL without query, then the nonce.
pub fn compute_v2(auth_token: &[u8], url: &str, nonce: &str) -> String {
    let (base, _) = split_url(url);
    BASE64.encode(hmac_sha256(auth_token, format!("{base}{nonce}").as_bytes()))
}

/// Checks an `X-Plivo-Signature-V2` header in constant time.
pub fn verify_v2(auth_token: &[u8], url: &str, nonce: &str, header: &str) -> bool {
    ct_eq(
        compute_v2(auth_token, url, nonce).as_bytes(),
        header.trim().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t14_params() -> Vec<(String, String)> {
        [
            ("MessageUUID", "5b40a428-bfc7-4daf-9d06-726c558bf3b8"),
            ("Status", "delivered"),
            ("From", "14155550100"),
            ("To", "14155550123"),
            ("Units", "1"),
            ("TotalAmount", "0.00500"),
            ("ErrorCode", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn t13_v2_vector() {
        assert_eq!(
            compute_v2(b"my_auth_token", "https://answer.url", "12345"),
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        );
        assert!(verify_v2(
            b"my_auth_token",
            "https://answer.url",
            "12345",
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        assert!(!verify_v2(
            b"my_auth_tokens",
            "https://answer.url",
            "12345",
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
    }

    #[test]
    fn t14_v3_vectors() {
        let params = t14_params();
        let nonce = "05429567804466091622";
        assert_eq!(
            v3_base(
                "https://otp.example.com/webhooks/plivo?tenant=a",
                &params,
                true
            ),
            "https://otp.example.com/webhooks/plivo?tenant=a.ErrorCodeFrom14155550100MessageUUID5b40a428-bfc7-4daf-9d06-726c558bf3b8StatusdeliveredTo14155550123TotalAmount0.00500Units1"
        );
        assert_eq!(
            compute_v3(
                b"my_auth_token",
                "https://otp.example.com/webhooks/plivo?tenant=a",
                &params,
                true,
                nonce
            ),
            "DuHJGvOybURQe5e9gu+qmVoCDh5A7u6YDIth1flIglM="
        );
        assert_eq!(
            compute_v3(
                b"my_auth_token",
                "https://otp.example.com/webhooks/plivo",
                &params,
                true,
                nonce
            ),
            "Sso3Gl8d9tBdQYpR/bcIjy3V3bEvikskhNITzOwbOwY="
        );
        assert!(verify_v3(
            b"my_auth_token",
            "https://otp.example.com/webhooks/plivo",
            &params,
            nonce,
            "old-signature, Sso3Gl8d9tBdQYpR/bcIjy3V3bEvikskhNITzOwbOwY="
        ));
        assert!(!verify_v3(
            b"my_auth_tokens",
            "https://otp.example.com/webhooks/plivo",
            &params,
            nonce,
            "Sso3Gl8d9tBdQYpR/bcIjy3V3bEvikskhNITzOwbOwY="
        ));
    }

    #[test]
    fn get_base_sorts_the_query() {
        assert_eq!(
            v3_base("https://a.example/cb?b=2&a=1", &[], false),
            "https://a.example/cb?a=1&b=2"
        );
        assert_eq!(
            v3_base("https://a.example/cb", &[], false),
            "https://a.example/cb"
        );
    }
}
