//! The storage port. Each backend (SQLite now, PostgreSQL later) implements [`Store`] and must
//! pass the shared behaviour suite in `otpd-store-tests`.

use std::future::Future;

use crate::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use crate::clock::Timestamp;
use crate::code::CodeHash;
use crate::ids::{AccountId, ApiKeyId, ApplicationId, DeliveryId, ServiceId, VerificationId};
use crate::settings::OtpSettings;
use crate::verification::{
    Candidate, Channel, CheckOutcome, DeliveryStatus, StatusChange, Verification,
    VerificationStatus,
};

/// A storage failure. Never a client's fault, so dialects answer it with a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused the statement.
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached right now (connection lost, pool exhausted, timeout);
    /// worth retrying, so dialects answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row did not decode into a valid domain value (corruption or a migration bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A uniqueness rule was broken (duplicate id or name).
    #[error("conflict: {0}")]
    Conflict(String),
}

/// One delivery attempt of a verification's code.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// Its id.
    pub id: DeliveryId,
    /// The verification it delivers.
    pub verification_id: VerificationId,
    /// The channel used.
    pub channel: Channel,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Which provider took it, once one did.
    pub provider: Option<String>,
    /// The provider's message id, once known.
    pub provider_ref: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The provider's error code, if it reported one.
    pub error_code: Option<String>,
    /// SMS parts billed, when the provider said.
    pub segments: Option<u32>,
    /// What the provider charged, when it said.
    pub price: Option<f64>,
    /// Currency of `price`.
    pub price_unit: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl DeliveryAttempt {
    /// A fresh `queued` attempt of `verification` on `channel`.
    pub fn queued(verification: VerificationId, channel: Channel, now: Timestamp) -> Self {
        DeliveryAttempt {
            id: DeliveryId::generate(),
            verification_id: verification,
            channel,
            status: DeliveryStatus::Queued,
            provider: None,
            provider_ref: None,
            error: None,
            error_code: None,
            segments: None,
            price: None,
            price_unit: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl DeliveryAttempt {
    /// The attempt after `update` was recorded at `now`, exactly as
    /// [`Store::update_delivery`] stores it (so a start can answer without reading it back).
    pub fn updated(mut self, update: &DeliveryUpdate, now: Timestamp) -> Self {
        self.status = update.status;
        self.provider = update.provider.clone().or(self.provider);
        self.provider_ref = update.provider_ref.clone().or(self.provider_ref);
        self.error = update.error.clone();
        self.error_code = update.error_code.clone();
        self.segments = update.segments.or(self.segments);
        self.price = update.price.or(self.price);
        self.price_unit = update.price_unit.clone().or(self.price_unit);
        self.updated_at = now;
        self
    }
}

/// What the delivery worker learned about one attempt (a send's outcome, or a retry
/// scheduled). Fields left `None` keep their stored value, except `error` and `error_code`,
/// which describe this outcome only.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    /// The attempt's new status.
    pub status: DeliveryStatus,
    /// The provider that took (or last refused) it.
    pub provider: Option<String>,
    /// The provider's message id.
    pub provider_ref: Option<String>,
    /// Why it failed (or why the last try failed, for a retry).
    pub error: Option<String>,
    /// The provider's error code.
    pub error_code: Option<String>,
    /// SMS parts billed.
    pub segments: Option<u32>,
    /// Price charged.
    pub price: Option<f64>,
    /// Currency of `price`.
    pub price_unit: Option<String>,
    /// For a `queued` attempt waiting to retry: this node keeps it until then.
    pub lease_until: Option<Timestamp>,
    /// For a `sent` attempt with a fallback channel left: when to fall back if no receipt
    /// has said `delivered` by then.
    pub fallback_at: Option<Timestamp>,
}

impl DeliveryUpdate {
    /// An update to `status` that changes nothing else.
    pub fn status(status: DeliveryStatus) -> Self {
        DeliveryUpdate {
            status,
            provider: None,
            provider_ref: None,
            error: None,
            error_code: None,
            segments: None,
            price: None,
            price_unit: None,
            lease_until: None,
            fallback_at: None,
        }
    }
}

/// A delivery receipt as the store applies it: matched by provider and message id.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptUpdate {
    /// The configured provider name the receipt came to.
    pub provider: String,
    /// The provider's message id.
    pub provider_ref: String,
    /// Reported status.
    pub status: DeliveryStatus,
    /// Reported error code.
    pub error_code: Option<String>,
    /// Reported final price.
    pub price: Option<f64>,
    /// Reported parts.
    pub segments: Option<u32>,
}

/// The one-word answer support teams read about a verification's messages (the
/// Symantec VIP summary). Derived from the verification and its attempts, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmissionSummary {
    /// Every attempt was refused by the providers: no message left the platform.
    Failed,
    /// A message was accepted (or is still being tried) and the code has not been verified:
    /// in flight, delivered but unused, or answered with a wrong code.
    Sent,
    /// The code was verified.
    Success,
}

