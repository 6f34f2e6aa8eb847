//! MessageBird (Bird) legacy SMS REST API: `POST /messages` with `Authorization: AccessKey`,
//! and status reports (GET) verified with the `MessageBird-Signature-JWT` header (an HS256 /
//! HS384 / HS512 JWT keyed with the account's signing key, binding the URL and body).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use otpd_core::DeliveryStatus;
use otpd_core::Secret;
use otpd_delivery::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
use serde::Deserialize;

use crate::http::{classify_status, digits_only, excerpt, exchange, join, sms_only};
use crate::signing::{ct_eq, hmac_sha256, hmac_sha384, hmac_sha512, now_unix, sha256_hex};

/// MessageBird's API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://rest.messagebird.com";

/// Clock skew tolerated on the JWT's `nbf` / `exp` (the SDK's leeway).
const LEEWAY_SECONDS: i64 = 1;

/// One MessageBird account, as configured by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBirdConfig {
    /// API host; defaults to `https://rest.messagebird.com` (tests point it at a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// A live (or test) access key: sent as `Authorization: AccessKey …`.
    pub access_key: Secret,
    /// Default originator (number digits or alphanumeric ≤ 11 chars) when the message names
    /// none.
    #[serde(default)]
    pub originator: Option<String>,
    /// The account's signing key (dashboard → Developers → API settings), which signs status
    /// reports. Without it every receipt is refused.
    #[serde(default)]
    pub signing_key: Option<Secret>,
}

/// Sends through MessageBird and verifies its status reports.
pub struct MessageBirdProvider {
    name: String,
    config: MessageBirdConfig,
    base_url: String,
    http: reqwest::Client,
}

impl MessageBirdProvider {
    /// An adapter for one configured MessageBird account, sharing the server's HTTP client.
    pub fn new(name: String, config: MessageBirdConfig, http: reqwest::Client) -> Self {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        MessageBirdProvider {
            name,
            config,
            base_url,
            http,
        }
    }

    async fn send_sms(&self, message: &Message) -> Result<Accepted, SendError> {
        sms_only("messagebird", message)?;
        let originator = Some(message.from.clone())
            .filter(|from| !from.is_empty())
            .or_else(|| self.config.originator.clone())
            .ok_or_else(|| SendError::provider("config", "no originator configured"))?;
        let mut body = serde_json::json!({
            "originator": originator,
            "recipients": [digits_only(&message.to)],
            "body": message.text,
            "datacoding": "auto",
            "type": "sms",
        });
        if !message.reference.is_empty() {
            body["reference"] = message.reference.clone().into();
        }
        if let Some(url) = &message.receipt_url {
            body["reportUrl"] = url.clone().into();
        }
        if message.validity_seconds > 0 {
            body["validity"] = message.validity_seconds.into();
        }
        let request = self
            .http
            .post(join(&self.base_url, "/messages"))
            .header(
                "authorization",
                format!("AccessKey {}", self.config.access_key.expose()),
            )
            .header("content-type", "application/json; charset=UTF-8")
            .header("accept", "application/json")
            .body(body.to_string());
        let (status, body) = exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &body));
        }
        let created: Created = serde_json::from_slice(&body).map_err(|e| {
            SendError::transient(
                "bad_response",
                format!("unreadable MessageBird answer: {e}"),
            )
        })?;
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            id = %created.id,
            "messagebird accepted"
        );
        let item = created.recipients.and_then(|r| r.items.into_iter().next());
        Ok(Accepted {
            message_id: created.id,
            status: DeliveryStatus::Sent,
            segments: item.and_then(|item| item.message_part_count),
            price: None,
            price_unit: None,
        })
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    recipients: Option<Recipients>,
}

#[derive(Deserialize)]
struct Recipients {
    #[serde(default)]
    items: Vec<RecipientItem>,
}

#[derive(Deserialize)]
struct RecipientItem {
    #[serde(rename = "messagePartCount", default)]
    message_part_count: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: i64,
    #[serde(default)]
    description: String,
}

