//! Retention: daily rollups and batched purges.

use std::future::Future;

use crate::clock::Timestamp;
use crate::events::{AttemptFilter, AttemptSummary};
use crate::retention::{PurgeKind, ReportRollup};
use crate::store::StoreError;

/// Daily rollups of attempts and verifications, and the deletes of rows past their window.
/// Attempts created before [`rolled_up_before`](RetentionStore::rolled_up_before) are read
/// from rollups only, whether or not their rows are gone yet.
pub trait RetentionStore: Send + Sync + 'static {
    /// The end of the last rolled-up day (`Timestamp(0)` when none is).
    fn rolled_up_before(&self) -> impl Future<Output = Result<Timestamp, StoreError>> + Send;

    /// Rolls up the oldest day with sends that is not rolled up yet, when it ends at or
    /// before `before`: its attempts (for the Summary) and the verifications whose first send
    /// is that day (for the report), and moves the mark past it, in one atomic step (on
    /// several nodes, one of them rolls each day up once). Returns the day's start, or
    /// `None` when no such day is left.
    fn roll_up_next_day(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Deletes up to `limit` rows of `kind` last changed before `before`, in one short
    /// transaction (one writer job on SQLite). Verifications go only once finished and once
    /// every send of theirs is rolled up, with their deliveries and callbacks. Returns how
    /// many rows went (for verifications, how many verifications), at most `limit` per table,
    /// so fewer than `limit` means nothing of `kind` is left before `before`.
    fn purge(
        &self,
        kind: PurgeKind,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Totals over the rolled-up attempts matching `filter` at day granularity (a day counts
    /// whole when `since..until` touches it) on days before `before`. A filter on one
    /// verification or one destination matches nothing here; a prefix matches on its first
    /// seven characters.
    fn attempt_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> impl Future<Output = Result<AttemptSummary, StoreError>> + Send;

    /// The report's rollup groups matching `filter` (account, service, since, until at day
    /// granularity) on days before `before`, summed over days.
    fn report_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> impl Future<Output = Result<Vec<ReportRollup>, StoreError>> + Send;
}
