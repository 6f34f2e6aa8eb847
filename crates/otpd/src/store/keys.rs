//! Key rotation's resealing, on either backend.

use otpd_core::StoreError;
use otpd_core::store::KeyStore;

use super::AnyStore;

impl KeyStore for AnyStore {
    async fn reseal(&self, limit: u32) -> Result<u64, StoreError> {
        delegate!(self, s => s.reseal(limit))
    }

    async fn sealed_under_other_keys(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.sealed_under_other_keys())
    }
}
