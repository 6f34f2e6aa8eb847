//! An in-memory fake of the five store ports the engine needs, and of its delivery port, so
//! the order of checks on a start and the outcomes of a check are unit-tested without a
//! database. It keeps only what the engine reads back; the rest answers empty. It also keeps
//! console operators and their sessions, for the operators' unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::{DeliveryJob, Dispatch, FirstTry};
use crate::abuse::{Quarantine, RateCount, SafeNumber};
use crate::clock::Timestamp;
use crate::code::CodeHash;
use crate::delivery::{DeliveryAttempt, DeliveryStatus, DeliveryUpdate, ReceiptUpdate};
use crate::events::{
    AttemptFilter, AttemptSummary, Event, EventFilter, Webhook, WebhookJob, WebhookLogEntry,
    WebhookOutcome,
};
use crate::ids::{AccountId, ApiKeyId, ApplicationId, DeliveryId, ServiceId, VerificationId};
use crate::operators::{Operator, OperatorSession};
use crate::store::{
    CheckResult, DeliveryStore, EventStore, LimitStore, OutboxStats, ResendOutcome, StartDecision,
    StartPlan, StoreError, TenantStore, VerificationStore,
};
use crate::tenants::{AccessToken, AccountRecord, ApiKeyRecord, Application, ServiceRecord};
use crate::verification::{
    Candidate, CheckOutcome, StatusChange, Verification, VerificationStatus, decide_check,
    decide_status_change,
};
use crate::{Channel, Clock};

mod operators;

/// Runs a future of the fakes to its end: nothing in them waits, so one poll finishes it.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a fake waited: the engine awaited something outside them"),
    }
}

/// What the fake store holds; tests read and seed it through [`FakeStore::state`].
#[derive(Default)]
pub(crate) struct FakeState {
    pub verifications: HashMap<VerificationId, Verification>,
    pub deliveries: Vec<DeliveryAttempt>,
    pub delivery_updates: Vec<(DeliveryId, DeliveryUpdate)>,
    pub events: Vec<Event>,
    pub quarantines: Vec<Quarantine>,
    pub safe_numbers: Vec<(AccountId, SafeNumber)>,
    pub services: HashMap<ServiceId, ServiceRecord>,
    /// Rate events by key.
    pub rates: HashMap<String, Vec<Timestamp>>,
    pub spends: HashMap<String, f64>,
    /// Every plan `start_verification` was given, in order.
    pub plans: Vec<StartPlan>,
    /// When set, `start_verification` answers this without applying the plan.
    pub scripted: Option<StartDecision>,
    /// Console operators, in creation order.
    pub operators: Vec<Operator>,
    /// Console sessions by token hash.
    pub sessions: HashMap<[u8; 32], OperatorSession>,
}

impl FakeState {
    /// Events under `key` in the `window_ms` before `now`.
    fn count(&self, key: &str, window_ms: i64, now: Timestamp) -> RateCount {
        let events: Vec<Timestamp> = self
            .rates
            .get(key)
            .into_iter()
            .flatten()
            .copied()
            .filter(|at| at.0 > now.0 - window_ms)
            .collect();
        RateCount {
            allowed: false,
            count: events.len() as u32,
            frees_at: events.iter().min().map(|at| at.plus_millis(window_ms)),
        }
    }

    fn hit(&mut self, key: &str, now: Timestamp) {
        self.rates.entry(key.to_string()).or_default().push(now);
    }

