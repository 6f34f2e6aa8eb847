//! Retention: daily rollups and batched purges, on either backend.

use otpd_core::events::{AttemptFilter, AttemptSummary};
use otpd_core::retention::{PurgeKind, ReportRollup};
use otpd_core::store::RetentionStore;
use otpd_core::{StoreError, Timestamp};

use super::AnyStore;

impl RetentionStore for AnyStore {
    async fn rolled_up_before(&self) -> Result<Timestamp, StoreError> {
        delegate!(self, s => s.rolled_up_before())
    }

    async fn roll_up_next_day(&self, before: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        delegate!(self, s => s.roll_up_next_day(before))
    }

    async fn purge(
        &self,
        kind: PurgeKind,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.purge(kind, before, limit))
    }

    async fn attempt_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<AttemptSummary, StoreError> {
        delegate!(self, s => s.attempt_rollups(filter, before))
    }

    async fn report_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<Vec<ReportRollup>, StoreError> {
        delegate!(self, s => s.report_rollups(filter, before))
    }
}
