//! Everything held about one destination (export, erasure), on either backend.

use otpd_core::store::{DestinationRecords, DestinationStore, ErasureCounts};
use otpd_core::{AccountId, StoreError, Timestamp};

use super::AnyStore;

impl DestinationStore for AnyStore {
    async fn destination_records(
        &self,
        account: Option<AccountId>,
        to: &str,
    ) -> Result<DestinationRecords, StoreError> {
        delegate!(self, s => s.destination_records(account, to))
    }

    /// Forgets this node's cached "has safe-list entries" answers: an erasure may empty a
    /// safe list.
    async fn erase_destination(
        &self,
        account: Option<AccountId>,
        to: &str,
        now: Timestamp,
    ) -> Result<ErasureCounts, StoreError> {
        let erased = delegate!(self, s => s.erase_destination(account, to, now));
        match account {
            Some(account) => self.cache.safe_lists.forget(&account),
            None => self.cache.safe_lists.clear(),
        }
        erased
    }
}
