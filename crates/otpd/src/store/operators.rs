//! Console operators and their sessions, on either backend (never cached: a disable or a
//! sign-out must hold at once on every node).

use otpd_core::StoreError;
use otpd_core::clock::Timestamp;
use otpd_core::ids::OperatorId;
use otpd_core::operators::{Operator, OperatorSession};
use otpd_core::store::OperatorStore;

use super::AnyStore;

impl OperatorStore for AnyStore {
    async fn create_operator(&self, operator: &Operator) -> Result<(), StoreError> {
        delegate!(self, s => s.create_operator(operator))
    }

    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError> {
        delegate!(self, s => s.operator(id))
    }

    async fn operator_by_email(&self, email: &str) -> Result<Option<Operator>, StoreError> {
        delegate!(self, s => s.operator_by_email(email))
    }

    async fn operator_by_invitation(
        &self,
        invitation_hash: [u8; 32],
    ) -> Result<Option<Operator>, StoreError> {
        delegate!(self, s => s.operator_by_invitation(invitation_hash))
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        delegate!(self, s => s.operators())
    }

    async fn update_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        delegate!(self, s => s.update_operator(operator))
    }

    async fn record_failed_sign_in(
        &self,
        id: OperatorId,
        lock_after: u32,
        locked_until: Timestamp,
    ) -> Result<u32, StoreError> {
        delegate!(self, s => s.record_failed_sign_in(id, lock_after, locked_until))
    }

    async fn create_session(&self, session: &OperatorSession) -> Result<(), StoreError> {
        delegate!(self, s => s.create_session(session))
    }

    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<OperatorSession>, StoreError> {
        delegate!(self, s => s.session(token_hash))
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: Timestamp) -> Result<bool, StoreError> {
        delegate!(self, s => s.touch_session(token_hash, at))
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        delegate!(self, s => s.delete_session(token_hash))
    }

    async fn delete_sessions_of(&self, operator: OperatorId) -> Result<u64, StoreError> {
        delegate!(self, s => s.delete_sessions_of(operator))
    }

    async fn delete_stale_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.delete_stale_sessions(idle_before, created_before))
    }
}
