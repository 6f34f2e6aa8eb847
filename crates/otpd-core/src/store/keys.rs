//! The port of key rotation: moving what is sealed under previous keys to the current one.

use std::future::Future;

use super::StoreError;

/// Reseals stored destinations under the store's current key (`otpd_core::vault::Vault`).
pub trait KeyStore: Send + Sync + 'static {
    /// Reseals and re-indexes up to `limit` stored values (a verification's destination, a
    /// safe-list number, an event's `toSealed`) sealed under another key than the current
    /// one; how many it moved. Zero: nothing is left under a previous key.
    fn reseal(&self, limit: u32) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many stored values are still sealed under another key than the current one.
    fn sealed_under_other_keys(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
