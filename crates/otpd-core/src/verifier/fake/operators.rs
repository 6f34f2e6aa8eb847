//! The operator and session port of the in-memory fake (console sign-in tests).

use super::FakeStore;
use crate::clock::Timestamp;
use crate::ids::OperatorId;
use crate::operators::{Operator, OperatorSession};
use crate::store::{OperatorStore, StoreError};

impl OperatorStore for FakeStore {
    async fn create_operator(&self, operator: &Operator) -> Result<(), StoreError> {
        let mut state = self.state();
        if state
            .operators
            .iter()
            .any(|o| o.id == operator.id || o.email == operator.email)
        {
            return Err(StoreError::Conflict("operators.email".into()));
        }
        state.operators.push(operator.clone());
        Ok(())
    }

    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError> {
        Ok(self.state().operators.iter().find(|o| o.id == id).cloned())
    }

    async fn operator_by_email(&self, email: &str) -> Result<Option<Operator>, StoreError> {
        Ok(self
            .state()
            .operators
            .iter()
            .find(|o| o.email == email)
            .cloned())
    }

    async fn operator_by_invitation(
        &self,
        invitation_hash: [u8; 32],
    ) -> Result<Option<Operator>, StoreError> {
        Ok(self
            .state()
            .operators
            .iter()
            .find(|o| o.invitation_hash == Some(invitation_hash))
            .cloned())
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        Ok(self.state().operators.clone())
    }

    async fn update_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(stored) = state.operators.iter_mut().find(|o| o.id == operator.id) else {
            return Ok(false);
        };
        *stored = Operator {
            email: stored.email.clone(),
            created_at: stored.created_at,
            ..operator.clone()
        };
        Ok(true)
    }

    async fn record_failed_sign_in(
        &self,
        id: OperatorId,
        lock_after: u32,
        locked_until: Timestamp,
    ) -> Result<u32, StoreError> {
        let mut state = self.state();
        let Some(stored) = state.operators.iter_mut().find(|o| o.id == id) else {
            return Ok(0);
        };
        stored.failed_sign_ins += 1;
        if stored.failed_sign_ins >= lock_after {
            stored.failed_sign_ins = 0;
            stored.locked_until = Some(locked_until);
        }
        Ok(stored.failed_sign_ins)
    }

    async fn create_session(&self, session: &OperatorSession) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.sessions.contains_key(&session.token_hash) {
            return Err(StoreError::Conflict("operator_sessions.token_hash".into()));
        }
        state.sessions.insert(session.token_hash, session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<OperatorSession>, StoreError> {
        Ok(self.state().sessions.get(&token_hash).cloned())
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .sessions
            .get_mut(&token_hash)
            .map(|session| session.last_seen_at = at)
            .is_some())
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        Ok(self.state().sessions.remove(&token_hash).is_some())
    }

    async fn delete_sessions_of(&self, operator: OperatorId) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.operator != operator);
        Ok((before - state.sessions.len()) as u64)
    }

    async fn delete_stale_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.sessions.len();
        state
            .sessions
            .retain(|_, s| s.last_seen_at >= idle_before && s.created_at >= created_before);
        Ok((before - state.sessions.len()) as u64)
    }
}
