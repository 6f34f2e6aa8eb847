//! The management operations the dialects' admin endpoints call (services, webhooks, the
//! safe list, attempt history, quarantines, keys, the audit log, a destination's export and
//! erasure), so that no handler reaches the store and the rules of ownership live in one
//! place.

use crate::abuse::{Quarantine, SafeNumber};
use crate::audit::{ActedBy, AuditDraft, AuditEntry, AuditFilter};
use crate::clock::Clock;
use crate::delivery::DeliveryAttempt;
use crate::destinations::{DestinationRecords, ErasureCounts};
use crate::events::{AttemptFilter, AttemptSummary, Event, EventFilter, Webhook, WebhookLogEntry};
use crate::ids::{AccountId, ServiceId, VerificationId};
use crate::recipient::Recipient;
use crate::report::ReportRow;
use crate::retention::ReportRollup;
use crate::store::{
    AuditStore, DeliveryStore, DestinationStore, EventStore, LimitStore, OutboxStats,
    RetentionStore, StoreError, TenantStore, VerificationStore,
};
use crate::tenants::{ApiKeyRecord, ServiceRecord};
use crate::verification::Verification;

/// Management operations over the engine's store, borrowed from [`crate::Verifier::manage`].
pub struct Management<'a, S, C> {
    store: &'a S,
    clock: &'a C,
}

impl<'a, S, C> Management<'a, S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore,
    C: Clock,
{
    pub(crate) fn new(store: &'a S, clock: &'a C) -> Self {
        Management { store, clock }
    }

    /// Succeeds when the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Queue depths and ages of the delivery outbox (metrics).
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.store.outbox_stats().await
    }

    /// The service `id`, whoever owns it.
    pub async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.store.service(id).await
    }

    /// The service `id` if `account` owns it: another account's service reads as absent, so
    /// a caller cannot learn that it exists.
    pub async fn owned_service(
        &self,
        account: AccountId,
        id: ServiceId,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        Ok(self
            .store
            .service(id)
            .await?
            .filter(|service| service.account_id == account))
    }

    /// Up to `limit` of `account`'s services after `after`, oldest first.
    pub async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.store.services(account, after, limit).await
    }

    /// Stores a new service.
    pub async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        self.store.create_service(service).await
    }

    /// Replaces a service's settings; false when it no longer exists.
    pub async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.store.update_service(service).await
    }

    /// Deletes a service; false when it did not exist.
    pub async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        self.store.delete_service(id).await
    }

    /// Every account, oldest first (the console: operators see every tenant).
    pub async fn accounts(&self) -> Result<Vec<crate::tenants::AccountRecord>, StoreError> {
        self.store.accounts().await
    }

    /// What `service` spent today (UTC) against its daily budget, when it has one. Read by
    /// adding nothing to the day's spend (the one atomic operation the spend counter has).
    pub async fn spent_today(
        &self,
        service: &ServiceRecord,
    ) -> Result<Option<(f64, f64)>, StoreError> {
        let Some(budget) = service.settings.daily_budget else {
            return Ok(None);
        };
        let key = crate::verifier::protections::budget_key(service.id, self.clock.now());
        let spent = self.store.add_spend(&key, 0.0, f64::INFINITY).await?;
        Ok(Some((spent.unwrap_or(0.0), budget)))
    }

    /// Every application, oldest first (the console).
    pub async fn applications(&self) -> Result<Vec<crate::tenants::Application>, StoreError> {
        self.store.applications().await
    }

    /// A verification by id, whichever service it belongs to (the console).
    pub async fn verification(
        &self,
        id: VerificationId,
    ) -> Result<Option<Verification>, StoreError> {
        self.store.verification(id).await
    }

    /// The webhooks of a service.
    pub async fn webhooks(&self, service: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        self.store.webhooks(service).await
    }

    /// Stores a new webhook.
    pub async fn create_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.store.create_webhook(webhook).await
    }

    /// Replaces a webhook; false when it no longer exists.
    pub async fn update_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        self.store.update_webhook(webhook).await
    }

    /// Deletes a service's webhook; false when it did not exist.
    pub async fn delete_webhook(
        &self,
        service: ServiceId,
        id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        self.store.delete_webhook(service, id).await
    }

    /// Posts a webhook's failed delivery of `event` again, now; false when there is none.
    pub async fn replay_webhook_post(
        &self,
        webhook: uuid::Uuid,
        event: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        self.store
            .replay_webhook_post(webhook, event, self.clock.now())
            .await
    }

    /// The newest `limit` deliveries of a webhook.
    pub async fn webhook_log(
        &self,
        webhook: uuid::Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookLogEntry>, StoreError> {
        self.store.webhook_log(webhook, limit).await
    }

    /// Adds a number to `account`'s safe list (or refreshes it), answering the stored entry.
    pub async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        self.store.add_safe_number(account, entry).await
    }

    /// A number on `account`'s safe list.
    pub async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        self.store.safe_number(account, phone).await
    }

    /// Removes a number from `account`'s safe list; false when it was not there.
    pub async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        self.store.remove_safe_number(account, phone).await
    }

    /// The delivery attempts of a verification, oldest first.
    pub async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.store.deliveries(verification).await
    }

    /// Delivery attempts matching `filter`, each with its verification.
    pub async fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        self.store.attempts(filter).await
    }

    /// Events matching `filter`.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        self.store.events(filter).await
    }

    /// The API keys of `account` (hashes only).
    pub async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.api_keys(account).await
    }

    /// Every quarantine active now, of every account (the operator's metrics).
    pub async fn quarantines(&self) -> Result<Vec<Quarantine>, StoreError> {
        self.store.quarantines(self.clock.now()).await
    }

    /// The quarantines active now that concern `account`: its services' own and, unless
    /// `owned_only`, the server-wide ones. Other accounts' quarantines are never included.
    pub async fn quarantines_of(
        &self,
        account: AccountId,
        owned_only: bool,
    ) -> Result<Vec<Quarantine>, StoreError> {
        let all = self.store.quarantines(self.clock.now()).await?;
        let mut owners: std::collections::HashMap<ServiceId, bool> = Default::default();
        let mut concerned = Vec::new();
        for quarantine in all {
            let Some(service) = quarantine.service else {
                if !owned_only {
                    concerned.push(quarantine);
                }
                continue;
            };
            let owned = match owners.get(&service) {
                Some(owned) => *owned,
                None => {
                    let owned = self.owned_service(account, service).await?.is_some();
                    owners.insert(service, owned);
                    owned
                }
            };
            if owned {
                concerned.push(quarantine);
            }
        }
        Ok(concerned)
    }

    /// Lifts the quarantine of `prefix` for `service`, or the server-wide one with `None`
    /// (the console's operators); false when there was none.
    pub async fn lift_any_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        self.store.lift_quarantine(prefix, service).await
    }

    /// Lifts the quarantine of `prefix` for `service`; false when there was none.
    pub async fn lift_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
    ) -> Result<bool, StoreError> {
        self.store.lift_quarantine(prefix, Some(service)).await
    }
}

