//! Form-encoded PascalCase parameters (`+` is a space; a literal plus arrives as `%2B`), with
//! Twilio's error for each kind of mistake.

use super::error::{self, TwilioError};

/// Checks a webhook URL a tenant gives: absolute http(s), and a target the server's outbound
/// rules allow (docs/security.md, "Outbound requests").
pub(crate) async fn webhook_url(
    outbound: &otpd_delivery::Outbound,
    text: &str,
    name: &str,
) -> Result<String, TwilioError> {
    use otpd_core::outbound::Refusal;
    outbound.check_target(text).await.map_err(|refusal| {
        let reason = match refusal {
            Refusal::NotHttpUrl => "an absolute http(s) URL",
            Refusal::HttpsRequired => "an https URL (this server refuses http targets)",
            Refusal::PrivateAddress => {
                "a URL whose host is a public address (private, loopback, link-local and other special addresses are refused)"
            }
        };
        error::invalid_because(name, reason)
    })
}

/// The parameters of one request, in order (repeated keys kept).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body or query string.
    pub fn parse(body: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, if present (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a repeated `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required value.
    pub fn required(&self, name: &str) -> Result<&str, TwilioError> {
        self.get(name).ok_or_else(|| error::missing(name))
    }

    /// `true` / `false`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, TwilioError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(error::invalid(name)),
        }
    }

    /// An integer within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, TwilioError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(error::invalid_because(
                    name,
                    &format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    /// A string of at most `max` characters.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, TwilioError> {
        match self.get(name) {
            Some(v) if v.chars().count() > max => Err(error::invalid_because(
                name,
                &format!("at most {max} characters"),
            )),
            other => Ok(other.map(str::to_string)),
        }
    }

    /// A SID with the given two-letter prefix (`VA…`, `HJ…`).
    pub fn sid(&self, name: &str, prefix: &str) -> Result<Option<String>, TwilioError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if is_sid(v, prefix) => Ok(Some(v.to_string())),
            Some(_) => Err(error::invalid(name)),
        }
    }

    /// A JSON object given as a string (`RateLimits`, `Tags`, …).
    pub fn json_object(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, TwilioError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match serde_json::from_str(v) {
                Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
                _ => Err(error::invalid_because(name, "must be a JSON object")),
            },
        }
    }
}

/// Whether `text` is `prefix` followed by 32 hex digits.
pub fn is_sid(text: &str, prefix: &str) -> bool {
    text.len() == 34 && text.starts_with(prefix) && text[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// The UUID inside a SID with `prefix`.
pub fn sid_uuid(text: &str, prefix: &str) -> Option<uuid::Uuid> {
    is_sid(text, prefix)
        .then(|| uuid::Uuid::try_parse(&text[2..]).ok())
        .flatten()
}
