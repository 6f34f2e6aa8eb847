//! The store chosen at start by `database_url`: SQLite (embedded default) or PostgreSQL
//! (several nodes). One type so the rest of the binary is not generic over the backend, with
//! a short per-node cache of the reads every request makes (its service and, for API-key
//! callers, its application). Twilio-style credentials (accounts' auth tokens and `SK…` API
//! keys) are read from the database on every request: they can be rotated or revoked, and
//! that must hold at once on every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{
    CallbackJob, CheckResult, DeliveryAttempt, DeliveryUpdate, OutboxStats, Quarantine, RateCount,
    ReceiptUpdate, ResendOutcome, SafeNumber, ServiceRecord, StartDecision, StartPlan,
};
use otpd_core::{
    AccountId, ApiKeyId, ApplicationId, Candidate, CodeHash, DeliveryId, ServiceId, StatusChange,
    Store, StoreError, Timestamp, Verification, VerificationId, VerificationStatus,
};
use otpd_store_postgres::PgStore;
use otpd_store_sqlite::SqliteStore;
use uuid::Uuid;

/// Either backend.
#[derive(Clone)]
pub enum Backend {
    /// The embedded default.
    Sqlite(SqliteStore),
    /// Shared by several nodes.
    Postgres(PgStore),
}

/// How long a cached service or application answers for the database. A change made on this
/// node is seen at once (it clears the entry); one made on another node within this time.
pub const READ_CACHE_TTL: Duration = Duration::from_secs(1);

/// Entries kept per cache before it is emptied (a bound on memory, not a tuning knob).
const READ_CACHE_ENTRIES: usize = 10_000;

/// A small time-bounded map; `None` results are cached too (an unknown key stays unknown
/// for the TTL, which spares the database a flood of bad keys).
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < READ_CACHE_TTL)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= READ_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

struct ReadCache {
    services: TtlCache<ServiceId, Option<ServiceRecord>>,
    applications: TtlCache<[u8; 32], Option<Application>>,
    /// Whether an account has any safe-list entry (every start asks for its number).
    safe_lists: TtlCache<AccountId, bool>,
}

/// The configured backend with its read cache; cheap to clone.
#[derive(Clone)]
pub struct AnyStore {
    backend: Backend,
    cache: Arc<ReadCache>,
}

