//! Configuration values that hold secrets: printed without them.

use serde::{Deserialize, Serialize};

/// A database URL as configured. `Debug` and `Display` show it with the password replaced by
/// `***` (a PostgreSQL URL can hold one), so the start-up log line and `{:?}` of the
/// configuration never print it; [`DatabaseUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, password included, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> DatabaseUrl {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> DatabaseUrl {
        DatabaseUrl(url.to_string())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&otpd_core::secret::redact_url_password(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", otpd_core::secret::redact_url_password(&self.0))
    }
}

/// One `[[providers]]` table, kept as written until the provider registry parses it by kind.
/// Which keys are credentials depends on the kind, so `Debug` shows `name`, `kind` and the
/// other keys' names, never their values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderTable(pub serde_json::Map<String, serde_json::Value>);

impl std::ops::Deref for ProviderTable {
    type Target = serde_json::Map<String, serde_json::Value>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for ProviderTable {
    fn from(table: serde_json::Map<String, serde_json::Value>) -> ProviderTable {
        ProviderTable(table)
    }
}

impl std::fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut table = f.debug_struct("ProviderTable");
        for key in ["name", "kind"] {
            if let Some(value) = self.0.get(key) {
                table.field(key, value);
            }
        }
        for key in self
            .0
            .keys()
            .filter(|k| !matches!(k.as_str(), "name" | "kind"))
        {
            table.field(key, &format_args!("***"));
        }
        table.finish()
    }
}