impl TransmissionSummary {
    /// Derives the summary.
    pub fn of(status: crate::VerificationStatus, attempts: &[DeliveryAttempt]) -> Self {
        if status == crate::VerificationStatus::Approved {
            TransmissionSummary::Success
        } else if !attempts.is_empty()
            && attempts.iter().all(|a| a.status == DeliveryStatus::Failed)
        {
            TransmissionSummary::Failed
        } else {
            TransmissionSummary::Sent
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransmissionSummary::Failed => "FAILED",
            TransmissionSummary::Sent => "SENT",
            TransmissionSummary::Success => "SUCCESS",
        }
    }
}

impl DeliveryStatus {
    /// Order of progress: receipts arrive late, twice or out of order, and a status never
    /// moves back (queued < sent < delivered / undelivered / failed, which are final).
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed => 2,
        }
    }
}

/// How long a freshly written delivery belongs to the node that wrote it before another node
/// may take it over (the writer sends it at once; the lease only matters if that node dies).
pub const DELIVERY_LEASE_SECONDS: i64 = 60;

/// A service's settings with its owner, as the dialects need them to start a verification.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    /// Its id.
    pub id: ServiceId,
    /// The owning account.
    pub account_id: AccountId,
    /// A human name.
    pub name: String,
    /// OTP defaults.
    pub settings: OtpSettings,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its name or settings last changed.
    pub updated_at: Timestamp,
}

/// What a resend concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum ResendOutcome {
    /// A new delivery attempt was queued.
    Queued(Box<Verification>),
    /// The verification already has the maximum number of sends.
    TooManySends,
    /// The verification is no longer pending.
    NotPending,
}

/// What a rate-limited action learned from its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    /// Whether the event was counted (it was under the limit).
    pub allowed: bool,
    /// Events in the window now (including this one when allowed).
    pub count: u32,
    /// When the oldest event in the window leaves it (a slot frees up); `None` when the
    /// window is empty.
    pub frees_at: Option<Timestamp>,
}

/// A destination prefix the SMS-pumping defence stopped sending to.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantine {
    /// `+` and digits, e.g. `+44740`.
    pub prefix: String,
    /// The service whose starts it stops; `None`: every service (server-wide, only ever set
    /// by the operator, so one tenant's traffic never blocks another's).
    pub service: Option<ServiceId>,
    /// Why (volume and approval rate when it was decided).
    pub reason: String,
    /// When it lifts by itself.
    pub until: Timestamp,
    /// When it was decided.
    pub created_at: Timestamp,
}

/// A counter a start must pass: fewer than `max` events under `key` in the last `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// The counter's key (scope and subject, e.g. `dest:{service}:{number}`).
    pub key: String,
    /// The sliding window.
    pub window_ms: i64,
    /// Events allowed in the window (`u32::MAX`: counted, never refused).
    pub max: u32,
}

/// A cost to add to a capped spend (the daily budget).
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    /// The spend's key (service and day).
    pub key: String,
    /// This start's cost.
    pub amount: f64,
    /// The cap the total may not pass.
    pub cap: f64,
}

