//! Events, service webhooks and the outbox of their posts, and alerts, on either backend.

use otpd_core::store::EventStore;
use otpd_core::{ServiceId, StoreError, Timestamp};
use uuid::Uuid;

use super::AnyStore;

impl EventStore for AnyStore {
    async fn record_event(&self, event: &otpd_core::events::Event) -> Result<(), StoreError> {
        delegate!(self, s => s.record_event(event))
    }

    async fn events(
        &self,
        filter: &otpd_core::events::EventFilter,
    ) -> Result<Vec<otpd_core::events::Event>, StoreError> {
        delegate!(self, s => s.events(filter))
    }

    async fn create_webhook(&self, webhook: &otpd_core::events::Webhook) -> Result<(), StoreError> {
        delegate!(self, s => s.create_webhook(webhook))
    }

    async fn webhooks(
        &self,
        service: ServiceId,
    ) -> Result<Vec<otpd_core::events::Webhook>, StoreError> {
        delegate!(self, s => s.webhooks(service))
    }

    async fn update_webhook(
        &self,
        webhook: &otpd_core::events::Webhook,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.update_webhook(webhook))
    }

    async fn delete_webhook(&self, service: ServiceId, id: Uuid) -> Result<bool, StoreError> {
        delegate!(self, s => s.delete_webhook(service, id))
    }

    async fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<otpd_core::events::WebhookJob>, StoreError> {
        delegate!(self, s => s.claim_webhook_jobs(now, lease_until, limit))
    }

    async fn webhook_job_done(
        &self,
        id: Uuid,
        outcome: &otpd_core::events::WebhookOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.webhook_job_done(id, outcome, now))
    }

    async fn replay_webhook_post(
        &self,
        webhook: uuid::Uuid,
        event: uuid::Uuid,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.replay_webhook_post(webhook, event, now))
    }

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<otpd_core::events::WebhookLogEntry>, StoreError> {
        delegate!(self, s => s.webhook_log(webhook, limit))
    }

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        delegate!(self, s => s.active_services(since))
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        delegate!(self, s => s.open_alert(key, now))
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.close_alert(key))
    }
}
