//! Small pieces the HTTP adapters of this crate share: one HTTP exchange turned into a status
//! and a body (or a transient [`SendError`]), the MACs and digests receipts are signed with,
//! constant-time comparison, form encoding, and the GSM-7 test that picks an SMS encoding.

use hmac::{Hmac, KeyInit, Mac};
use otpd_delivery::SendError;

use crate::common::transport_error;

/// Refuses a message on a channel an SMS-only adapter cannot carry: a routing mistake of this
/// provider's configuration, so another provider may still take it.
pub fn sms_only(kind: &str, message: &otpd_delivery::Message) -> Result<(), SendError> {
    if message.channel == otpd_core::Channel::Sms {
        Ok(())
    } else {
        Err(SendError::provider(
            "channel",
            format!("{kind} only sends SMS, not {}", message.channel.as_str()),
        ))
    }
}

/// Sends a prepared request and reads the whole answer: `(status, body)`. A request that
/// gets no answer (refused, reset, timed out, body cut) is a transient failure.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), SendError> {
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| transport_error(&e))?;
    Ok((status, body.to_vec()))
}

/// `application/x-www-form-urlencoded` text of `pairs`, in order (reqwest's `form` feature is
/// not enabled in this workspace, and repeated names need an ordered list anyway).
pub fn form_body<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key.as_ref(), value.as_ref());
    }
    serializer.finish()
}

/// A short, single-line excerpt of a provider's body for error messages (never a message
/// text: providers do not echo it in errors we keep).
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.chars().take(200).collect();
    line.replace(['\n', '\r'], " ")
}

/// Defines `fn $name(key, message) -> Vec<u8>`: HMAC with digest `$digest`.
macro_rules! hmac_fn {
    ($(#[$doc:meta])* $name:ident, $digest:ty) => {
        $(#[$doc])*
        pub fn $name(key: &[u8], message: &[u8]) -> Vec<u8> {
            let mut mac =
                <Hmac<$digest> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    };
}

hmac_fn!(
    /// HMAC-SHA1 of `message` under `key` (Twilio).
    hmac_sha1,
    sha1::Sha1
);
hmac_fn!(
    /// HMAC-SHA256 of `message` under `key` (Plivo, MessageBird, Vonage).
    hmac_sha256,
    sha2::Sha256
);
hmac_fn!(
    /// HMAC-SHA384 of `message` under `key` (MessageBird JWT HS384).
    hmac_sha384,
    sha2::Sha384
);
hmac_fn!(
    /// HMAC-SHA512 of `message` under `key` (Vonage, MessageBird JWT HS512).
    hmac_sha512,
    sha2::Sha512
);
hmac_fn!(
    /// HMAC-MD5 of `message` under `key` (Vonage's `md5` signature method).
    hmac_md5,
    md5::Md5
);

/// Plain MD5 of `message` (Vonage's legacy `md5hash` signature method).
pub fn md5(message: &[u8]) -> Vec<u8> {
    use md5::Digest;
    md5::Md5::digest(message).to_vec()
}

/// Lower-case hex SHA-256 of `data` (MessageBird `url_hash` / `payload_hash`, Twilio
/// `bodySHA256`).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Equality of two secrets or MACs in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Seconds since the Unix epoch, for signature freshness checks.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Characters of the GSM 03.38 basic table and extension table (see `otpd_core::sms`).
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\u{000C}";

/// Whether `text` can go as GSM-7; otherwise it must be sent as Unicode (UCS-2), which
/// providers such as Vonage need to be told explicitly.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| GSM7.contains(c))
}

/// Appends `name=value` (value form-encoded) to a URL's query.
pub fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let pair = form_body(&[(name, value)]);
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    match fragment {
        Some(fragment) => format!("{base}{separator}{pair}#{fragment}"),
        None => format!("{base}{separator}{pair}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_detection_follows_the_tables() {
        assert!(is_gsm7("Your ACME code is 482910 {ref} €"));
        assert!(!is_gsm7("Your ACME code is 482910 — don't share it"));
        assert!(!is_gsm7("Ваш код 482910"));
        assert!(!is_gsm7("ç"));
    }

    #[test]
    fn query_params_are_appended_encoded() {
        assert_eq!(
            with_query_param("https://a/b", "token", "x y&z"),
            "https://a/b?token=x+y%26z"
        );
        assert_eq!(
            with_query_param("https://a/b?c=1", "token", "t"),
            "https://a/b?c=1&token=t"
        );
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
