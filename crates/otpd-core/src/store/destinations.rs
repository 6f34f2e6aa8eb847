//! Everything held about one destination: the right of access (export) and the right to
//! erasure.

use std::future::Future;

use crate::clock::Timestamp;
use crate::destinations::{DestinationRecords, ErasureCounts};
use crate::ids::AccountId;
use crate::store::StoreError;

/// Finds and erases the rows of one destination. The store blinds `to` under every key of its
/// vault (rows written before a key rotation are found too); refused starts, which have no
/// verification, are found by opening their sealed destination. `account` limits both to that
/// account's services and safe list; `None` is every account (the operator's command line).
pub trait DestinationStore: Send + Sync + 'static {
    /// What the store holds about `to` (E.164 number or email address, as stored): its
    /// verifications with their deliveries and events, the refused starts' events and the
    /// safe-list entries. A read; never a code.
    fn destination_records(
        &self,
        account: Option<AccountId>,
        to: &str,
    ) -> impl Future<Output = Result<DestinationRecords, StoreError>> + Send;

    /// Removes every row about `to`: its pending verifications are canceled (no event, no
    /// callback, no webhook: an erasure posts the number nowhere), then its verifications,
    /// their deliveries (queued ones too), status callbacks, events and webhook posts, the
    /// refused starts' events and their webhook posts, and its safe-list entries are deleted.
    /// Rate counters keyed by its blind index are kept (an erasure must not lift a lockout).
    /// Atomic: one transaction (SQLite also overwrites the freed content: `secure_delete`).
    fn erase_destination(
        &self,
        account: Option<AccountId>,
        to: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<ErasureCounts, StoreError>> + Send;
}