    /// The plan's decision, the store's rule in the order of docs/security.md.
    fn decide(&self, plan: &StartPlan) -> StartDecision {
        let v = &plan.verification;
        let now = v.created_at;
        if plan.cooldown_seconds > 0 {
            let last_send = self
                .verifications
                .values()
                .filter(|o| o.service_id == v.service_id && o.to == v.to && o.expires_at > now)
                .flat_map(|o| self.deliveries.iter().filter(|d| d.verification_id == o.id))
                .map(|d| d.created_at)
                .max();
            if let Some(last) = last_send {
                let allowed_at = last.plus_seconds(i64::from(plan.cooldown_seconds));
                if now < allowed_at {
                    return StartDecision::Cooldown { allowed_at };
                }
            }
        }
        if let Some(lockout) = &plan.lockout {
            let failures = self.count(&lockout.key, lockout.window_ms, now);
            if failures.count >= lockout.max {
                return StartDecision::LockedOut {
                    frees_at: failures.frees_at,
                };
            }
        }
        for (index, limit) in plan.limits.iter().enumerate() {
            let counted = self.count(&limit.key, limit.window_ms, now);
            if counted.count >= limit.max {
                return StartDecision::Limited {
                    index,
                    frees_at: counted.frees_at,
                };
            }
        }
        if let Some(spend) = &plan.spend {
            let total = self.spends.get(&spend.key).copied().unwrap_or(0.0);
            if total + spend.amount > spend.cap {
                return StartDecision::OverBudget;
            }
        }
        StartDecision::Created
    }
}

/// The in-memory store: clones share one state.
#[derive(Clone, Default)]
pub(crate) struct FakeStore(Arc<Mutex<FakeState>>);

impl FakeStore {
    /// The state, to seed or inspect.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl VerificationStore for FakeStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        let mut state = self.state();
        state.plans.push(plan.clone());
        let decision = state.scripted.unwrap_or_else(|| state.decide(plan));
        if decision == StartDecision::Created {
            let now = plan.verification.created_at;
            for limit in &plan.limits {
                state.hit(&limit.key, now);
            }
            if let Some(spend) = &plan.spend {
                *state.spends.entry(spend.key.clone()).or_default() += spend.amount;
            }
            let v = plan.verification.clone();
            state.verifications.insert(v.id, v);
            state.deliveries.push(plan.delivery.clone());
        }
        Ok(decision)
    }

    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        Ok(self.state().verifications.get(&id).cloned())
    }

    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        let mut state = self.state();
        let Some(verification) = state.verifications.get_mut(&id) else {
            return Ok(CheckResult {
                outcome: CheckOutcome::NotFound,
                verification: None,
            });
        };
        if verification.service_id != service {
            return Ok(CheckResult {
                outcome: CheckOutcome::WrongService,
                verification: None,
            });
        }
        let decision = decide_check(verification, verification.accepts(&candidate), now);
        verification.status = decision.status;
        verification.attempts = decision.attempts;
        verification.updated_at = now;
        let verification = verification.clone();
        let counters = candidate.counting.counters(&verification, &test_vault());
        if let Some((key, _)) = counters.for_outcome(decision.outcome) {
            state.hit(key, now);
        }
        Ok(CheckResult {
            outcome: decision.outcome,
            verification: Some(verification),
        })
    }

    async fn set_status(
        &self,
        id: VerificationId,
        service: ServiceId,
        target: VerificationStatus,
        now: Timestamp,
    ) -> Result<StatusChange, StoreError> {
        let mut state = self.state();
        let Some(verification) = state.verifications.get_mut(&id) else {
            return Ok(StatusChange::NotFound);
        };
        if verification.service_id != service {
            return Ok(StatusChange::WrongService);
        }
        let plan = decide_status_change(verification, target, now);
        if let Some(status) = plan.record {
            verification.status = status;
        }
        let verification = Box::new(verification.clone());
        Ok(match plan.changed {
            true => StatusChange::Changed(verification),
            false => StatusChange::NotPending(verification),
        })
    }

    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        Ok(self
            .state()
            .verifications
            .values()
            .filter(|v| v.service_id == service && v.to.as_str() == to && v.expires_at > now)
            .max_by_key(|v| v.created_at)
            .cloned())
    }

    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        let mut state = self.state();
        let sends = state
            .deliveries
            .iter()
            .filter(|d| d.verification_id == id)
            .count();
        let Some(verification) = state.verifications.get_mut(&id) else {
            return Ok(ResendOutcome::NotPending);
        };
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(ResendOutcome::NotPending);
        }
        if sends >= max_sends as usize {
            return Ok(ResendOutcome::TooManySends);
        }
        if let Some(hash) = new_hash {
            verification.code_hash = hash;
        }
        let verification = Box::new(verification.clone());
        state.deliveries.push(delivery.clone());
        Ok(ResendOutcome::Queued(verification))
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        let mut state = self.state();
        let mut expired = Vec::new();
        for v in state.verifications.values_mut() {
            if expired.len() < limit as usize
                && v.status == VerificationStatus::Pending
                && v.expires_at <= now
            {
                v.status = VerificationStatus::Expired;
                expired.push(v.clone());
            }
        }
        Ok(expired)
    }
}

