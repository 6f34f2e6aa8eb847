//! The outbox of status callbacks (a verification's `status_callback` URL).

use std::future::Future;

use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::verification::{Verification, VerificationStatus};

/// A status callback waiting to be posted (the durable outbox row plus what to render).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackJob {
    /// Outbox row id.
    pub id: uuid::Uuid,
    /// Target URL.
    pub url: String,
    /// The verification whose status changed, as it is now.
    pub verification: Verification,
    /// The status this event reports.
    pub status: VerificationStatus,
    /// Posts tried so far.
    pub attempts: u32,
}

/// The status callback outbox the callback worker drains: a crash mid-post means a retry,
/// never a loss.
pub trait CallbackStore: Send + Sync + 'static {
    /// Claims up to `limit` callbacks due at `now`, hiding them from other claimers until
    /// `lease_until` (so a crash mid-post means a retry, never a loss).
    fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CallbackJob>, StoreError>> + Send;

    /// Marks a callback posted.
    fn callback_delivered(
        &self,
        id: uuid::Uuid,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed post: retry at `retry_at`, or give up when it is `None`.
    fn callback_failed(
        &self,
        id: uuid::Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
