//! Builds a provider from its configuration table: `name`, `kind`, and the kind's keys.

use std::sync::Arc;

use otpd_delivery::Provider;
use serde_json::{Map, Value};

use crate::generic::GenericProvider;
use crate::infobip::InfobipProvider;
use crate::messagebird::MessageBirdProvider;
use crate::plivo::PlivoProvider;
use crate::sendgrid::SendgridProvider;
use crate::smtp::SmtpProvider;
use crate::sns::SnsProvider;
use crate::twilio::TwilioProvider;
use crate::vonage::VonageProvider;
use crate::whatsapp_cloud::WhatsappCloudProvider;

/// Why a `[[providers]]` entry was refused at start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderConfigError {
    /// `name` or `kind` is missing.
    #[error("a [[providers]] entry needs a string `{0}`")]
    Missing(&'static str),
    /// Names are used in receipt URLs and routes.
    #[error("provider name {0:?} must be 1–40 letters, digits, '-' or '_'")]
    BadName(String),
    /// No adapter of that kind.
    #[error("provider {name:?}: unknown kind {kind:?} (known: {known})")]
    UnknownKind {
        /// The entry's name.
        name: String,
        /// The unknown kind.
        kind: String,
        /// The kinds otpd has.
        known: String,
    },
    /// The kind's keys did not parse.
    #[error("provider {name:?} ({kind}): {error}")]
    Invalid {
        /// The entry's name.
        name: String,
        /// Its kind.
        kind: String,
        /// What was wrong.
        error: String,
    },
}

/// The adapter kinds otpd has.
pub const KINDS: &[&str] = &[
    "twilio",
    "vonage",
    "messagebird",
    "plivo",
    "infobip",
    "generic",
    "sns",
    "whatsapp_cloud",
    "sendgrid",
    "smtp",
];

fn invalid(name: &str, kind: &str, error: impl std::fmt::Display) -> ProviderConfigError {
    ProviderConfigError::Invalid {
        name: name.to_string(),
        kind: kind.to_string(),
        error: error.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    name: &str,
    kind: &str,
    rest: Map<String, Value>,
) -> Result<T, ProviderConfigError> {
    serde_json::from_value(Value::Object(rest)).map_err(|error| invalid(name, kind, error))
}

/// Builds one provider from its table.
pub fn build(
    table: &Map<String, Value>,
    http: reqwest::Client,
) -> Result<Arc<dyn Provider>, ProviderConfigError> {
    let text = |key: &'static str| {
        table
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(ProviderConfigError::Missing(key))
    };
    let name = text("name")?;
    let kind = text("kind")?;
    let valid_name = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(ProviderConfigError::BadName(name));
    }
    let mut rest = table.clone();
    rest.remove("name");
    rest.remove("kind");
    let provider: Arc<dyn Provider> = match kind.as_str() {
        "twilio" => Arc::new(TwilioProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "vonage" => Arc::new(VonageProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "messagebird" => Arc::new(MessageBirdProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "plivo" => Arc::new(PlivoProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "infobip" => Arc::new(InfobipProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "generic" => Arc::new(
            GenericProvider::new(name.clone(), parse(&name, &kind, rest)?, http)
                .map_err(|error| invalid(&name, &kind, error))?,
        ),
        "sns" => Arc::new(SnsProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "whatsapp_cloud" => Arc::new(WhatsappCloudProvider::new(
            name.clone(),
            parse(&name, &kind, rest)?,
            http,
        )),
        "sendgrid" => Arc::new(
            SendgridProvider::new(name.clone(), parse(&name, &kind, rest)?, http)
                .map_err(|error| invalid(&name, &kind, error))?,
        ),
        "smtp" => Arc::new(
            SmtpProvider::new(name.clone(), parse(&name, &kind, rest)?)
                .map_err(|error| invalid(&name, &kind, error))?,
        ),
        _ => {
            return Err(ProviderConfigError::UnknownKind {
                name,
                kind,
                known: KINDS.join(", "),
            });
        }
    };
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn builds_a_provider_under_its_name() {
        let provider = build(
            &table(serde_json::json!({
                "name": "twilio-us", "kind": "twilio",
                "account_sid": "AC00000000000000000000000000000000", "auth_token": "t",
                "from": "+15005550006"
            })),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(provider.name(), "twilio-us");
        assert_eq!(provider.kind(), "twilio");
    }

    #[test]
    fn names_kinds_and_keys_are_checked() {
        let http = reqwest::Client::new();
        let err = build(&table(serde_json::json!({"kind": "twilio"})), http.clone());
        assert!(matches!(err, Err(ProviderConfigError::Missing("name"))));
        let err = build(
            &table(serde_json::json!({"name": "a b", "kind": "twilio"})),
            http.clone(),
        );
        assert!(matches!(err, Err(ProviderConfigError::BadName(_))));
        let err = build(
            &table(serde_json::json!({"name": "x", "kind": "pigeon"})),
            http.clone(),
        );
        assert!(matches!(err, Err(ProviderConfigError::UnknownKind { .. })));
        let err = build(
            &table(serde_json::json!({"name": "x", "kind": "vonage", "api_kye": "typo"})),
            http,
        );
        let Err(ProviderConfigError::Invalid { error, .. }) = err else {
            panic!("a typo must be refused");
        };
        assert!(error.contains("api_kye"), "{error}");
    }
}