impl DeliveryStore for FakeStore {
    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let state = self.state();
        let of = |d: &&DeliveryAttempt| d.verification_id == verification;
        Ok(state.deliveries.iter().filter(of).cloned().collect())
    }

    async fn claim_stale_deliveries(
        &self,
        _: Timestamp,
        _: Timestamp,
        _: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        Ok(Vec::new())
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        self.state().delivery_updates.push((id, update.clone()));
        Ok(())
    }

    async fn record_receipt(
        &self,
        _: &ReceiptUpdate,
        _: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        Ok(None)
    }

    async fn claim_due_fallbacks(
        &self,
        _: Timestamp,
        _: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        Ok(Vec::new())
    }

    async fn release_deliveries(&self, _: &[DeliveryId], _: Timestamp) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        Ok(OutboxStats::default())
    }

    async fn attempts(
        &self,
        _: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        Ok(Vec::new())
    }

    async fn attempt_summary(&self, _: &AttemptFilter) -> Result<AttemptSummary, StoreError> {
        Ok(AttemptSummary::default())
    }

    async fn report_rows(
        &self,
        _: &AttemptFilter,
    ) -> Result<Vec<crate::report::ReportRow>, StoreError> {
        Ok(Vec::new())
    }
}

impl TenantStore for FakeStore {
    async fn create_account(&self, _: &AccountRecord) -> Result<(), StoreError> {
        Ok(())
    }

