//! Vonage (Nexmo) SMS API: `POST /sms/json` with form fields, per-part statuses in a 200
//! body, and delivery receipts (GET query, POST form or POST JSON) optionally signed with
//! the account's signature secret (`sig`, methods md5hash / md5 / sha1 / sha256 / sha512).

use otpd_core::DeliveryStatus;
use otpd_core::Secret;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde::Deserialize;

use crate::http::{classify_status, digits_only, excerpt, exchange, form_body, join, sms_only};
use crate::signing::{ct_eq, hmac_md5, hmac_sha1, hmac_sha256, hmac_sha512, md5};

/// Vonage's SMS API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://rest.nexmo.com";

/// How Vonage signs receipts: the method chosen in the dashboard's signature settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    /// Legacy: `MD5(params + secret)`.
    #[default]
    Md5hash,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// One Vonage account, as configured by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    /// API host; defaults to `https://rest.nexmo.com` (tests point it at a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The account's API key (sent as the `api_key` form field).
    pub api_key: Secret,
    /// The account's API secret (sent as the `api_secret` form field).
    pub api_secret: Secret,
    /// Default sender (alphanumeric ≤ 11 chars or a number) when the message names none.
    #[serde(default)]
    pub from: Option<String>,
    /// The signature secret of the account: when set, receipts must carry a valid `sig`
    /// (enable "signed webhooks" in the dashboard); when unset receipts are taken unsigned.
    #[serde(default)]
    pub signature_secret: Option<Secret>,
    /// The signature method selected in the dashboard (default `md5hash`).
    #[serde(default)]
    pub signature_method: SignatureMethod,
}

/// Sends through the Vonage SMS API and reads its delivery receipts.
pub struct VonageProvider {
    name: String,
    config: VonageConfig,
    base_url: String,
    http: reqwest::Client,
}

