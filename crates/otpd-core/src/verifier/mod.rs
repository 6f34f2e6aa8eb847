//! The verification use cases every dialect calls: start, read, check, cancel, and the
//! re-issue of a code whose delivery was interrupted by a restart.
//!
//! By concern: [`request`] holds what a start takes and answers and the ports it talks to,
//! `protections` the abuse rules a start passes, `start` the start itself, `jobs` the
//! sweeper's and delivery worker's calls; this module the engine and its reads and checks.

mod jobs;
pub(crate) mod protections;
mod pumping;
mod request;
mod start;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use request::{
    DeliveryJob, Dispatch, FirstTry, Lookup, MAX_SENDS, Observer, PriceTable, StartError,
    StartRequest, Started,
};

use std::sync::Arc;

use crate::clock::Clock;
use crate::code::{CodeHasher, OtpCode};
use crate::ids::{ServiceId, VerificationId};
use crate::store::{
    CheckResult, DeliveryStore, EventStore, LimitStore, StoreError, TenantStore, VerificationStore,
};
use crate::verification::{
    Candidate, CheckCounting, CheckOutcome, StatusChange, Verification, VerificationStatus,
};

/// The default observer: nothing.
struct Unobserved;

impl Observer for Unobserved {
    fn verification(&self, _: &str, _: &Verification) {}
    fn refused(&self, _: &str) {}
}

/// The verification engine: code generation, hashing, rendering and the store, wired once.
pub struct Verifier<S, C> {
    store: S,
    clock: C,
    hasher: CodeHasher,
    vault: Arc<crate::vault::Vault>,
    dispatch: Arc<dyn Dispatch>,
    prices: PriceTable,
    abuse: crate::abuse::AbusePolicy,
    observer: Arc<dyn Observer>,
}

/// The engine needs every port but the callback outbox (which only the callback worker
/// drains): an in-memory fake of these five is enough to unit-test it.
impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// Wires the engine.
    pub fn new(
        store: S,
        clock: C,
        hasher: CodeHasher,
        dispatch: Arc<dyn Dispatch>,
        prices: PriceTable,
    ) -> Self {
        let vault = Arc::new(crate::vault::Vault::new(hasher.secret(), hasher.previous()));
        Verifier {
            store,
            clock,
            hasher,
            vault,
            dispatch,
            prices,
            abuse: crate::abuse::AbusePolicy::default(),
            observer: Arc::new(Unobserved),
        }
    }

    /// The engine reporting to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The engine keying its destination counters with `vault` (by default the server
    /// secret's current key alone; the binary passes the vault with the rotation's keys).
    pub fn with_vault(mut self, vault: Arc<crate::vault::Vault>) -> Self {
        self.vault = vault;
        self
    }

    /// The engine with these protections instead of the defaults.
    pub fn with_abuse_policy(mut self, abuse: crate::abuse::AbusePolicy) -> Self {
        self.abuse = abuse;
        self
    }

    /// The management operations (services, webhooks, safe list, history, quarantines).
    pub fn manage(&self) -> crate::manage::Management<'_, S, C> {
        crate::manage::Management::new(&self.store, &self.clock)
    }

    /// The clock behind the engine.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Reads a verification on behalf of `service`, with its status as of now.
    pub async fn get(&self, service: ServiceId, id: VerificationId) -> Result<Lookup, StoreError> {
        let Some(mut verification) = self.store.verification(id).await? else {
            return Ok(Lookup::NotFound);
        };
        if verification.service_id != service {
            return Ok(Lookup::WrongService);
        }
        verification.status = verification.status_at(self.clock.now());
        Ok(Lookup::Found(Box::new(verification)))
    }

    /// The newest unexpired verification of `service` to `to`, if any (any status).
    pub async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
    ) -> Result<Option<Verification>, StoreError> {
        self.store.latest_for(service, to, self.clock.now()).await
    }

    /// Checks a code the user typed (with PSD2 details where the dialect has them). One
    /// atomic store step counts the attempt and decides.
    pub async fn check(
        &self,
        service: ServiceId,
        id: VerificationId,
        typed: &str,
        amount: Option<String>,
        payee: Option<String>,
    ) -> Result<CheckResult, StoreError> {
        let now = self.clock.now();
        // The counters are keyed by the destination, which the store's own step reads: it
        // applies these rules to the verification it loads (of this service; a check of
        // another service's verification or of none counts nothing).
        let counting = CheckCounting {
            failures_window_ms: self.abuse.failed_checks.map(|limit| limit.window_ms()),
            approvals: self.abuse.pumping.map(|policy| {
                (
                    i64::from(policy.window_seconds) * 1000,
                    policy.prefix_digits,
                )
            }),
        };
        let code = OtpCode::from_user_input(typed);
        let candidate = Candidate {
            code_hash: self.hasher.hash(id, &code),
            previous_key_hashes: self.hasher.previous_hashes(id, &code),
            amount,
            payee,
            counting,
        };
        let result = self.store.check_code(id, service, candidate, now).await?;
        if let Some(verification) = &result.verification {
            let event = match result.outcome {
                CheckOutcome::Approved => Some("approved"),
                CheckOutcome::WrongCode => Some("wrong_code"),
                CheckOutcome::MaxAttemptsNow => Some("max_attempts"),
                CheckOutcome::ExpiredNow => Some("expired"),
                _ => None,
            };
            if let Some(event) = event {
                self.observer.verification(event, verification);
            }
        }
        Ok(result)
    }

    /// Cancels (or approves out of band) a pending verification.
    pub async fn set_status(
        &self,
        service: ServiceId,
        id: VerificationId,
        target: VerificationStatus,
    ) -> Result<StatusChange, StoreError> {
        self.store
            .set_status(id, service, target, self.clock.now())
            .await
    }
}
