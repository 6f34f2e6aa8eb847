//! A generic HTTP SMS gateway: for the many local aggregators with a simple "call this URL
//! with these fields" API. The operator describes the request (method, URL, headers, form or
//! JSON fields built from templates); any 2xx is success. No receipts.

use otpd_core::Secret;
use std::collections::BTreeMap;

use otpd_core::DeliveryStatus;
use otpd_delivery::{Accepted, BoxFuture, Message, Provider, SendError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::http::{classify_status, digits_only, excerpt, exchange, form_body};

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 7] = [
    "to",
    "to_digits",
    "from",
    "text",
    "code",
    "reference",
    "receipt_url",
];

/// HTTP method of the gateway call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Method {
    /// Fields in the body.
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    /// Fields in the query string.
    #[serde(rename = "GET", alias = "get")]
    Get,
}

/// How a POST body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// `application/x-www-form-urlencoded`.
    #[default]
    Form,
    /// `application/json`: an object of string fields.
    Json,
}

/// A gateway as the operator describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// The full endpoint URL (it may carry fixed query parameters).
    pub url: String,
    /// `POST` (default) or `GET` (fields go in the query string).
    #[serde(default)]
    pub method: Method,
    /// Fixed headers (for example an `Authorization` header with the gateway's key).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Encoding of a POST body: `form` (default) or `json`.
    #[serde(default)]
    pub content_type: ContentType,
    /// Field name → template; `{{to}}`, `{{to_digits}}`, `{{from}}`, `{{text}}`, `{{code}}`,
    /// `{{reference}}`, `{{receipt_url}}` are replaced by the message's values (then encoded
    /// for the body format, so values need no escaping).
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    /// A JSON pointer (`/data/id`) to the message id in a JSON answer; without it (or when
    /// the answer has none) the message's reference is the id.
    #[serde(default)]
    pub message_id_pointer: Option<String>,
    /// Default sender for `{{from}}` when the message names none.
    #[serde(default)]
    pub from: Option<String>,
}

/// Why a generic gateway configuration is unusable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GenericConfigError {
    /// The URL does not parse.
    #[error("generic provider url {0:?} is not a valid URL")]
    Url(String),
    /// A header name or value is not valid HTTP.
    #[error("generic provider header {0:?} is not a valid HTTP header")]
    Header(String),
    /// A template names a placeholder that does not exist.
    #[error("generic provider field {field:?} uses unknown placeholder {{{{{name}}}}}")]
    Placeholder {
        /// The body field.
        field: String,
        /// The unknown name.
        name: String,
    },
    /// The message id pointer is not a JSON pointer.
    #[error("generic provider message_id_pointer {0:?} must start with '/'")]
    Pointer(String),
}

/// Sends through an operator-described HTTP gateway.
pub struct GenericProvider {
    name: String,
    config: GenericConfig,
    headers: HeaderMap,
    http: reqwest::Client,
}

impl GenericProvider {
    /// An adapter for one described gateway; refuses a description that could never work
    /// (bad URL or header, unknown placeholder, pointer without a leading `/`).
    pub fn new(
        name: String,
        config: GenericConfig,
        http: reqwest::Client,
    ) -> Result<Self, GenericConfigError> {
        url::Url::parse(&config.url).map_err(|_| GenericConfigError::Url(config.url.clone()))?;
        let mut headers = HeaderMap::new();
        for (key, value) in &config.headers {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| GenericConfigError::Header(key.clone()))?;
            let value = HeaderValue::from_str(value.expose())
                .map_err(|_| GenericConfigError::Header(key.clone()))?;
            headers.insert(name, value);
        }
        for (field, template) in &config.body {
            for name in placeholders(template) {
                if !PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(GenericConfigError::Placeholder {
                        field: field.clone(),
                        name,
                    });
                }
            }
        }
        if let Some(pointer) = &config.message_id_pointer
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            return Err(GenericConfigError::Pointer(pointer.clone()));
        }
        Ok(GenericProvider {
            name,
            config,
            headers,
            http,
        })
    }

    fn fields(&self, message: &Message) -> Vec<(String, String)> {
        let from = Some(message.from.clone())
            .filter(|from| !from.is_empty())
            .or_else(|| self.config.from.clone())
            .unwrap_or_default();
        let receipt_url = message.receipt_url.clone().unwrap_or_default();
        let values: [(&str, &str); 7] = [
            ("to", &message.to),
            ("to_digits", digits_only(&message.to)),
            ("from", &from),
            ("text", &message.text),
            ("code", &message.code),
            ("reference", &message.reference),
            ("receipt_url", &receipt_url),
        ];
        self.config
            .body
            .iter()
            .map(|(field, template)| (field.clone(), render(template, &values)))
            .collect()
    }

    async fn send_message(&self, message: &Message) -> Result<Accepted, SendError> {
        let fields = self.fields(message);
        let request = match self.config.method {
            Method::Get => {
                let mut url = url::Url::parse(&self.config.url)
                    .map_err(|_| SendError::provider("config", "invalid url"))?;
                if !fields.is_empty() {
                    let mut query = url.query_pairs_mut();
                    for (key, value) in &fields {
                        query.append_pair(key, value);
                    }
                }
                self.http.get(url)
            }
            Method::Post => {
                let (content_type, body) = match self.config.content_type {
                    ContentType::Form => ("application/x-www-form-urlencoded", form_body(&fields)),
                    ContentType::Json => {
                        let object: serde_json::Map<String, serde_json::Value> = fields
                            .into_iter()
                            .map(|(key, value)| (key, serde_json::Value::String(value)))
                            .collect();
                        (
                            "application/json",
                            serde_json::Value::Object(object).to_string(),
                        )
                    }
                };
                self.http
                    .post(&self.config.url)
                    .header("content-type", content_type)
                    .body(body)
            }
        };
        let (status, body) = exchange(request.headers(self.headers.clone())).await?;
        if !(200..300).contains(&status) {
            // Some gateways echo the request: keep the code out of the error text.
            let mut text = excerpt(&body);
            if !message.code.is_empty() {
                text = text.replace(&message.code, "***");
            }
            return Err(classify_status(status, status.to_string(), text));
        }
        let message_id = self
            .config
            .message_id_pointer
            .as_deref()
            .and_then(|pointer| {
                let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
                    serde_json::Value::Number(id) => Some(id.to_string()),
                    _ => None,
                }
            })
            .unwrap_or_else(|| message.reference.clone());
        tracing::debug!(
            provider = %self.name,
            to = %otpd_core::phone::mask_phone(&message.to),
            message_id = %message_id,
            "generic gateway accepted"
        );
        Ok(Accepted {
            message_id,
            status: DeliveryStatus::Sent,
            segments: None,
            price: None,
            price_unit: None,
        })
    }
}

impl Provider for GenericProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "generic"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.send_message(message).await })
    }
}

/// The placeholder names a template uses.
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                names.push(after[..end].trim().to_string());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    names
}

/// Replaces each `{{name}}` by its value in one pass (substituted values are never
/// re-scanned, so a text containing `{{code}}` stays as it is); unknown names become empty.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = after[..end].trim();
        if let Some((_, value)) = values.iter().find(|(key, _)| *key == name) {
            out.push_str(value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_one_pass() {
        let values = [("text", "code {{code}}"), ("code", "123")];
        assert_eq!(
            render("T: {{text}} / {{ code }}", &values),
            "T: code {{code}} / 123"
        );
        assert_eq!(render("no {{ end", &values), "no {{ end");
        assert_eq!(placeholders("{{a}}x{{ b }}"), vec!["a", "b"]);
    }
}