/// Classifies an error answer: throttling and outages by HTTP status first, then the first
/// error code.
fn error_from_response(status: u16, body: &[u8]) -> SendError {
    let first = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|body| body.errors.into_iter().next());
    let Some(error) = first else {
        return classify_status(status, status.to_string(), excerpt(body));
    };
    let code = error.code.to_string();
    if matches!(status, 408 | 429 | 500..=599) {
        return SendError::transient(code, error.description);
    }
    match error.code {
        // Request not allowed (access key), not enough balance.
        2 | 25 => SendError::provider(code, error.description),
        // Missing / invalid parameters (no correct recipients), bad request, not found.
        9 | 10 | 20 | 21 => SendError::rejected(code, error.description),
        // Internal error.
        99 => SendError::transient(code, error.description),
        _ => classify_status(status, code, error.description),
    }
}

impl Provider for MessageBirdProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "messagebird"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_sms(message).await })
    }

    fn has_receipts(&self) -> bool {
        // Without it receipts are refused, so none can ever arrive.
        self.config.signing_key.is_some()
    }

    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let key = self
            .config
            .signing_key
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| ReceiptError::Forged("no signing_key configured".into()))?;
        let token = webhook
            .header("messagebird-signature-jwt")
            .ok_or_else(|| ReceiptError::Forged("no MessageBird-Signature-JWT".into()))?;
        verify_jwt(
            token,
            key.as_bytes(),
            &webhook.url,
            &webhook.body,
            now_unix(),
        )
        .map_err(ReceiptError::Forged)?;
        parse_report(&webhook.query_pairs()).map(|receipt| ReceiptReply::Receipts(vec![receipt]))
    }
}

/// Reads a status report's query parameters.
fn parse_report(fields: &[(String, String)]) -> Result<Receipt, ReceiptError> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let id = get("id").ok_or_else(|| ReceiptError::Malformed("no id".into()))?;
    let status = match get("status").ok_or_else(|| ReceiptError::Malformed("no status".into()))? {
        "scheduled" | "buffered" | "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "expired" | "delivery_failed" => DeliveryStatus::Undelivered,
        other => {
            return Err(ReceiptError::Malformed(format!("unknown status {other:?}")));
        }
    };
    Ok(Receipt {
        message_id: id.to_string(),
        status,
        error_code: get("statusErrorCode")
            .filter(|code| *code != "0")
            .map(str::to_string),
        price: get("price[amount]").and_then(|price| price.parse().ok()),
        segments: get("messagePartCount").and_then(|parts| parts.parse().ok()),
    })
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    url_hash: Option<String>,
    #[serde(default)]
    payload_hash: Option<String>,
}

