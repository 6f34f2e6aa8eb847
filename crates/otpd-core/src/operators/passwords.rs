//! Operators' passwords and tokens: argon2id hashing (slow, run off the request workers),
//! random tokens stored only as their SHA-256, and what a valid email and password are.

use std::future::Future;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::OperatorError;
use crate::secret::Secret;

/// Shortest password accepted (NIST SP 800-63B's minimum for a chosen secret).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Hashes a password with argon2id and a fresh salt. Slow by design (tens of
/// milliseconds): the console runs it off the request workers.
pub fn hash_password(password: &Secret) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

/// Whether `password` matches the PHC string `phc` (false for a malformed one).
pub fn verify_password(phc: &str, password: &Secret) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(parsed) = argon2::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password matches, checked when the email is unknown so that an unknown email
/// takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret::new(random_token())))
}

/// Runs the slow password work somewhere that does not hold up other requests.
pub trait PasswordWork: Send + Sync {
    /// [`hash_password`], off the caller's thread.
    fn hash(&self, password: Secret) -> impl Future<Output = String> + Send;
    /// [`verify_password`], off the caller's thread.
    fn verify(&self, phc: String, password: Secret) -> impl Future<Output = bool> + Send;
}

/// 256 random bits, base64url without padding (session, invitation tokens).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token: what the store keeps (the token itself is only in the cookie/link).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A well-formed email for an operator, lower-cased; `None` when it is not one.
pub fn normalise_email(text: &str) -> Option<String> {
    let email = text.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254;
    valid.then_some(email)
}

/// Refuses a password shorter than [`MIN_PASSWORD_CHARS`].
pub fn check_password(password: &Secret) -> Result<(), OperatorError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(OperatorError::WeakPassword);
    }
    Ok(())
}
