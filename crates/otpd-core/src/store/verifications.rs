//! The verification lifecycle in the store: the atomic start, the atomic check, status
//! changes, resends and expiry.

use std::future::Future;

use crate::abuse::{LimitHit, Spend};
use crate::clock::Timestamp;
use crate::code::CodeHash;
use crate::delivery::DeliveryAttempt;
use crate::ids::{ServiceId, VerificationId};
use crate::store::StoreError;
use crate::verification::{
    Candidate, CheckOutcome, StatusChange, Verification, VerificationStatus,
};

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

/// The result of an atomic check: what happened and the verification as it now stands.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub outcome: CheckOutcome,
    /// The verification after the check, when it exists and is visible.
    pub verification: Option<Verification>,
}

/// The verifications: every method is one atomic step; `check_code` and `set_status` decide
/// with the core's rules inside that step, so concurrent calls from any number of tasks or
/// nodes cannot approve twice or lose a counted attempt.
pub trait VerificationStore: Send + Sync + 'static {
    /// Succeeds when the store answers a trivial query (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Decides and writes a new verification's start in one atomic step: cooldown, then
    /// lockout, then the limits in order, then the spend; when all pass, counts the limits,
    /// adds the spend and writes the verification with its first delivery in one
    /// transaction. A refusal writes nothing.
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

    /// Records as expired up to `limit` pending verifications whose code expired by `now`
    /// (events and status callbacks included), so expiry is reported when it happens, not
    /// only when someone looks. Returns them.
    fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Verification>, StoreError>> + Send;
}
