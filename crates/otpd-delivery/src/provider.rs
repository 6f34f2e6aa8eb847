//! The provider port: what every delivery adapter (console, Twilio, Vonage, SNS, SMTP, …)
//! implements, and the plain values that cross it. Adapters know their provider's wire format
//! and nothing of otpd's storage or HTTP API; the delivery worker decides retries, failover
//! and fallback from the [`SendError`] class an adapter reports.

use std::future::Future;
use std::pin::Pin;

use otpd_core::{Channel, DeliveryStatus};

/// A boxed future, so providers of different kinds can sit in one routing table.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message to hand to a provider. Holds the code in clear: never log it (its `Debug`
/// hides the text, the code and the HTML).
#[derive(Clone, PartialEq)]
pub struct Message {
    /// Our id for this delivery attempt: the client reference / idempotency key a provider
    /// echoes back in receipts where it can.
    pub reference: String,
    /// The channel this message goes through.
    pub channel: Channel,
    /// The recipient: `+E.164` for phones (adapters strip the `+` where their API wants
    /// digits only), an address for email.
    pub to: String,
    /// The sender: a number, an alphanumeric sender id, or an email address.
    pub from: String,
    /// The complete text as the user reads it, code included (SMS, WhatsApp free-form, the
    /// text part of an email).
    pub text: String,
    /// The code alone: voice reads it digit by digit; WhatsApp templates take it as a
    /// parameter.
    pub code: String,
    /// Language of the message (`en`, `pt-BR`, …): voice picks its voice and language from it;
    /// WhatsApp templates pick their translation.
    pub locale: String,
    /// Subject of an email.
    pub subject: String,
    /// HTML body of an email, when the service has one.
    pub html: Option<String>,
    /// How long the code stays valid: providers that support it drop the message after this
    /// (a late code is useless).
    pub validity_seconds: u32,
    /// Where the provider should post delivery receipts for this message, when otpd has a
    /// public URL.
    pub receipt_url: Option<String>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("reference", &self.reference)
            .field("channel", &self.channel)
            .field("to", &otpd_core::phone::mask_phone(&self.to))
            .field("from", &self.from)
            .field("text", &"***")
            .field("code", &"***")
            .finish_non_exhaustive()
    }
}

/// What a provider answered when it took a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The provider's id for the message (what its receipts name).
    pub message_id: String,
    /// Where the message stands as the provider said (usually `Sent`: accepted and in
    /// flight; `Delivered` for providers that deliver synchronously, like SMTP).
    pub status: DeliveryStatus,
    /// SMS parts the provider will bill, when it says.
    pub segments: Option<u32>,
    /// What the provider will charge, when it says (positive, in `price_unit`).
    pub price: Option<f64>,
    /// Currency of `price` (`USD`, `EUR`).
    pub price_unit: Option<String>,
}

impl Accepted {
    /// An acceptance with only an id: the common case.
    pub fn sent(message_id: impl Into<String>) -> Self {
        Accepted {
            message_id: message_id.into(),
            status: DeliveryStatus::Sent,
            segments: None,
            price: None,
            price_unit: None,
        }
    }
}

/// Why a provider did not take a message. The class decides what the worker does next.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying later, here or elsewhere: timeouts, connection errors, 429, 5xx,
    /// throttling codes. Counts against the provider's circuit breaker.
    #[error("temporary failure ({}): {}", redact_code(code), redact(message))]
    Transient {
        /// The provider's error code or HTTP status.
        code: String,
        /// The provider's words.
        message: String,
    },
    /// This provider will not take it but another might: bad credentials, unauthorised
    /// sender, no balance, geo permission off. Skip to the next provider; counts against the
    /// circuit breaker.
    #[error("provider refused ({}): {}", redact_code(code), redact(message))]
    Provider {
        /// The provider's error code or HTTP status.
        code: String,
        /// The provider's words.
        message: String,
    },
    /// The recipient cannot be reached this way (invalid number, opted out, barred): no
    /// provider will do better on this channel, so stop (a fallback channel may still
    /// work).
    #[error("recipient rejected ({}): {}", redact_code(code), redact(message))]
    Rejected {
        /// The provider's error code or HTTP status.
        code: String,
        /// The provider's words.
        message: String,
    },
}

