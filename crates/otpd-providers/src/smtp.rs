//! SMTP submission (RFC 6409) with `lettre`: STARTTLS on 587, implicit TLS on 465, or plain
//! text for a local relay; the message is plain text or `multipart/alternative` with HTML.
//!
//! lettre itself would send `AUTH PLAIN`/`LOGIN` over an unencrypted connection when told to
//! use no TLS and given credentials (lettre 0.11 has no such check), so this adapter refuses
//! that configuration unless the server is on the loopback interface (a local relay or a test
//! server).

use otpd_core::Secret;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use otpd_core::DeliveryStatus;
use otpd_delivery::{Accepted, BoxFuture, Message, Provider, SendError};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with `STARTTLS` (required; port 587 by default).
    Starttls,
    /// TLS from the first byte (port 465 by default; RFC 8314's preference).
    Implicit,
    /// No encryption at all (port 25 by default): only for a relay on this machine or tests.
    None,
}

/// One SMTP submission account, as written in otpd's configuration.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The submission server's host name (also the name its certificate must carry).
    pub host: String,
    /// The server port; defaults to 587 (starttls), 465 (implicit) or 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    /// Connection protection: `starttls` (default), `implicit` or `none`.
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    /// SMTP AUTH user name; no AUTH when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password (or app password / token).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender address used when the message names none (also the envelope sender).
    pub from_email: String,
    /// Display name of the sender (`ACME`).
    #[serde(default)]
    pub from_name: Option<String>,
    /// An extra trusted CA certificate (PEM), for a relay with a private CA; the system's
    /// roots stay trusted. Certificates are always verified.
    #[serde(default)]
    pub ca_certificate_pem: Option<String>,
    /// The name this client gives in `EHLO`; defaults to `localhost`.
    #[serde(default)]
    pub hello_name: Option<String>,
    /// Seconds a whole submission (connect, greeting, AUTH, MAIL, RCPT, DATA) may take before
    /// it is abandoned as a transient failure; default 30. (lettre's own timeout only covers
    /// the TCP connect on tokio, so the adapter enforces this itself.)
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from_email", &self.from_email)
            .field("from_name", &self.from_name)
            .field("ca_certificate_pem", &self.ca_certificate_pem.is_some())
            .field("hello_name", &self.hello_name)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// Why an SMTP configuration cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SmtpConfigError {
    /// Credentials over an unencrypted connection to a remote server would leak them.
    #[error(
        "smtp: refusing to send credentials without TLS to {0} (tls = \"none\" is only for loopback servers)"
    )]
    PlaintextAuth(String),
    /// A username without a password or the reverse.
    #[error("smtp: username and password go together")]
    HalfCredentials,
    /// The sender address does not parse.
    #[error("smtp: invalid from address: {0}")]
    From(String),
    /// The TLS setup failed (bad host name for a certificate, no trust roots).
    #[error("smtp: TLS setup failed: {0}")]
    Tls(String),
}

/// Sends email through an SMTP submission server.
pub struct SmtpProvider {
    name: String,
    from: Mailbox,
    timeout: Duration,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpProvider {
    /// Builds the adapter and its transport (one connection per message; no HTTP client is
    /// involved).
    pub fn new(name: String, config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            )),
            (None, None) => None,
            _ => return Err(SmtpConfigError::HalfCredentials),
        };
        if config.tls == SmtpTls::None && credentials.is_some() && !is_loopback(&config.host) {
            return Err(SmtpConfigError::PlaintextAuth(config.host.clone()));
        }
        let from = mailbox(config.from_name.clone(), &config.from_email)
            .map_err(|_| SmtpConfigError::From(config.from_email.clone()))?;
        let tls_parameters = || {
            let tls_error =
                |error: lettre::transport::smtp::Error| SmtpConfigError::Tls(error.to_string());
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(pem) = &config.ca_certificate_pem {
                // lettre reads PEM without a certificate as an empty list: say so instead.
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(SmtpConfigError::Tls(
                        "ca_certificate_pem holds no PEM certificate".into(),
                    ));
                }
                builder = builder.add_root_certificate(
                    Certificate::from_pem(pem.as_bytes()).map_err(tls_error)?,
                );
            }
            builder.build().map_err(tls_error)
        };
        let (tls, default_port) = match config.tls {
            SmtpTls::Starttls => (Tls::Required(tls_parameters()?), 587),
            SmtpTls::Implicit => (Tls::Wrapper(tls_parameters()?), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let timeout = Duration::from_secs(config.timeout_seconds.unwrap_or(30).max(1));
        let hello = config
            .hello_name
            .clone()
            .unwrap_or_else(|| "localhost".into());
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
                .port(config.port.unwrap_or(default_port))
                .tls(tls)
                .hello_name(ClientId::Domain(hello))
                .timeout(Some(timeout));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        let transport: AsyncSmtpTransport<Tokio1Executor> = builder.build();
        Ok(SmtpProvider {
            name,
            from,
            timeout,
            transport,
        })
    }

    async fn submit(&self, message: &Message) -> Result<Accepted, SendError> {
        let from = if message.from.is_empty() {
            self.from.clone()
        } else {
            mailbox(self.from.name.clone(), &message.from)
                .map_err(|_| SendError::provider("invalid_from", "the sender address is invalid"))?
        };
        let to = mailbox(None, &message.to).map_err(|_| {
            SendError::rejected("invalid_address", "the recipient address is invalid")
        })?;
        let message_id = format!("<{}@{}>", id_part(&message.reference), from.email.domain());
        let builder = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .date_now()
            .message_id(Some(message_id.clone()));
        let email = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone()),
        }
        .map_err(|error| SendError::rejected("message", error.to_string()))?;
        let outcome = tokio::time::timeout(self.timeout, self.transport.send(email))
            .await
            .map_err(|_| {
                SendError::transient("timeout", "the SMTP server did not answer in time")
            })?;
        match outcome {
            Ok(_) => Ok(Accepted {
                message_id,
                status: DeliveryStatus::Sent,
                segments: None,
                price: None,
                price_unit: None,
            }),
            Err(error) => {
                let error = classify(&error);
                tracing::debug!(
                    provider = %self.name,
                    to = %otpd_core::phone::mask_phone(&message.to),
                    code = %error.code(),
                    "SMTP server refused a message"
                );
                Err(error)
            }
        }
    }
}