/// Everything a new verification's start decides and writes, as one atomic store step:
/// concurrent starts cannot slip past a limit or the cooldown together, a refused start
/// leaves no trace in the counters, and the hot path costs one round trip (one writer job
/// on SQLite, one transaction on PostgreSQL).
#[derive(Debug, Clone, PartialEq)]
pub struct StartPlan {
    /// The verification to write (its `created_at` is "now" for every check).
    pub verification: Verification,
    /// Its first delivery attempt.
    pub delivery: DeliveryAttempt,
    /// Refused while the newest unexpired verification of the service to the same recipient
    /// had a send less than this many seconds ago (0: no cooldown).
    pub cooldown_seconds: u32,
    /// Refused when this counter is at its maximum already (the wrong-code lockout; read,
    /// not counted).
    pub lockout: Option<LimitHit>,
    /// Checked in order, the first at its maximum refusing the start; all counted when it
    /// goes through.
    pub limits: Vec<LimitHit>,
    /// Added to a capped spend when it goes through; refused past the cap.
    pub spend: Option<Spend>,
}

/// What the atomic start step decided. Only `Created` wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// The verification, its delivery, their events and the counters were written.
    Created,
    /// A send to the recipient was too recent; allowed again at `allowed_at`.
    Cooldown {
        /// When a start is allowed again.
        allowed_at: Timestamp,
    },
    /// The lockout counter is at its maximum.
    LockedOut {
        /// When its oldest event leaves the window.
        frees_at: Option<Timestamp>,
    },
    /// `plan.limits[index]` is at its maximum.
    Limited {
        /// Which limit.
        index: usize,
        /// When its oldest event leaves the window.
        frees_at: Option<Timestamp>,
    },
    /// The spend would pass its cap.
    OverBudget,
}

/// A number an account exempts from fraud checks (Twilio's SafeList entry).
#[derive(Debug, Clone, PartialEq)]
pub struct SafeNumber {
    /// Its id (the `GN` SID).
    pub id: uuid::Uuid,
    /// The E.164 number.
    pub phone: String,
    /// When it was added.
    pub created_at: Timestamp,
}

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

/// The result of an atomic check: what happened and the verification as it now stands.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The outcome.
    pub outcome: CheckOutcome,
    /// The verification after the check, when it exists and is visible.
    pub verification: Option<Verification>,
}