impl AnyStore {
    /// Wraps a backend.
    pub fn new(backend: Backend) -> Self {
        AnyStore {
            backend,
            cache: Arc::new(ReadCache {
                services: TtlCache::new(),
                applications: TtlCache::new(),
                safe_lists: TtlCache::new(),
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// Calls the backend. Each backend's future is boxed: PostgreSQL's (sqlx) are kilobytes, and
/// unboxed they made every caller's future — the handlers' — as large, copied whole at each
/// move (a fifth of a start's request-path instructions were `memcpy`).
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($store) => Box::pin($call).await,
            Backend::Postgres($store) => Box::pin($call).await,
        }
    };
}

impl Store for AnyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping())
    }
    async fn create_verification(
        &self,
        v: &Verification,
        d: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.create_verification(v, d))
    }
    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        delegate!(self, s => s.start_verification(plan))
    }
    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        delegate!(self, s => s.verification(id))
    }
    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        delegate!(self, s => s.check_code(id, service, candidate, now))
    }
    async fn set_status(
        &self,
        id: VerificationId,
        service: ServiceId,
        target: VerificationStatus,
        now: Timestamp,
    ) -> Result<StatusChange, StoreError> {
        delegate!(self, s => s.set_status(id, service, target, now))
    }
    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        delegate!(self, s => s.latest_for(service, to, now))
    }
    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        delegate!(self, s => s.resend(id, delivery, new_hash, max_sends, now))
    }
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
    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        delegate!(self, s => s.record_receipt(receipt, now))
    }

    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        delegate!(self, s => s.rate_hit(key, window_ms, limit, now))
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        delegate!(self, s => s.rate_count(key, window_ms, now))
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        delegate!(self, s => s.quarantine(quarantine))
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        delegate!(self, s => s.active_quarantine(prefix, service, now))
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        delegate!(self, s => s.quarantines(now))
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.lift_quarantine(prefix, service))
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        delegate!(self, s => s.add_spend(key, amount, cap))
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        let added = delegate!(self, s => s.add_safe_number(account, entry));
        self.cache.safe_lists.forget(&account);
        added
    }

    /// Asks the backend only when the account has safe-list entries (cached per node).
    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        if !self.has_safe_numbers(account).await? {
            return Ok(None);
        }
        delegate!(self, s => s.safe_number(account, phone))
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        if let Some(any) = self.cache.safe_lists.get(&account) {
            return Ok(any);
        }
        let any = delegate!(self, s => s.has_safe_numbers(account))?;
        self.cache.safe_lists.put(account, any);
        Ok(any)
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let removed = delegate!(self, s => s.remove_safe_number(account, phone));
        self.cache.safe_lists.forget(&account);
        removed
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.release_deliveries(ids, now))
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        delegate!(self, s => s.expire_due(now, limit))
    }

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

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<otpd_core::events::WebhookLogEntry>, StoreError> {
        delegate!(self, s => s.webhook_log(webhook, limit))
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

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        delegate!(self, s => s.active_services(since))
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        delegate!(self, s => s.open_alert(key, now))
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.close_alert(key))
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        delegate!(self, s => s.outbox_stats())
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        delegate!(self, s => s.claim_due_fallbacks(now, limit))
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
    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_account(account))
    }
    // Not cached: a rotated auth token or a revoked key must be refused at once on every node
    // (a PostgreSQL cluster, or the server while `otpd apikey revoke` runs beside it).
    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        delegate!(self, s => s.account(id))
    }
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_api_key(key))
    }
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        delegate!(self, s => s.api_key(id))
    }
    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.rotate_auth_token(id, auth_token_hash))
    }
    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        delegate!(self, s => s.api_keys(account))
    }
    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_api_key(account, id))
    }
    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_service(service))
    }
    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        delegate!(self, s => s.services(account, after, limit))
    }
    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let updated = delegate!(self, s => s.update_service(service));
        self.cache.services.forget(&service.id);
        updated
    }
    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        let deleted = delegate!(self, s => s.delete_service(id));
        self.cache.services.forget(&id);
        deleted
    }
    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.create_application(service, application))
    }
    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        if let Some(cached) = self.cache.services.get(&id) {
            return Ok(cached);
        }
        let service = delegate!(self, s => s.service(id))?;
        self.cache.services.put(id, service.clone());
        Ok(service)
    }
    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        delegate!(self, s => s.application(id))
    }
    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        if let Some(cached) = self.cache.applications.get(&api_key_hash) {
            return Ok(cached);
        }
        let application = delegate!(self, s => s.application_by_api_key(api_key_hash))?;
        self.cache
            .applications
            .put(api_key_hash, application.clone());
        Ok(application)
    }
    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        delegate!(self, s => s.applications())
    }
    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let rotated =
            delegate!(self, s => s.rotate_application_secret(id, secret_hash, api_key_hash));
        // The old key's hash is not known here: forget every cached key of this node.
        self.cache.applications.clear();
        rotated
    }
    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_token(token))
    }
    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        delegate!(self, s => s.token(token_hash))
    }
    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_token(token_hash, application))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A rotated auth token and a revoked API key are seen at once by another node that had
    /// just read them (credentials are not cached).
    #[tokio::test]
    async fn a_rotated_token_and_a_revoked_key_are_seen_at_once_by_another_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        let this_node = AnyStore::new(Backend::Sqlite(SqliteStore::open(&path).unwrap()));
        let other_node = AnyStore::new(Backend::Sqlite(SqliteStore::open(&path).unwrap()));
        let account = AccountRecord {
            id: AccountId::generate(),
            name: "mine".into(),
            auth_token_hash: [1; 32],
            created_at: Timestamp(1_700_000_000_000),
        };
        this_node.create_account(&account).await.unwrap();
        let key = ApiKeyRecord {
            id: ApiKeyId::generate(),
            account_id: account.id,
            name: "key".into(),
            secret_hash: [2; 32],
            created_at: Timestamp(1_700_000_000_000),
        };
        this_node.create_api_key(&key).await.unwrap();
        assert_eq!(
            other_node.account(account.id).await.unwrap(),
            Some(account.clone())
        );
        assert_eq!(other_node.api_key(key.id).await.unwrap(), Some(key.clone()));

        assert!(
            this_node
                .rotate_auth_token(account.id, [3; 32])
                .await
                .unwrap()
        );
        assert!(this_node.revoke_api_key(account.id, key.id).await.unwrap());
        let seen = other_node.account(account.id).await.unwrap().unwrap();
        assert_eq!(seen.auth_token_hash, [3; 32]);
        assert_eq!(other_node.api_key(key.id).await.unwrap(), None);
    }
}