impl Provider for SmtpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move { self.submit(message).await })
    }
}

fn mailbox(name: Option<String>, address: &str) -> Result<Mailbox, lettre::address::AddressError> {
    Ok(Mailbox::new(name, address.parse()?))
}

/// `localhost`, `127.x.y.z` or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The reference reduced to what a Message-ID's left part may hold.
fn id_part(reference: &str) -> String {
    let cleaned: String = reference
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if cleaned.is_empty() {
        "otpd".into()
    } else {
        cleaned
    }
}

/// Maps lettre's errors to the worker's classes: 4xx replies are temporary; 530/534/535/538
/// are this account's authentication; other 5xx replies refuse this recipient or message;
/// no reply at all (refused, reset, timed out) is temporary; local protocol problems (no
/// common AUTH mechanism, no STARTTLS offered) and TLS failures (untrusted certificate) are
/// this provider's configuration.
pub(crate) fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = error.status() {
        let code = code.to_string();
        return match code.as_bytes().first() {
            Some(b'4') => SendError::transient(code, error.to_string()),
            _ if matches!(code.as_str(), "530" | "534" | "535" | "538") => {
                SendError::provider(code, error.to_string())
            }
            _ => SendError::rejected(code, error.to_string()),
        };
    }
    if error.is_timeout() {
        SendError::transient("timeout", error.to_string())
    } else if error.is_tls() || tls_failure(error) {
        SendError::provider("tls", error.to_string())
    } else if error.is_client() {
        SendError::provider("client", error.to_string())
    } else {
        SendError::transient("connect", error.to_string())
    }
}

/// Whether a rustls error (an untrusted or mismatched certificate, a failed handshake) is
/// behind this error: lettre reports those as connection errors.
fn tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: None,
            tls,
            username: Some("user".into()),
            password: Some("secret".into()),
            from_email: "no-reply@acme.example".into(),
            from_name: Some("ACME".into()),
            ca_certificate_pem: None,
            hello_name: None,
            timeout_seconds: None,
        }
    }

    #[test]
    fn plaintext_auth_is_only_for_loopback() {
        assert!(matches!(
            SmtpProvider::new("smtp".into(), config("smtp.example.com", SmtpTls::None)),
            Err(SmtpConfigError::PlaintextAuth(_))
        ));
        assert!(SmtpProvider::new("smtp".into(), config("127.0.0.1", SmtpTls::None)).is_ok());
        assert!(SmtpProvider::new("smtp".into(), config("localhost", SmtpTls::None)).is_ok());
        assert!(SmtpProvider::new("smtp".into(), config("[::1]", SmtpTls::None)).is_ok());
        assert!(
            SmtpProvider::new("smtp".into(), config("smtp.example.com", SmtpTls::Starttls)).is_ok()
        );
        assert!(
            SmtpProvider::new("smtp".into(), config("smtp.example.com", SmtpTls::Implicit)).is_ok()
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut half = config("127.0.0.1", SmtpTls::None);
        half.password = None;
        assert!(matches!(
            SmtpProvider::new("smtp".into(), half),
            Err(SmtpConfigError::HalfCredentials)
        ));
        let mut from = config("127.0.0.1", SmtpTls::None);
        from.from_email = "not an address".into();
        assert!(matches!(
            SmtpProvider::new("smtp".into(), from),
            Err(SmtpConfigError::From(_))
        ));
    }

    #[test]
    fn a_bad_ca_certificate_is_refused() {
        let mut bad = config("smtp.example.com", SmtpTls::Starttls);
        bad.ca_certificate_pem = Some("not a certificate".into());
        assert!(matches!(
            SmtpProvider::new("smtp".into(), bad),
            Err(SmtpConfigError::Tls(_))
        ));
    }

    #[test]
    fn tls_mode_reads_from_config_words() {
        #[derive(serde::Deserialize)]
        struct Holder {
            tls: SmtpTls,
        }
        let parse = |word: &str| {
            serde_json::from_str::<Holder>(&format!("{{\"tls\":\"{word}\"}}"))
                .map(|holder| holder.tls)
                .ok()
        };
        assert_eq!(parse("starttls"), Some(SmtpTls::Starttls));
        assert_eq!(parse("implicit"), Some(SmtpTls::Implicit));
        assert_eq!(parse("none"), Some(SmtpTls::None));
        assert_eq!(parse("ssl"), None);
    }

    #[test]
    fn message_ids_are_clean() {
        assert_eq!(id_part("att_01 <x>"), "att_01x");
        assert_eq!(id_part("<>"), "otpd");
    }
}
