//! Credentials held as text (provider tokens, API keys, passwords, the configured server
//! secret): a [`Secret`] prints as `***` in `Debug` and `Display`, so neither a `{:?}` of a
//! configuration nor a log line can carry one by mistake; only [`Secret::expose`] reads it.

use serde::{Deserialize, Serialize};

/// A credential whose `Debug` and `Display` print `***`. Serde reads and writes it as the plain
/// string (configuration files and environment variables hold it that way).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The credential itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret(text.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `url` with the password of its user part (`scheme://user:password@host`) and any
/// `password=` query parameter replaced by `***`; other text is kept as it is. For logging a
/// database URL.
pub fn redact_url_password(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut redacted = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => head.to_string(),
                },
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_secret() {
        let secret = Secret::new("tok-secret-123");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "tok-secret-123");
        assert_eq!(
            format!("{:?}", Some(Secret::from("x"))),
            "Some(***)",
            "inside other types too"
        );
    }

    #[test]
    fn deserialises_from_a_plain_string() {
        let secret: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(secret.expose(), "abc");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"abc\"");
    }

    #[test]
    fn url_passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_url_password("postgres://otpd:pw-in-url@db.internal:5432/otpd"),
            "postgres://otpd:***@db.internal:5432/otpd"
        );
        assert_eq!(
            redact_url_password("postgres://otpd@db/otpd?sslmode=require&password=pw"),
            "postgres://otpd@db/otpd?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url_password("postgresql://u:p@w@host/db"),
            "postgresql://u:***@host/db",
            "the last @ ends the user part"
        );
        assert_eq!(redact_url_password("sqlite://otpd.db"), "sqlite://otpd.db");
        assert_eq!(redact_url_password("data/otpd.db"), "data/otpd.db");
    }
}
