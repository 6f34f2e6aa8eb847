//! The delivery outbox: attempts, their leases and outcomes, receipts, fallbacks and the attempts report, on either backend.

use otpd_core::store::{
    DeliveryAttempt, DeliveryStore, DeliveryUpdate, OutboxStats, ReceiptUpdate,
};
use otpd_core::{DeliveryId, StoreError, Timestamp, Verification, VerificationId};

use super::AnyStore;

impl DeliveryStore for AnyStore {
    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        delegate!(self, s => s.deliveries(verification))
    }

    async fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        delegate!(self, s => s.claim_stale_deliveries(now, lease_until, limit))
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.update_delivery(id, update, now))
    }

    async fn record_first_outcome(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.record_first_outcome(id, update, now))
    }

    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        delegate!(self, s => s.record_receipt(receipt, now))
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        delegate!(self, s => s.claim_due_fallbacks(now, limit))
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.release_deliveries(ids, now))
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        delegate!(self, s => s.outbox_stats())
    }

    async fn attempts(
        &self,
        filter: &otpd_core::events::AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        delegate!(self, s => s.attempts(filter))
    }

    async fn attempt_summary(
        &self,
        filter: &otpd_core::events::AttemptFilter,
    ) -> Result<otpd_core::events::AttemptSummary, StoreError> {
        delegate!(self, s => s.attempt_summary(filter))
    }

    async fn report_rows(
        &self,
        filter: &otpd_core::events::AttemptFilter,
    ) -> Result<Vec<otpd_core::report::ReportRow>, StoreError> {
        delegate!(self, s => s.report_rows(filter))
    }
}