    async fn account(&self, _: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        Ok(None)
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn create_api_key(&self, _: &ApiKeyRecord) -> Result<(), StoreError> {
        Ok(())
    }

    async fn api_key(&self, _: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(None)
    }

    async fn rotate_auth_token(&self, _: AccountId, _: [u8; 32]) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn rehash_credential(
        &self,
        _: crate::tenants::StoredCredential,
        _: [u8; 32],
        _: [u8; 32],
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn api_keys(&self, _: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn revoke_api_key(&self, _: AccountId, _: ApiKeyId) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let mut state = self.state();
        state.services.insert(service.id, service.clone());
        Ok(())
    }

    async fn services(
        &self,
        _: AccountId,
        _: Option<ServiceId>,
        _: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn update_service(&self, _: &ServiceRecord) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn delete_service(&self, _: ServiceId) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn create_application(
        &self,
        _: &ServiceRecord,
        _: &Application,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        Ok(self.state().services.get(&id).cloned())
    }

    async fn application(&self, _: ApplicationId) -> Result<Option<Application>, StoreError> {
        Ok(None)
    }

    async fn application_by_api_key(&self, _: [u8; 32]) -> Result<Option<Application>, StoreError> {
        Ok(None)
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        Ok(Vec::new())
    }

    async fn rotate_application_secret(
        &self,
        _: ApplicationId,
        _: [u8; 32],
        _: [u8; 32],
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn insert_token(&self, _: &AccessToken) -> Result<(), StoreError> {
        Ok(())
    }

    async fn token(&self, _: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        Ok(None)
    }

    async fn revoke_token(&self, _: [u8; 32], _: ApplicationId) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// Operators and sessions kept as the backends keep them (emails unique, updates keep id,
/// email and creation time), for the operators' unit tests.
impl LimitStore for FakeStore {
    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut state = self.state();
        let mut counted = state.count(key, window_ms, now);
        if counted.count < limit {
            state.hit(key, now);
            counted = state.count(key, window_ms, now);
            counted.allowed = true;
        }
        Ok(counted)
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        Ok(self.state().count(key, window_ms, now))
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        let mut state = self.state();
        let active = state.quarantines.iter().any(|q| {
            q.prefix == quarantine.prefix
                && q.service == quarantine.service
                && q.until > quarantine.created_at
        });
        if !active {
            state.quarantines.push(quarantine.clone());
        }
        Ok(!active)
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        Ok(self
            .state()
            .quarantines
            .iter()
            .find(|q| q.prefix == prefix && q.service.is_none_or(|s| s == service) && q.until > now)
            .cloned())
    }

    async fn quarantines(&self, _: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        Ok(Vec::new())
    }

    async fn lift_quarantine(&self, _: &str, _: Option<ServiceId>) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        let mut state = self.state();
        let total = state.spends.entry(key.to_string()).or_default();
        if *total + amount > cap {
            return Ok(None);
        }
        *total += amount;
        Ok(Some(*total))
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        self.state().safe_numbers.push((account, entry.clone()));
        Ok(entry.clone())
    }

    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        Ok(self
            .state()
            .safe_numbers
            .iter()
            .find(|(a, entry)| *a == account && entry.phone == phone)
            .map(|(_, entry)| entry.clone()))
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        Ok(self.state().safe_numbers.iter().any(|(a, _)| *a == account))
    }

    async fn remove_safe_number(&self, _: AccountId, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl EventStore for FakeStore {
    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        self.state().events.push(event.clone());
        Ok(())
    }

    async fn events(&self, _: &EventFilter) -> Result<Vec<Event>, StoreError> {
        Ok(Vec::new())
    }

    async fn create_webhook(&self, _: &Webhook) -> Result<(), StoreError> {
        Ok(())
    }

    async fn webhooks(&self, _: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        Ok(Vec::new())
    }

    async fn update_webhook(&self, _: &Webhook) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn delete_webhook(&self, _: ServiceId, _: uuid::Uuid) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn claim_webhook_jobs(
        &self,
        _: Timestamp,
        _: Timestamp,
        _: u32,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        Ok(Vec::new())
    }

    async fn webhook_job_done(
        &self,
        _: uuid::Uuid,
        _: &WebhookOutcome,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn replay_webhook_post(
        &self,
        _: uuid::Uuid,
        _: uuid::Uuid,
        _: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn webhook_log(&self, _: uuid::Uuid, _: u32) -> Result<Vec<WebhookLogEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn active_services(&self, _: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        Ok(Vec::new())
    }

    async fn open_alert(&self, _: &str, _: Timestamp) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn close_alert(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// The delivery port: records every job and answers its first try as sent by "fake" (or
/// refuses every channel when `serves` is false).
pub(super) struct FakeDispatch<C> {
    pub jobs: Mutex<Vec<DeliveryJob>>,
    pub serves: bool,
    pub clock: C,
}

impl<C: Clock> FakeDispatch<C> {
    /// The jobs dispatched so far.
    pub fn jobs(&self) -> Vec<DeliveryJob> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<C: Clock> Dispatch for FakeDispatch<C> {
    fn dispatch(&self, job: DeliveryJob) -> Pin<Box<dyn Future<Output = Option<FirstTry>> + Send>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(job);
        let update = DeliveryUpdate {
            provider: Some("fake".into()),
            ..DeliveryUpdate::status(DeliveryStatus::Sent)
        };
        Box::pin(std::future::ready(Some((update, self.clock.now()))))
    }

    fn serves(&self, _: Channel, _: Option<&str>, _: Option<&[String]>) -> bool {
        self.serves
    }
}

/// The vault the harness's verifier derives from its secret (`[7; 32]`).
pub(super) fn test_vault() -> crate::vault::Vault {
    crate::vault::Vault::new(&crate::code::ServerSecret::from_bytes([7; 32]), &[])
}
