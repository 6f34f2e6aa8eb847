//! The verifications: the atomic start, the atomic check, status changes, resends and expiry, on either backend.

use otpd_core::store::{
    CheckResult, DeliveryAttempt, ResendOutcome, StartDecision, StartPlan, VerificationStore,
};
use otpd_core::{
    Candidate, CodeHash, ServiceId, StatusChange, StoreError, Timestamp, Verification,
    VerificationId, VerificationStatus,
};

use super::AnyStore;

impl VerificationStore for AnyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping())
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

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        delegate!(self, s => s.expire_due(now, limit))
    }
}