impl VonageProvider {
    /// An adapter for one configured Vonage account, sharing the server's HTTP client.
    pub fn new(name: String, config: VonageConfig, http: reqwest::Client) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        VonageProvider {
            name,
            config,
            base_url,
            http,
        }
    }

    async fn send_sms(&self, message: &Message) -> Result<Accepted, SendError> {
        sms_only("vonage", message)?;
        let from = Some(message.from.clone())
            .filter(|from| !from.is_empty())
            .or_else(|| self.config.from.clone())
            .ok_or_else(|| SendError::provider("config", "no sender configured"))?;
        let mut fields: Vec<(&str, String)> = vec![
            ("api_key", self.config.api_key.expose().to_string()),
            ("api_secret", self.config.api_secret.expose().to_string()),
            ("from", from),
            ("to", digits_only(&message.to).to_string()),
            ("text", message.text.clone()),
            (
                "type",
                if otpd_core::sms::is_gsm7(&message.text) {
                    "text"
                } else {
                    "unicode"
                }
                .to_string(),
            ),
        ];
        if message.validity_seconds > 0 {
            let ttl_ms = u64::from(message.validity_seconds) * 1000;
            fields.push(("ttl", ttl_ms.clamp(20_000, 604_800_000).to_string()));
        }
        if let Some(url) = &message.receipt_url {
            fields.push(("status-report-req", "true".to_string()));
            fields.push(("callback", url.clone()));
        }
        if !message.reference.is_empty() {
            fields.push(("client-ref", message.reference.clone()));
        }
        let request = self
            .http
            .post(join(&self.base_url, "/sms/json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form_body(&fields));
        let (status, body) = exchange(request).await?;
        if status != 200 {
            return Err(problem_error(status, &body));
        }
        let response: SmsResponse = serde_json::from_slice(&body).map_err(|e| {
            SendError::transient("bad_response", format!("unreadable Vonage answer: {e}"))
        })?;
        if let Some(failed) = response.messages.iter().find(|part| part.status != "0") {
            return Err(status_error(
                &failed.status,
                failed.error_text.clone().unwrap_or_default(),
            ));
        }
        let first = response.messages.first().ok_or_else(|| {
            SendError::transient("bad_response", "Vonage answered no message parts")
        })?;
        let message_id = first
            .message_id
            .clone()
            .ok_or_else(|| SendError::transient("bad_response", "Vonage answered no message-id"))?;
        let prices: Vec<f64> = response
            .messages
            .iter()
            .filter_map(|part| part.message_price.as_deref()?.parse::<f64>().ok())
            .collect();
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            message_id = %message_id,
            "vonage accepted"
        );
        Ok(Accepted {
            message_id,
            status: DeliveryStatus::Sent,
            segments: response
                .message_count
                .as_deref()
                .and_then(|count| count.parse().ok())
                .or(Some(response.messages.len() as u32)),
            price: (!prices.is_empty()).then(|| prices.iter().sum()),
            price_unit: None,
        })
    }

    /// The receipt's fields as received: query for GET, JSON or form body for POST.
    fn receipt_fields(webhook: &InboundRequest) -> Result<Vec<(String, String)>, ReceiptError> {
        if !webhook.method.eq_ignore_ascii_case("POST") {
            return Ok(webhook.query_pairs());
        }
        let is_json = webhook
            .header("content-type")
            .is_some_and(|ct| ct.contains("json"))
            || webhook.body.trim_ascii_start().starts_with(b"{");
        if !is_json {
            return Ok(webhook.form_pairs());
        }
        let value: serde_json::Value = serde_json::from_slice(&webhook.body)
            .map_err(|e| ReceiptError::Malformed(format!("receipt is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| ReceiptError::Malformed("receipt is not a JSON object".into()))?;
        Ok(object
            .iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Number(number) => number.to_string(),
                    serde_json::Value::Bool(flag) => flag.to_string(),
                    _ => return None,
                };
                Some((key.clone(), text))
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct SmsResponse {
    #[serde(rename = "message-count", default)]
    message_count: Option<String>,
    #[serde(default)]
    messages: Vec<SmsPart>,
}

#[derive(Deserialize)]
struct SmsPart {
    status: String,
    #[serde(rename = "message-id", default)]
    message_id: Option<String>,
    #[serde(rename = "message-price", default)]
    message_price: Option<String>,
    #[serde(rename = "error-text", default)]
    error_text: Option<String>,
}

/// Classifies an SMS API `status` code from a 200 body.
fn status_error(status: &str, text: String) -> SendError {
    match status {
        // Throttled, internal error, too many binds.
        "1" | "5" | "10" => SendError::transient(status, text),
        // Credentials, barred or out-of-credit account, signature, sender, demo whitelist,
        // account not enabled, callback URL: this account's configuration.
        "4" | "8" | "9" | "11" | "14" | "15" | "23" | "29" | "32" => {
            SendError::provider(status, text)
        }
        // Missing/invalid parameters, invalid number, barred number, too long, deactivated.
        _ => SendError::rejected(status, text),
    }
}

/// Classifies a non-200 answer (problem JSON on 401/429/5xx) by HTTP status.
fn problem_error(status: u16, body: &[u8]) -> SendError {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let title = value.get("title")?.as_str()?.to_string();
            Some(match value.get("detail").and_then(|d| d.as_str()) {
                Some(detail) => format!("{title}: {detail}"),
                None => title,
            })
        })
        .unwrap_or_else(|| excerpt(body));
    classify_status(status, status.to_string(), text)
}

impl Provider for VonageProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vonage"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_sms(message).await })
    }

    fn has_receipts(&self) -> bool {
        true
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let fields = Self::receipt_fields(webhook)?;
        if let Some(secret) = &self.config.signature_secret {
            let sig = fields
                .iter()
                .find(|(key, _)| key == "sig")
                .map(|(_, value)| value.as_str())
                .ok_or_else(|| ReceiptError::Forged("no sig on a signed account".into()))?;
            if !verify_signature(&fields, secret.expose(), self.config.signature_method, sig) {
                return Err(ReceiptError::Forged("sig mismatch".into()));
            }
        }
        parse_receipt(&fields).map(|receipt| ReceiptReply::Receipts(vec![receipt]))
    }
}

/// Reads one DLR (one message part).
fn parse_receipt(fields: &[(String, String)]) -> Result<Receipt, ReceiptError> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let message_id = get("messageId")
        .or_else(|| get("message-id"))
        .ok_or_else(|| ReceiptError::Malformed("no messageId".into()))?;
    let status = match get("status").ok_or_else(|| ReceiptError::Malformed("no status".into()))? {
        "delivered" => DeliveryStatus::Delivered,
        "accepted" | "buffered" => DeliveryStatus::Sent,
        "expired" | "failed" | "rejected" | "unknown" => DeliveryStatus::Undelivered,
        other => {
            return Err(ReceiptError::Malformed(format!(
                "unknown DLR status {other:?}"
            )));
        }
    };
    Ok(Receipt {
        message_id: message_id.to_string(),
        status,
        error_code: get("err-code")
            .filter(|code| *code != "0")
            .map(str::to_string),
        price: get("price").and_then(|price| price.parse().ok()),
        segments: None,
    })
}

