//! The outbox of status callbacks, on either backend.

use otpd_core::store::{CallbackJob, CallbackStore};
use otpd_core::{StoreError, Timestamp};
use uuid::Uuid;

use super::AnyStore;

impl CallbackStore for AnyStore {
    async fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallbackJob>, StoreError> {
        delegate!(self, s => s.claim_due_callbacks(now, lease_until, limit))
    }

    async fn callback_delivered(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        delegate!(self, s => s.callback_delivered(id, now))
    }

    async fn callback_failed(
        &self,
        id: Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.callback_failed(id, retry_at, error, now))
    }
}