impl SendError {
    /// A [`SendError::Transient`].
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError::Transient {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A [`SendError::Provider`].
    pub fn provider(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError::Provider {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A [`SendError::Rejected`].
    pub fn rejected(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError::Rejected {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The provider's error code.
    pub fn code(&self) -> &str {
        match self {
            SendError::Transient { code, .. }
            | SendError::Provider { code, .. }
            | SendError::Rejected { code, .. } => code,
        }
    }
}

/// An incoming HTTP request from a provider (a delivery receipt), exactly as received:
/// authenticity checks sign the raw body and the public URL.
#[derive(Debug, Clone, Default)]
pub struct InboundRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The full public URL the provider called, scheme, host, port, path and query
    /// (reconstructed from `public_base_url`).
    pub url: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl InboundRequest {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The query string's pairs, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        match self.url.split_once('?') {
            Some((_, query)) => form_pairs(query.as_bytes()),
            None => Vec::new(),
        }
    }

    /// The body's pairs, decoded, for form-encoded bodies.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_pairs(&self.body)
    }
}

/// Decodes `application/x-www-form-urlencoded` text into pairs, in order.
pub fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// One delivery status a provider reported for one of its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The provider's message id (as in [`Accepted::message_id`]).
    pub message_id: String,
    /// The status in otpd's terms.
    pub status: DeliveryStatus,
    /// The provider's error code, for undelivered/failed.
    pub error_code: Option<String>,
    /// Final price, when reported.
    pub price: Option<f64>,
    /// SMS parts, when reported.
    pub segments: Option<u32>,
}

/// Why a receipt was refused. Nothing is changed when a receipt is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// The signature is missing or wrong (answered 403).
    #[error("receipt not authentic: {0}")]
    Forged(String),
    /// The body or parameters are not what the provider sends (answered 400).
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// This provider has no receipts (answered 404).
    #[error("this provider does not send receipts")]
    NotSupported,
}

/// What a receipt endpoint answers besides receipts: Meta's subscription handshake echoes a
/// challenge.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptReply {
    /// Statuses to record (possibly none: an event otpd does not track).
    Receipts(Vec<Receipt>),
    /// Answer 200 with this plain-text body and record nothing.
    Challenge(String),
}

/// A way to hand a message to the outside world: one configured provider account.
pub trait Provider: Send + Sync + 'static {
    /// The configured instance name (unique; `twilio-us`, `console`): stored with each attempt
    /// and used in its receipt URL.
    fn name(&self) -> &str;

    /// The adapter kind (`twilio`, `vonage`, `sns`, …).
    fn kind(&self) -> &'static str;

    /// Sends one message.
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>>;

    /// Whether this provider posts delivery receipts (so a missing `delivered` receipt may
    /// trigger a fallback channel). Providers without receipts never do.
    fn has_receipts(&self) -> bool {
        false
    }

    /// Verifies and parses a delivery receipt sent to this provider's receipt URL.
    fn receipt(&self, webhook: &InboundRequest) -> Result<ReceiptReply, ReceiptError> {
        let _ = webhook;
        Err(ReceiptError::NotSupported)
    }
}

/// A provider's error code as shown: short codes as they are, anything else withheld.
fn redact_code(code: &str) -> String {
    if code.len() <= 16
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        code.to_string()
    } else {
        "?".into()
    }
}

/// A provider's message as otpd stores, logs and shows it: quoted text (where providers echo
/// the message body), e-mail addresses and runs of three or more digits (a code or a number,
/// however spaced) are withheld, and the rest is cut to 160 characters.
pub fn redact(message: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = message.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '\'' | '"' | '`')
            && let Some(end) = chars[i + 1..].iter().position(|&d| d == c)
        {
            out.push_str("[withheld]");
            i += end + 2;
            continue;
        }
        if c.is_ascii_digit() || c == '+' {
            // A run of digits, each separated by at most one space, dash, dot or bracket.
            let mut j = i;
            let mut digits = 0;
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    j += 1;
                } else if matches!(chars[j], ' ' | '-' | '.' | '(' | ')' | '+')
                    && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit())
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if digits >= 3 {
                out.push_str("[withheld]");
                i = j;
                continue;
            }
        }
        if c == '@' {
            // Drop the word the address belongs to.
            while out.ends_with(|d: char| !d.is_whitespace()) {
                out.pop();
            }
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            out.push_str("[withheld]");
            continue;
        }
        out.push(c);
        i += 1;
    }
    if out.chars().count() > 160 {
        out = out.chars().take(160).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn provider_errors_never_carry_the_code_or_the_number() {
        let error = SendError::Rejected {
            code: "21211".into(),
            message: "The 'To' number +1 415-555-2671 is not valid; code 8 0 0 2 6 5, \
                      body \"Your code is 800265\" for alice@example.com"
                .into(),
        };
        let shown = error.to_string();
        for secret in [
            "800265",
            "8 0 0 2 6 5",
            "4155552671",
            "415-555-2671",
            "alice@example.com",
            "example.com",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("21211"),
            "the provider's error code stays: {shown}"
        );
        assert!(shown.contains("is not valid"), "{shown}");
        let long = SendError::Provider {
            code: "x".repeat(40),
            message: "y".repeat(1000),
        };
        assert!(long.to_string().chars().count() < 220);
    }
}