/// The storage operations the core needs. Every method is one atomic step; `check_code` and
/// `cancel` decide with the core's rules inside that step, so concurrent calls from any
/// number of tasks or nodes cannot approve twice or lose a counted attempt.
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store answers a trivial query (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes a verification and its first delivery attempt in one transaction.
    fn create_verification(
        &self,
        verification: &Verification,
        delivery: &DeliveryAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Decides and writes a new verification's start in one atomic step: cooldown, then
    /// lockout, then the limits in order, then the spend; when all pass, counts the limits,
    /// adds the spend and writes the verification with its first delivery (as
    /// [`Store::create_verification`]). A refusal writes nothing.
    fn start_verification(
        &self,
        plan: &StartPlan,
    ) -> impl Future<Output = Result<StartDecision, StoreError>> + Send;

    /// Reads one verification.
    fn verification(
        &self,
        id: VerificationId,
    ) -> impl Future<Output = Result<Option<Verification>, StoreError>> + Send;

    /// Atomically checks `candidate` against the stored hash of a verification owned by
    /// `service`, applies [`crate::decide_check`], and queues a status callback when the status
    /// changes and the verification has a callback URL. A verification of another service is
    /// left untouched and reported as `WrongService`.
    fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> impl Future<Output = Result<CheckResult, StoreError>> + Send;

    /// Atomically moves a pending verification owned by `service` to `target` (canceled, or
    /// approved out of band), queuing its callback. A verification found expired is recorded
    /// as expired.
    fn set_status(
        &self,
        id: VerificationId,
        service: ServiceId,
        target: VerificationStatus,
        now: Timestamp,
    ) -> impl Future<Output = Result<StatusChange, StoreError>> + Send;

    /// The newest verification of `service` to `to` that is unexpired at `now`, whatever its
    /// status (a resend needs it pending; a check by recipient wants to report max attempts).
    fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Verification>, StoreError>> + Send;

    /// Atomically queues another delivery of a pending verification unless it already has
    /// `max_sends` deliveries; `new_hash` replaces the code (a new caller-supplied code).
    fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> impl Future<Output = Result<ResendOutcome, StoreError>> + Send;

    /// Delivery attempts of one verification, oldest first.
    fn deliveries(
        &self,
        verification: VerificationId,
    ) -> impl Future<Output = Result<Vec<DeliveryAttempt>, StoreError>> + Send;

    /// Claims up to `limit` deliveries that are still queued although their lease has run out
    /// (the node that queued them stopped before sending), leasing them to the caller until
    /// `lease_until`, so exactly one node resumes each. A delivery is leased for
    /// [`DELIVERY_LEASE_SECONDS`] when it is written.
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
    /// the attempt already has a status at least as far along ([`DeliveryStatus::rank`]).
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

    /// Creates an account (the tenant, with its hashed auth token).
    fn create_account(
        &self,
        account: &AccountRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads an account.
    fn account(
        &self,
        id: AccountId,
    ) -> impl Future<Output = Result<Option<AccountRecord>, StoreError>> + Send;

    /// Creates an API key of an account.
    fn create_api_key(
        &self,
        key: &ApiKeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads an API key.
    fn api_key(
        &self,
        id: ApiKeyId,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;

    /// Replaces an account's auth token hash (the old token stops working); false when there
    /// is no such account.
    fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// An account's API keys in creation order (their hashes, never secrets).
    fn api_keys(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;

    /// Deletes an API key of `account` (it stops working); false when the account has no such
    /// key.
    fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a service of an existing account.
    fn create_service(
        &self,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Services of an account in creation order, starting after `after`, at most `limit`.
    fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ServiceRecord>, StoreError>> + Send;

    /// Replaces a service's name and settings. False when there is no such service.
    fn update_service(
        &self,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a service (it and its verifications stop being visible). False when absent.
    fn delete_service(
        &self,
        id: ServiceId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a service and an application bound to it, in one transaction, under an
    /// existing account.
    fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a service (not a deleted one).
    fn service(
        &self,
        id: ServiceId,
    ) -> impl Future<Output = Result<Option<ServiceRecord>, StoreError>> + Send;

    /// Reads an application by id.
    fn application(
        &self,
        id: ApplicationId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Finds the application owning an API key, by the key's keyed hash (O(1)).
    fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Every application, oldest first.
    fn applications(&self) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;

    /// Replaces an application's secret and API key hashes and revokes all its tokens.
    fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new access token (by its hash).
    fn insert_token(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finds a token by its keyed hash.
    fn token(
        &self,
        token_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<AccessToken>, StoreError>> + Send;

    /// Revokes a token of `application`. False when no such token exists for it.
    fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts an event under `key` if fewer than `limit` events happened in the `window_ms`
    /// before `now` (a sliding window, exact across restarts and nodes: one atomic step per
    /// key). Older events of the key are forgotten.
    fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateCount, StoreError>> + Send;

    /// Events under `key` in the `window_ms` before `now`, without counting one.
    fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateCount, StoreError>> + Send;

    /// Quarantines a prefix for its service (or server-wide) unless an active quarantine of
    /// that prefix and scope exists; true when this call created it.
    fn quarantine(
        &self,
        quarantine: &Quarantine,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The active quarantine at `now` that stops a start of `service` to `prefix`: the
    /// service's own or a server-wide one, if any.
    fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Quarantine>, StoreError>> + Send;

    /// Every quarantine active at `now`, of every service and server-wide, newest first.
    fn quarantines(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Quarantine>, StoreError>> + Send;

    /// Lifts the quarantine of `prefix` for `service` (`None`: the server-wide one only);
    /// false when there was none.
    fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds `amount` to the spend under `key` unless the total would pass `cap`; the new
    /// total, or `None` when refused (atomic, so concurrent spends never pass the cap).
    fn add_spend(
        &self,
        key: &str,
        amount: f64,
        cap: f64,
    ) -> impl Future<Output = Result<Option<f64>, StoreError>> + Send;

    /// Adds a number to an account's safe list; an existing entry is returned unchanged.
    fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> impl Future<Output = Result<SafeNumber, StoreError>> + Send;

    /// The account's safe-list entry for `phone`, if any.
    fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> impl Future<Output = Result<Option<SafeNumber>, StoreError>> + Send;

    /// Whether the account's safe list has any entry: most accounts have none, and a start
    /// then needs no per-number lookup (the binary's node cache keeps this answer).
    fn has_safe_numbers(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes a number from an account's safe list; false when it was not there.
    fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends this node's leases on still-queued deliveries (a graceful shutdown hands its
    /// unfinished work to the other nodes at once instead of after the lease).
    fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records as expired up to `limit` pending verifications whose code expired by `now`
    /// (events and status callbacks included), so expiry is reported when it happens, not
    /// only when someone looks. Returns them.
    fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Verification>, StoreError>> + Send;

    /// Stores an event that is not part of another change (a start refused by a protection).
    fn record_event(
        &self,
        event: &crate::events::Event,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events matching `filter`, oldest first.
    fn events(
        &self,
        filter: &crate::events::EventFilter,
    ) -> impl Future<Output = Result<Vec<crate::events::Event>, StoreError>> + Send;

    /// Creates a webhook of a service.
    fn create_webhook(
        &self,
        webhook: &crate::events::Webhook,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A service's webhooks, oldest first.
    fn webhooks(
        &self,
        service: ServiceId,
    ) -> impl Future<Output = Result<Vec<crate::events::Webhook>, StoreError>> + Send;

    /// Replaces a webhook's url, types, state and name; false when absent.
    fn update_webhook(
        &self,
        webhook: &crate::events::Webhook,
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
    ) -> impl Future<Output = Result<Vec<crate::events::WebhookJob>, StoreError>> + Send;

    /// Records a post's outcome: delivered (2xx), retry at `retry_at`, or given up.
    fn webhook_job_done(
        &self,
        id: uuid::Uuid,
        outcome: &crate::events::WebhookOutcome,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A webhook's delivery log, newest event first, at most `limit`.
    fn webhook_log(
        &self,
        webhook: uuid::Uuid,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::events::WebhookLogEntry>, StoreError>> + Send;

    /// Delivery attempts with their verifications, oldest first (Twilio's Attempts).
    fn attempts(
        &self,
        filter: &crate::events::AttemptFilter,
    ) -> impl Future<Output = Result<Vec<(DeliveryAttempt, Verification)>, StoreError>> + Send;

    /// Totals over the attempts matching `filter` (its `after` and `limit` are ignored).
    fn attempt_summary(
        &self,
        filter: &crate::events::AttemptFilter,
    ) -> impl Future<Output = Result<crate::events::AttemptSummary, StoreError>> + Send;

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

    /// How much work waits in the delivery and callback outboxes.
    fn outbox_stats(&self) -> impl Future<Output = Result<OutboxStats, StoreError>> + Send;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Timestamp, VerificationId, VerificationStatus};

    fn attempt(status: DeliveryStatus) -> DeliveryAttempt {
        DeliveryAttempt {
            status,
            ..DeliveryAttempt::queued(VerificationId::generate(), Channel::Sms, Timestamp(0))
        }
    }

    #[test]
    fn the_summary_is_derived_from_status_and_attempts() {
        use DeliveryStatus::*;
        let of = TransmissionSummary::of;
        let failed = [attempt(Failed), attempt(Failed)];
        assert_eq!(
            of(VerificationStatus::Pending, &failed),
            TransmissionSummary::Failed
        );
        let one_left = [attempt(Failed), attempt(Undelivered)];
        assert_eq!(
            of(VerificationStatus::Pending, &one_left),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(VerificationStatus::Pending, &[attempt(Queued)]),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(
                VerificationStatus::MaxAttemptsReached,
                &[attempt(Delivered)]
            ),
            TransmissionSummary::Sent
        );
        assert_eq!(
            of(VerificationStatus::Approved, &[attempt(Sent)]),
            TransmissionSummary::Success
        );
    }
}
