//! Infobip SMS: `POST /sms/2/text/advanced` with `Authorization: App {api_key}`, and JSON
//! delivery reports. Infobip documents no signature for SMS reports, so the adapter appends
//! a secret `token` query parameter to the `notifyUrl` it sends and only accepts reports to a
//! URL carrying that token.

use otpd_core::DeliveryStatus;
use otpd_core::Secret;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde::Deserialize;

use crate::http::{
    classify_status, digits_only, excerpt, exchange, join, sms_only, with_query_param,
};
use crate::signing::ct_eq;

/// Infobip's generic API host, used when `base_url` is not set (accounts also have their own
/// `https://xxxxx.api.infobip.com` host, which is preferable).
pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";

/// Infobip's longest validity period, in minutes (48 h).
const MAX_VALIDITY_MINUTES: u32 = 2880;

/// One Infobip account, as configured by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfobipConfig {
    /// API host: the account's own base URL (`https://xxxxx.api.infobip.com`); defaults to
    /// `https://api.infobip.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key: sent as `Authorization: App {api_key}`.
    pub api_key: Secret,
    /// Default sender when the message names none.
    #[serde(default)]
    pub from: Option<String>,
    /// A long random secret authenticating delivery reports: appended as `?token=…` to the
    /// receipt URL sent as `notifyUrl`, and required (compared in constant time) on every
    /// report. Without it no `notifyUrl` is sent and every report is refused.
    #[serde(default)]
    pub receipt_token: Option<Secret>,
}

/// Sends through Infobip and reads its delivery reports.
pub struct InfobipProvider {
    name: String,
    config: InfobipConfig,
    base_url: String,
    http: reqwest::Client,
}

impl InfobipProvider {
    /// An adapter for one configured Infobip account, sharing the server's HTTP client.
    pub fn new(name: String, config: InfobipConfig, http: reqwest::Client) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        InfobipProvider {
            name,
            config,
            base_url,
            http,
        }
    }

    async fn send_sms(&self, message: &Message) -> Result<Accepted, SendError> {
        sms_only("infobip", message)?;
        let from = Some(message.from.clone())
            .filter(|from| !from.is_empty())
            .or_else(|| self.config.from.clone());
        let mut destination = serde_json::json!({ "to": digits_only(&message.to) });
        if !message.reference.is_empty() {
            destination["messageId"] = message.reference.clone().into();
        }
        let mut sms = serde_json::json!({
            "destinations": [destination],
            "text": message.text,
        });
        if let Some(from) = from {
            sms["from"] = from.into();
        }
        if let (Some(url), Some(token)) = (&message.receipt_url, &self.config.receipt_token) {
            sms["notifyUrl"] = with_query_param(url, "token", token.expose()).into();
            sms["notifyContentType"] = "application/json".into();
            if !message.reference.is_empty() {
                sms["callbackData"] = message.reference.clone().into();
            }
        }
        if message.validity_seconds > 0 {
            sms["validityPeriod"] = validity_minutes(message.validity_seconds).into();
        }
        let body = serde_json::json!({ "messages": [sms] });
        let request = self
            .http
            .post(join(&self.base_url, "/sms/2/text/advanced"))
            .header(
                "authorization",
                format!("App {}", self.config.api_key.expose()),
            )
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body.to_string());
        let (status, body) = exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &body));
        }
        let response: SendResponse = serde_json::from_slice(&body).map_err(|e| {
            SendError::transient("bad_response", format!("unreadable Infobip answer: {e}"))
        })?;
        let sent =
            response.messages.into_iter().next().ok_or_else(|| {
                SendError::transient("bad_response", "Infobip answered no messages")
            })?;
        if let Some(status) = &sent.status
            && status.group_id == 5
        {
            let code = status.name.clone().unwrap_or_else(|| status.id.to_string());
            let text = status.description.clone().unwrap_or_default();
            match status.id {
                // Duplicate messageId: our earlier request (whose answer was lost) was taken.
                23 => {}
                // Not enough credits, sender not allowed: this account.
                11 | 12 => return Err(SendError::provider(code, text)),
                // Infobip-side failure.
                21 => return Err(SendError::transient(code, text)),
                _ => return Err(SendError::rejected(code, text)),
            }
        }
        let message_id = sent
            .message_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| message.reference.clone());
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            message_id = %message_id,
            "infobip accepted"
        );
        Ok(Accepted::sent(message_id))
    }
}

