//! The authenticator-app second factor: codes from a seed sealed by the vault.

use base64::Engine;

use crate::vault::Vault;

/// The authenticator for a 160-bit seed: SHA-1, 6 digits, 30 s (what every app reads).
/// The account name only labels the app's entry; a `:` (which the URI format forbids there)
/// becomes `_`.
pub(super) fn totp_for(seed: &[u8], issuer: &str, email: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(seed.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(email.replace(':', "_"))
        .build_noncompliant()
}

/// The code an authenticator app shows for the operator's sealed seed at `unix_seconds`
/// (tests, and the CLI's enrolment check).
pub fn totp_code(vault: &Vault, sealed: &str, unix_seconds: u64) -> Option<String> {
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    let seed = hex::decode(vault.open(&sealed).ok()?).ok()?;
    Some(
        totp_for(&seed, "otpd", "")
            .generate(unix_seconds)
            .to_string(),
    )
}

/// An operator's sealed second-factor seed resealed under the vault's current key, when it is
/// sealed under another (key rotation); `Ok(None)` when it already is under the current one.
pub fn reseal_totp(
    vault: &Vault,
    sealed: &str,
) -> Result<Option<String>, crate::vault::VaultError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| crate::vault::VaultError::Damaged)?;
    if Vault::key_of(&bytes) == Some(vault.current()) {
        return Ok(None);
    }
    let seed = vault.open(&bytes)?;
    Ok(Some(
        base64::engine::general_purpose::STANDARD.encode(vault.seal(&seed)),
    ))
}
