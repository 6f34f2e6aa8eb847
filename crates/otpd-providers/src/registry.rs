//! Builds a provider from its configuration table: `name`, `kind`, and the kind's keys.

use std::sync::Arc;

use otpd_delivery::Provider;
use serde_json::{Map, Value};

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
pub const KINDS: &[&str] = &[];

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
    let _ = (&rest, &http);
    Err(ProviderConfigError::UnknownKind {
        name,
        kind,
        known: KINDS.join(", "),
    })
}
