//! The delivery outbox: attempts, their leases, outcomes, receipts and fallbacks, and the
//! attempts report.

use std::future::Future;

use crate::clock::Timestamp;
use crate::delivery::{DeliveryAttempt, DeliveryUpdate, ReceiptUpdate};
use crate::events::{AttemptFilter, AttemptSummary};
use crate::ids::{DeliveryId, VerificationId};
use crate::report::ReportRow;
use crate::store::StoreError;
use crate::verification::Verification;

/// How much work waits in the outboxes (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Deliveries still `queued`.
    pub queued_deliveries: u64,
    /// When the oldest of them was written.
    pub oldest_queued: Option<Timestamp>,
    /// Status callbacks still to post.
    pub pending_callbacks: u64,
}

/// Delivery attempts: the outbox the delivery worker drains, the records it writes, the
/// receipts providers send back, and the attempts report.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Delivery attempts of one verification, oldest first.
    fn deliveries(
        &self,
        verification: VerificationId,
    ) -> impl Future<Output = Result<Vec<DeliveryAttempt>, StoreError>> + Send;

    /// Claims up to `limit` deliveries that are still queued although their lease has run out
    /// (the node that queued them stopped before sending), leasing them to the caller until
    /// `lease_until`, so exactly one node resumes each. A delivery is leased for
    /// [`DELIVERY_LEASE_SECONDS`](crate::delivery::DELIVERY_LEASE_SECONDS) when it is written.
    fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(DeliveryAttempt, Verification)>, StoreError>> + Send;

    /// Records what happened to a delivery attempt.
    fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a delivery's first accepted outcome, which the waiting start answers with.
    /// Returns once every later read and write through this store is ordered after the
    /// record, which may be before it commits; the default waits for the commit. One node
    /// with one writer (SQLite) returns once the record is queued, so a start waits for one
    /// commit, not two. A crash before that commit leaves the attempt `queued` under its
    /// lease, and it is sent again after the restart — as after a crash between a
    /// provider's answer and any record.
    fn record_first_outcome(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.update_delivery(id, update, now)
    }

    /// Applies a delivery receipt to the attempt the provider knows by `provider_ref`, unless
    /// the attempt already has a status at least as far along ([`rank`](crate::delivery::DeliveryStatus::rank)).
    /// A `delivered` receipt cancels a pending fallback; an `undelivered` or `failed` one
    /// makes it due now. Returns the attempt as it now stands, or `None` when no attempt has
    /// that reference.
    fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<DeliveryAttempt>, StoreError>> + Send;

    /// Claims up to `limit` attempts whose fallback is due at `now` (no `delivered` receipt
    /// in time, or an `undelivered` one), clearing the mark so exactly one node falls back,
    /// with their verifications.
    fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(DeliveryAttempt, Verification)>, StoreError>> + Send;

    /// Ends this node's leases on still-queued deliveries (a graceful shutdown hands its
    /// unfinished work to the other nodes at once instead of after the lease).
    fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How much work waits in the delivery and callback outboxes.
    fn outbox_stats(&self) -> impl Future<Output = Result<OutboxStats, StoreError>> + Send;

    /// Delivery attempts with their verifications, oldest first (Twilio's Attempts).
    fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> impl Future<Output = Result<Vec<(DeliveryAttempt, Verification)>, StoreError>> + Send;

    /// Totals over the attempts matching `filter` (its `after` and `limit` are ignored).
    fn attempt_summary(
        &self,
        filter: &AttemptFilter,
    ) -> impl Future<Output = Result<AttemptSummary, StoreError>> + Send;

    /// The lifecycle report's rows: one per verification with at least one attempt matching
    /// `filter`, aggregated over those attempts, in one query. Oldest verification first
    /// (newest first with `newest_first`), at most `filter.limit`; `after` is ignored.
    fn report_rows(
        &self,
        filter: &AttemptFilter,
    ) -> impl Future<Output = Result<Vec<ReportRow>, StoreError>> + Send;
}
