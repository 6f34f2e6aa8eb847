//! The abuse counters: rate events, quarantines, capped spends and the safe list, on either backend.

use otpd_core::store::{LimitStore, Quarantine, RateCount, SafeNumber};
use otpd_core::{AccountId, ServiceId, StoreError, Timestamp};

use super::AnyStore;

impl LimitStore for AnyStore {
    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        delegate!(self, s => s.rate_hit(key, window_ms, limit, now))
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        delegate!(self, s => s.rate_count(key, window_ms, now))
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        delegate!(self, s => s.quarantine(quarantine))
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        delegate!(self, s => s.active_quarantine(prefix, service, now))
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        delegate!(self, s => s.quarantines(now))
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.lift_quarantine(prefix, service))
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        delegate!(self, s => s.add_spend(key, amount, cap))
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        let added = delegate!(self, s => s.add_safe_number(account, entry));
        self.cache.safe_lists.forget(&account);
        added
    }

    /// Asks the backend only when the account has safe-list entries (cached per node).
    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        if !self.has_safe_numbers(account).await? {
            return Ok(None);
        }
        delegate!(self, s => s.safe_number(account, phone))
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        if let Some(any) = self.cache.safe_lists.get(&account) {
            return Ok(any);
        }
        let any = delegate!(self, s => s.has_safe_numbers(account))?;
        self.cache.safe_lists.put(account, any);
        Ok(any)
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let removed = delegate!(self, s => s.remove_safe_number(account, phone));
        self.cache.safe_lists.forget(&account);
        removed
    }
}