/// The string Vonage signs: `&key=value` for every parameter but `sig`, keys sorted by
/// bytes, `&` and `=` inside values replaced by `_`.
pub fn signature_base(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(key, _)| key != "sig")
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    let mut base = String::new();
    for (key, value) in pairs {
        base.push('&');
        base.push_str(key);
        base.push('=');
        base.push_str(&value.replace(['&', '='], "_"));
    }
    base
}

/// The lower-case hex `sig` of `params` under `secret` with `method`.
pub fn compute_signature(
    params: &[(String, String)],
    secret: &str,
    method: SignatureMethod,
) -> String {
    let base = signature_base(params);
    let key = secret.as_bytes();
    let digest = match method {
        SignatureMethod::Md5hash => md5(format!("{base}{secret}").as_bytes()),
        SignatureMethod::Md5 => hmac_md5(key, base.as_bytes()),
        SignatureMethod::Sha1 => hmac_sha1(key, base.as_bytes()),
        SignatureMethod::Sha256 => hmac_sha256(key, base.as_bytes()),
        SignatureMethod::Sha512 => hmac_sha512(key, base.as_bytes()),
    };
    hex::encode(digest)
}

/// Checks a `sig` (hex, either case) in constant time.
pub fn verify_signature(
    params: &[(String, String)],
    secret: &str,
    method: SignatureMethod,
    sig: &str,
) -> bool {
    let expected = compute_signature(params, secret, method);
    ct_eq(
        expected.as_bytes(),
        sig.trim().to_ascii_lowercase().as_bytes(),
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

    fn t6_params() -> Vec<(String, String)> {
        pairs(&[
            ("message-timestamp", "2013-11-21 15:27:30"),
            ("messageId", "020000001B0FE827"),
            ("msisdn", "14843472194"),
            ("text", "Test again"),
            ("timestamp", "1385047698"),
            ("to", "13239877404"),
            ("type", "text"),
        ])
    }

    #[test]
    fn t6_all_methods() {
        let params = t6_params();
        let secret = "my_secret_key_for_testing";
        assert_eq!(
            signature_base(&params),
            "&message-timestamp=2013-11-21 15:27:30&messageId=020000001B0FE827&msisdn=14843472194&text=Test again&timestamp=1385047698&to=13239877404&type=text"
        );
        let cases = [
            (SignatureMethod::Md5hash, "d2e7b1dc968737c5998ad624e02f90b7"),
            (SignatureMethod::Md5, "DDEBD46008C2D4E93CCE578A332A52D5"),
            (
                SignatureMethod::Sha1,
                "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
            ),
            (
                SignatureMethod::Sha256,
                "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
            ),
            (
                SignatureMethod::Sha512,
                "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
            ),
        ];
        for (method, sig) in cases {
            assert_eq!(
                compute_signature(&params, secret, method),
                sig.to_ascii_lowercase()
            );
            assert!(verify_signature(&params, secret, method, sig));
            assert!(verify_signature(
                &params,
                secret,
                method,
                &sig.to_ascii_lowercase()
            ));
            assert!(!verify_signature(&params, "other", method, sig));
        }
        // `sig` itself is not signed.
        let mut with_sig = params.clone();
        with_sig.push(("sig".into(), "d2e7b1dc968737c5998ad624e02f90b7".into()));
        assert!(verify_signature(
            &with_sig,
            secret,
            SignatureMethod::Md5hash,
            "d2e7b1dc968737c5998ad624e02f90b7"
        ));
    }

    #[test]
    fn t7_sign_params() {
        let params = pairs(&[
            ("param1", "value1"),
            ("param2", "value2"),
            ("timestamp", "1234567890"),
        ]);
        assert_eq!(
            compute_signature(&params, "signature_secret", SignatureMethod::Sha256),
            "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
        );
        assert_eq!(
            compute_signature(&params, "signature_secret", SignatureMethod::Md5),
            "724c2bf6ca423c36e20631b11d1c5753"
        );
    }

    #[test]
    fn values_with_separators_are_replaced() {
        let params = pairs(&[("a", "x&y=z")]);
        assert_eq!(signature_base(&params), "&a=x_y_z");
    }

    #[test]
    fn statuses_map_to_classes() {
        for code in ["1", "5", "10"] {
            assert!(matches!(
                status_error(code, String::new()),
                SendError::Transient { .. }
            ));
        }
        for code in ["4", "8", "9", "14", "15", "29"] {
            assert!(matches!(
                status_error(code, String::new()),
                SendError::Provider { .. }
            ));
        }
        for code in ["2", "3", "6", "7", "12", "33"] {
            assert!(matches!(
                status_error(code, String::new()),
                SendError::Rejected { .. }
            ));
        }
    }
}
