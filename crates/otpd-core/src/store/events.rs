//! The event log, service webhooks and the queue of their posts, and alerts.

use std::future::Future;

use crate::clock::Timestamp;
use crate::events::{Event, EventFilter, Webhook, WebhookJob, WebhookLogEntry, WebhookOutcome};
use crate::ids::ServiceId;
use crate::store::StoreError;

/// Events and what is built on them: webhooks subscribed to them, the outbox of their posts,
/// and the alerts the sweep opens and closes.
pub trait EventStore: Send + Sync + 'static {
    /// Stores an event that is not part of another change (a start refused by a protection).
    fn record_event(&self, event: &Event) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events matching `filter`, oldest first.
    fn events(
        &self,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Creates a webhook of a service.
    fn create_webhook(
        &self,
        webhook: &Webhook,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A service's webhooks, oldest first.
    fn webhooks(
        &self,
        service: ServiceId,
    ) -> impl Future<Output = Result<Vec<Webhook>, StoreError>> + Send;

    /// Replaces a webhook's url, types, state and name; false when absent.
    fn update_webhook(
        &self,
        webhook: &Webhook,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a webhook of `service` (and its pending posts); false when absent.
    fn delete_webhook(
        &self,
        service: ServiceId,
        id: uuid::Uuid,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims up to `limit` due webhook posts, leasing them until `lease_until`. A post is
    /// due only when no earlier event of the same verification is still pending for the
    /// same webhook, so each receiver gets a verification's events in order.
    fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WebhookJob>, StoreError>> + Send;

    /// Records a post's outcome: delivered (2xx), retry at `retry_at`, or given up.
    fn webhook_job_done(
        &self,
        id: uuid::Uuid,
        outcome: &WebhookOutcome,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sends a webhook's failed post of `event` again: the row is pending and due now (the
    /// console's replay); false when there is no failed post of it.
    fn replay_webhook_post(
        &self,
        webhook: uuid::Uuid,
        event: uuid::Uuid,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A webhook's delivery log, newest event first, at most `limit`.
    fn webhook_log(
        &self,
        webhook: uuid::Uuid,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WebhookLogEntry>, StoreError>> + Send;

    /// Services with verifications created since `since` (the alert sweep's work list).
    fn active_services(
        &self,
        since: Timestamp,
    ) -> impl Future<Output = Result<Vec<ServiceId>, StoreError>> + Send;

    /// Opens alert `key`; true when this call opened it (so one node reports it).
    fn open_alert(
        &self,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Closes alert `key`; true when it was open.
    fn close_alert(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