/// Seconds of validity → Infobip minutes: rounded up, at least 1, at most 2880.
pub fn validity_minutes(seconds: u32) -> u32 {
    seconds.div_ceil(60).clamp(1, MAX_VALIDITY_MINUTES)
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "groupId")]
    group_id: i64,
    #[serde(default)]
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Classifies an Infobip `requestError` by HTTP status, with its `messageId` as the code.
fn error_from_response(status: u16, body: &[u8]) -> SendError {
    let exception = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.pointer("/requestError/serviceException").cloned());
    match exception {
        Some(exception) => {
            let code = exception
                .get("messageId")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| status.to_string());
            let text = exception
                .get("text")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            classify_status(status, code, text)
        }
        None => classify_status(status, status.to_string(), excerpt(body)),
    }
}

impl Provider for InfobipProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "infobip"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_sms(message).await })
    }

    fn has_receipts(&self) -> bool {
        // Without it receipts are refused, so none can ever arrive.
        self.config.receipt_token.is_some()
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let expected = self
            .config
            .receipt_token
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| ReceiptError::Forged("no receipt_token configured".into()))?;
        let token = webhook
            .query_pairs()
            .into_iter()
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value)
            .ok_or_else(|| ReceiptError::Forged("no token in the receipt URL".into()))?;
        if !ct_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(ReceiptError::Forged("wrong receipt token".into()));
        }
        let reports: Reports = serde_json::from_slice(&webhook.body)
            .map_err(|e| ReceiptError::Malformed(format!("unreadable report: {e}")))?;
        reports
            .results
            .iter()
            .map(parse_result)
            .collect::<Result<Vec<_>, _>>()
            .map(ReceiptReply::Receipts)
    }
}

#[derive(Deserialize)]
struct Reports {
    results: Vec<ReportResult>,
}

#[derive(Deserialize)]
struct ReportResult {
    #[serde(rename = "messageId")]
    message_id: String,
    status: Status,
    #[serde(default)]
    error: Option<ReportError>,
    #[serde(default)]
    price: Option<Price>,
    #[serde(rename = "smsCount", default)]
    sms_count: Option<u32>,
}

#[derive(Deserialize)]
struct ReportError {
    #[serde(default)]
    id: i64,
}

#[derive(Deserialize)]
struct Price {
    #[serde(rename = "pricePerMessage", default)]
    price_per_message: Option<f64>,
}

/// One report in otpd's terms.
fn parse_result(result: &ReportResult) -> Result<Receipt, ReceiptError> {
    let status = match (result.status.group_id, result.status.id) {
        (3, 5) => DeliveryStatus::Delivered,
        (3, _) | (1, _) => DeliveryStatus::Sent,
        (2 | 4 | 5, _) => DeliveryStatus::Undelivered,
        (group, _) => {
            return Err(ReceiptError::Malformed(format!(
                "unknown status group {group}"
            )));
        }
    };
    if result.message_id.is_empty() {
        return Err(ReceiptError::Malformed("empty messageId".into()));
    }
    Ok(Receipt {
        message_id: result.message_id.clone(),
        status,
        error_code: result
            .error
            .as_ref()
            .filter(|error| error.id != 0)
            .map(|error| error.id.to_string()),
        price: result
            .price
            .as_ref()
            .and_then(|price| price.price_per_message),
        segments: result.sms_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_rounded_up_to_minutes() {
        assert_eq!(validity_minutes(1), 1);
        assert_eq!(validity_minutes(60), 1);
        assert_eq!(validity_minutes(61), 2);
        assert_eq!(validity_minutes(600), 10);
        assert_eq!(validity_minutes(1_000_000), 2880);
    }
}
