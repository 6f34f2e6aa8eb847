//! The calls of the background workers: expiry, a delivery resumed after a restart, and
//! the next channel of a fallback chain.

use super::start::new_delivery;
use super::{DeliveryJob, MAX_SENDS, Verifier};
use crate::clock::Clock;
use crate::code::OtpCode;
use crate::delivery::DeliveryAttempt;
use crate::store::{
    DeliveryStore, EventStore, LimitStore, ResendOutcome, StoreError, TenantStore,
    VerificationStore,
};
use crate::verification::{Channel, Verification, VerificationStatus};

impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// Records as expired the pending verifications whose code has expired (with their events
    /// and callbacks); the sweeper calls it.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_due(self.clock.now(), 500).await?;
        for verification in &expired {
            self.observer.verification("expired", verification);
        }
        Ok(expired.len())
    }

    /// For a delivery that was queued but never sent (the process stopped first): the job to
    /// send it now, with the same code re-derived from its seed. `None` when the verification
    /// has ended, or when its code was the caller's own and so cannot be recovered.
    pub async fn resume(
        &self,
        delivery: &DeliveryAttempt,
        verification: &Verification,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        if verification.status_at(self.clock.now()) != VerificationStatus::Pending {
            return Ok(None);
        }
        let Some(code) = self.code_of(verification) else {
            return Ok(None);
        };
        let Some(service) = self.store.service(verification.service_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.job(&service, verification, delivery, &code)))
    }

    /// Queues the next channel of the service's fallback chain (after a delivery that
    /// failed, was reported undelivered, or got no receipt in time), with the same
    /// code: the one in memory, else re-derived from the seed. `None` when the verification
    /// has ended, no channel is left, the code cannot be recovered, or it already had the
    /// maximum number of sends.
    pub async fn fall_back(
        &self,
        verification: &Verification,
        remaining: &[Channel],
        code: Option<&OtpCode>,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        let now = self.clock.now();
        let Some(&next) = remaining.first() else {
            return Ok(None);
        };
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(None);
        }
        let Some(code) = code.cloned().or_else(|| self.code_of(verification)) else {
            return Ok(None);
        };
        let Some(service) = self.store.service(verification.service_id).await? else {
            return Ok(None);
        };
        let delivery = new_delivery(verification.id, next, now);
        match self
            .store
            .resend(verification.id, &delivery, None, MAX_SENDS, now)
            .await?
        {
            ResendOutcome::Queued(verification) => {
                let mut job = self.job(&service, &verification, &delivery, &code);
                job.fallback = remaining[1..].to_vec();
                Ok(Some(job))
            }
            ResendOutcome::TooManySends | ResendOutcome::NotPending => Ok(None),
        }
    }
}
