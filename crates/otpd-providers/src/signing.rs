//! What receipts are signed with, for checking them: the HMACs and digests providers use,
//! constant-time comparison, and the clock signature freshness is measured on.

use hmac::{Hmac, KeyInit, Mac};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
