//! The abuse counters: sliding-window rate events, quarantined prefixes, capped spends and
//! the safe list.

use std::future::Future;

use crate::abuse::{Quarantine, RateCount, SafeNumber};
use crate::clock::Timestamp;
use crate::ids::{AccountId, ServiceId};
use crate::store::StoreError;

/// The counters and lists the protections of a start read and write, each step atomic so
/// limits are exact across restarts and nodes.
pub trait LimitStore: Send + Sync + 'static {
    /// Counts an event under `key` if fewer than `limit` events happened in the `window_ms`
    /// before `now` (a sliding window, exact across restarts and nodes: one atomic step per
    /// key). Older events of the key are forgotten.
    fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateCount, StoreError>> + Send;

    /// Events under `key` in the `window_ms` before `now`, without counting one.
    fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateCount, StoreError>> + Send;

    /// Quarantines a prefix for its service (or server-wide) unless an active quarantine of
    /// that prefix and scope exists; true when this call created it.
    fn quarantine(
        &self,
        quarantine: &Quarantine,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The active quarantine at `now` that stops a start of `service` to `prefix`: the
    /// service's own or a server-wide one, if any.
    fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Quarantine>, StoreError>> + Send;

    /// Every quarantine active at `now`, of every service and server-wide, newest first.
    fn quarantines(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Quarantine>, StoreError>> + Send;

    /// Lifts the quarantine of `prefix` for `service` (`None`: the server-wide one only);
    /// false when there was none.
    fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds `amount` to the spend under `key` unless the total would pass `cap`; the new
    /// total, or `None` when refused (atomic, so concurrent spends never pass the cap).
    fn add_spend(
        &self,
        key: &str,
        amount: f64,
        cap: f64,
    ) -> impl Future<Output = Result<Option<f64>, StoreError>> + Send;

    /// Adds a number to an account's safe list; an existing entry is returned unchanged.
    fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> impl Future<Output = Result<SafeNumber, StoreError>> + Send;

    /// The account's safe-list entry for `phone`, if any.
    fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> impl Future<Output = Result<Option<SafeNumber>, StoreError>> + Send;

    /// Whether the account's safe list has any entry: most accounts have none, and a start
    /// then needs no per-number lookup (the binary's node cache keeps this answer).
    fn has_safe_numbers(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes a number from an account's safe list; false when it was not there.
    fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