/// Verifies a `MessageBird-Signature-JWT` for a request to `url` with `body` at `now_unix`:
/// HMAC (HS256/384/512 only; `none` and anything else refused) in constant time, `iss` is
/// `MessageBird`, `nbf`/`exp` hold with one second of leeway, `url_hash` is the SHA-256 of
/// the exact URL, and `payload_hash` is present exactly when there is a body and matches it.
pub fn verify_jwt(
    token: &str,
    key: &[u8],
    url: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), String> {
    let mut parts = token.trim().split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT".into());
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| "bad base64 in JWT".to_string())
    };
    let header: JwtHeader = serde_json::from_slice(&decode(header_b64)?)
        .map_err(|_| "unreadable JWT header".to_string())?;
    let signing_input = format!("{header_b64}.{claims_b64}");
    let expected = match header.alg.as_str() {
        "HS256" => hmac_sha256(key, signing_input.as_bytes()),
        "HS384" => hmac_sha384(key, signing_input.as_bytes()),
        "HS512" => hmac_sha512(key, signing_input.as_bytes()),
        other => return Err(format!("JWT algorithm {other:?} not accepted")),
    };
    if !ct_eq(&expected, &decode(signature_b64)?) {
        return Err("JWT signature mismatch".into());
    }
    let claims: JwtClaims = serde_json::from_slice(&decode(claims_b64)?)
        .map_err(|_| "unreadable JWT claims".to_string())?;
    if claims.iss.as_deref() != Some("MessageBird") {
        return Err("JWT issuer is not MessageBird".into());
    }
    let exp = claims.exp.ok_or("JWT has no exp")?;
    if now_unix > exp + LEEWAY_SECONDS {
        return Err("JWT expired".into());
    }
    if let Some(nbf) = claims.nbf
        && now_unix + LEEWAY_SECONDS < nbf
    {
        return Err("JWT not yet valid".into());
    }
    let url_hash = claims.url_hash.ok_or("JWT has no url_hash")?;
    if !ct_eq(
        url_hash.to_ascii_lowercase().as_bytes(),
        sha256_hex(url.as_bytes()).as_bytes(),
    ) {
        return Err("JWT url_hash does not match the URL".into());
    }
    match (claims.payload_hash, body.is_empty()) {
        (None, true) => Ok(()),
        (Some(hash), false) => {
            if ct_eq(
                hash.to_ascii_lowercase().as_bytes(),
                sha256_hex(body).as_bytes(),
            ) {
                Ok(())
            } else {
                Err("JWT payload_hash does not match the body".into())
            }
        }
        (Some(_), true) => Err("JWT signs a body but none was received".into()),
        (None, false) => Err("a body was received but the JWT signs none".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb";
    const URL: &str = "https://example.com/path?bar=1&foo=2";
    /// 2021-07-05T12:00:00+02:00.
    const NOW: i64 = 1_625_479_200;
    const GET_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJjOTQ2YWY3Ny1lMTgyLTRlYWEtYjJmZi0xYTU0NWI1ZTk5MWEiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAifQ.huo2ou6JDoDc7sV25d75UMWeYhBeavQlLsqIibSZuac";
    const POST_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I";

    #[test]
    fn t9_get_vector_verifies() {
        assert_eq!(verify_jwt(GET_TOKEN, KEY, URL, b"", NOW), Ok(()));
        assert_eq!(verify_jwt(GET_TOKEN, KEY, URL, b"", NOW + 60), Ok(()));
    }

    #[test]
    fn t9_post_vector_verifies() {
        assert_eq!(
            verify_jwt(POST_TOKEN, KEY, URL, b"Hello, World!", NOW),
            Ok(())
        );
    }

    #[test]
    fn t9_negative_cases() {
        // Not yet valid, expired (beyond the leeway).
        assert!(verify_jwt(GET_TOKEN, KEY, URL, b"", NOW - 2).is_err());
        assert!(verify_jwt(GET_TOKEN, KEY, URL, b"", NOW + 62).is_err());
        // Parameters reordered.
        assert!(
            verify_jwt(
                GET_TOKEN,
                KEY,
                "https://example.com/path?foo=2&bar=1",
                b"",
                NOW
            )
            .is_err()
        );
        // Payload changed, added, removed.
        assert!(verify_jwt(POST_TOKEN, KEY, URL, b"Hello, World?", NOW).is_err());
        assert!(verify_jwt(GET_TOKEN, KEY, URL, b"Hello", NOW).is_err());
        assert!(verify_jwt(POST_TOKEN, KEY, URL, b"", NOW).is_err());
        // Another secret.
        assert!(verify_jwt(GET_TOKEN, b"other-secret", URL, b"", NOW).is_err());
        // alg none with the same claims and no signature.
        let claims = GET_TOKEN.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(verify_jwt(&format!("{none_header}.{claims}."), KEY, URL, b"", NOW).is_err());
        // Garbage.
        assert!(verify_jwt("abc", KEY, URL, b"", NOW).is_err());
    }

    #[test]
    fn errors_map_to_classes() {
        let body = |code: i64| {
            format!(r#"{{"errors":[{{"code":{code},"description":"d","parameter":null}}]}}"#)
        };
        assert!(matches!(
            error_from_response(401, body(2).as_bytes()),
            SendError::Provider { .. }
        ));
        assert!(matches!(
            error_from_response(422, body(9).as_bytes()),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            error_from_response(422, body(10).as_bytes()),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            error_from_response(400, body(21).as_bytes()),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            error_from_response(402, body(25).as_bytes()),
            SendError::Provider { .. }
        ));
        assert!(matches!(
            error_from_response(500, body(99).as_bytes()),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            error_from_response(503, b""),
            SendError::Transient { .. }
        ));
    }
}