impl<S, C> Management<'_, S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + AuditStore,
    C: Clock,
{
    /// Appends one audit entry for a change that succeeded, stamped now: `action` (such as
    /// `service.update`) on `target`, concerning `account`, with a `summary` that holds no
    /// secret ([`crate::audit::before_after`]).
    pub async fn record(
        &self,
        by: &ActedBy,
        account: Option<AccountId>,
        action: &str,
        target: impl Into<String>,
        summary: serde_json::Value,
    ) -> Result<AuditEntry, StoreError> {
        let draft = AuditDraft {
            at: self.clock.now(),
            actor: by.actor.clone(),
            account,
            source: by.source.clone(),
            action: action.to_string(),
            target: target.into(),
            summary,
        };
        self.store.append_audit(&draft).await
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit(filter).await
    }
}

impl<S, C> Management<'_, S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + RetentionStore,
    C: Clock,
{
    /// Counts and conversion of the attempts matching `filter`: rollups for the days rolled
    /// up (at day granularity), live rows for the rest, so a purge changes no figure.
    pub async fn attempt_summary(
        &self,
        filter: &AttemptFilter,
    ) -> Result<AttemptSummary, StoreError> {
        let mark = self.store.rolled_up_before().await?;
        if mark.0 <= 0 {
            return self.store.attempt_summary(filter).await;
        }
        let mut summary = AttemptSummary::default();
        if filter.since.is_none_or(|since| since < mark) {
            let rolled = self.store.attempt_rollups(filter, mark).await?;
            match filter.converted {
                None => summary = rolled,
                Some(true) => {
                    summary.total = rolled.converted;
                    summary.converted = rolled.converted;
                }
                Some(false) => summary.total = rolled.total - rolled.converted,
            }
        }
        if filter.until.is_none_or(|until| until > mark) {
            let live = AttemptFilter {
                since: Some(filter.since.map_or(mark, |since| since.max(mark))),
                ..filter.clone()
            };
            let live = self.store.attempt_summary(&live).await?;
            summary.total += live.total;
            summary.converted += live.converted;
        }
        Ok(summary)
    }

    /// What the lifecycle report is computed from: the live verifications with attempts
    /// matching `filter` (after the rolled-up days; at most `filter.limit` verifications), one
    /// row each, and the rollup groups of the rolled-up days it touches.
    pub async fn report_sources(
        &self,
        filter: &AttemptFilter,
    ) -> Result<(Vec<ReportRow>, Vec<ReportRollup>), StoreError> {
        let mark = self.store.rolled_up_before().await?;
        let mut rollups = Vec::new();
        if mark.0 > 0 && filter.since.is_none_or(|since| since < mark) {
            rollups = self.store.report_rollups(filter, mark).await?;
        }
        let mut live = Vec::new();
        if filter.until.is_none_or(|until| until > mark) {
            let since = match filter.since {
                Some(since) if mark.0 > 0 => Some(since.max(mark)),
                Some(since) => Some(since),
                None => (mark.0 > 0).then_some(mark),
            };
            live = self
                .store
                .report_rows(&AttemptFilter {
                    since,
                    ..filter.clone()
                })
                .await?;
        }
        Ok((live, rollups))
    }
}

impl<S, C> Management<'_, S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + DestinationStore,
    C: Clock,
{
    /// Everything held about `to` in `account`'s services and safe list (`None`: every
    /// account, the operator's command line). Never a code, hash or seed once rendered.
    pub async fn destination_records(
        &self,
        account: Option<AccountId>,
        to: &Recipient,
    ) -> Result<DestinationRecords, StoreError> {
        self.store.destination_records(account, to.as_str()).await
    }

    /// Erases every row about `to` in `account`'s services and safe list (`None`: every
    /// account), its pending verifications canceled first; rate counters keep its blind
    /// index only. The caller records the erasure in the audit log without the destination
    /// ([`ERASURE_TARGET`]).
    pub async fn erase_destination(
        &self,
        account: Option<AccountId>,
        to: &Recipient,
    ) -> Result<ErasureCounts, StoreError> {
        self.store
            .erase_destination(account, to.as_str(), self.clock.now())
            .await
    }
}

/// The audit target of an erasure: a fixed word, never the destination nor its blind index
/// (an entry that could be matched to a number would keep a trace of it).
pub const ERASURE_TARGET: &str = "destination";
